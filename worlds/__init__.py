"""What exists and what counts as success: world files, their typed specs, tasks, metrics.

``worlds`` imports neither ROS nor a physics engine.
"""

from worlds.errors import Problem, WorldFileError
from worlds.loader import (
    WORLDS_DIR,
    load_world,
    load_world_data,
    load_world_text,
    make_task,
    with_changes,
    with_robot_count,
)
from worlds.spec import WorldSpec

__all__ = [
    "WORLDS_DIR",
    "Problem",
    "WorldFileError",
    "WorldSpec",
    "load_world",
    "load_world_data",
    "load_world_text",
    "make_task",
    "with_changes",
    "with_robot_count",
]
