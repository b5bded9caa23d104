"""Carrying ROS topics between sites: wire format, image codecs, the link monitor and
the Multi-Metric Cost Function that adapts each topic to the link."""
