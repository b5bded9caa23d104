"""Carrying ROS topics between sites, without ROS: the wire format (``wire``), image codecs
(``codec``, ``image_cdr``), probes, reports and the clock offset (``probes``, ``clock``),
the link monitor (``monitor``), the Multi-Metric Cost Function that adapts each topic to the
link (``mmcf``, ``planner``), the send and receive paths (``sender``, ``receiver``) and one
site's whole end of the link (``site``), with its diagnostics (``status``, ``faults``)."""
