"""Running ``*_launch.yaml`` files where the ``ros2`` CLI is absent (pip-only installs),
with the meaning ros2 launch gives them."""

from sim_bridge.launch.description import LaunchDescription
from sim_bridge.launch.errors import LaunchError
from sim_bridge.launch.process import ProcessSpec
from sim_bridge.launch.runner import LaunchRunner

__all__ = ["LaunchDescription", "LaunchError", "LaunchRunner", "ProcessSpec"]
