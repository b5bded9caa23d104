"""Running ``*_launch.yaml`` files where the ``ros2`` CLI is absent (pip-only installs)."""

from sim_bridge.launch.description import LaunchDescription, ProcessSpec
from sim_bridge.launch.runner import LaunchRunner
from sim_bridge.launch.substitutions import LaunchError

__all__ = ["LaunchDescription", "LaunchError", "LaunchRunner", "ProcessSpec"]
