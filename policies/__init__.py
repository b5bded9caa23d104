"""Policies that drive robots: scripted baselines now, learned models behind the same
``Policy`` interface.
"""
