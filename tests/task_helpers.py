"""Helpers for the swarm-task tests (``tests/test_task_*.py``): one-world snapshots built
from per-robot rows, small kinematic worlds of disc robots, and shipped worlds as data."""

from __future__ import annotations

import numpy as np
import yaml
from conftest import REPO

from worlds.tasks import Snapshot


def snapshot(poses, twists=None, lidar=None, contacts=None, t=0.05) -> Snapshot:
    """A one-world snapshot (world axis B = 1) from per-robot rows; robots at rest unless
    ``twists`` are given, no contacts unless ``contacts`` are."""
    poses = np.asarray(poses, dtype=float)
    n = len(poses)
    return Snapshot(
        time_s=np.array([t]),
        poses=poses[None],
        twists=(np.zeros((n, 3)) if twists is None else np.asarray(twists, dtype=float))[None],
        lidar=None if lidar is None else np.asarray(lidar, dtype=float)[None],
        contacts=(np.zeros(n, dtype=bool) if contacts is None else np.asarray(contacts))[None],
    )


def first_world(arrays):
    """World 0 of each batched array, e.g. ``rewards, terminated = first_world(task.step(s))``."""
    return tuple(a[0] for a in arrays)


def shipped_world_data(name: str) -> dict:
    """A shipped world file (``worlds/<name>.yaml``) as plain data, to change in a test."""
    return yaml.safe_load((REPO / "worlds" / f"{name}.yaml").read_text())


def disc_world(task: str, arena_m: float, starts: list, params: dict) -> dict:
    """World-file data: an ``arena_m`` square walled arena on the kinematic backend, a disc
    robot at each of ``starts`` (``[x, y, yaw_deg]``), an 8-beam 3 m lidar, and ``task``
    with ``params``."""
    return {
        "name": f"t_{task}",
        "backend": "kinematic",
        "arena": {"size_m": [arena_m, arena_m]},
        "robots": [{"model": "disc", "count": len(starts), "spawn": {"poses": starts}}],
        "sensors": {"lidar": {"beams": 8, "range_max_m": 3.0}},
        "task": {"name": task, "params": params},
    }
