"""Emulated network links (delay, jitter, loss, rate, outages) on real packets."""
