"""Unity's ROS-TCP protocol (ROS-TCP-Connector / ROS-TCP-Endpoint v0.7.0), without ROS.

- ``framing``: the wire (length-prefixed destination and payload) and an incremental reader
  that refuses what no Unity scene sends (a destination or payload beyond the limits).
- ``commands``: the system commands (``__subscribe``, ``__publish``, ``__ros_service``, ...)
  parsed and checked, and the endpoint's own (``__handshake``, ``__topic_list``, ``__error``).
- ``names``: message type names as Unity writes them (``pkg/Type``) and as ROS 2 does
  (``pkg/msg/Type``).

- ``connection``: one client's connection on the endpoint's side (reader, writer, queues).
- ``scene_stand_in``: a client in a Unity scene's place (tests, benchmark, demo).

``ros_nodes/unity_endpoint.py`` is the ROS 2 node on top.
"""
