"""Privileged teachers: controllers that see the whole state of the worlds (every robot's
and every landmark's true position), used only to *teach* a learned policy by DAgger
("learning by cheating", Chen et al. 2019; privileged teacher, sensorimotor student).

A scripted baseline sees what the learned policy sees, so imitating it can at best equal
it. A teacher with the full state knows where to go when the student's local view cannot
tell (a landmark out of sight, which of two robots should give way); the student, driving
in DAgger, is labelled with those commands in the states it reaches, and learns the best
local rule it can: conventions and priors the hand-written baseline does not have. The
student never sees the privileged state; the teacher never drives a robot outside
training.

A teacher is ``f(task, snapshot) -> commands (B, N, 2)`` for the batched env's worlds, in
the task's action layout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from worlds.tasks import Snapshot, Task
from worlds.tasks.navigation import rotate_into

COVERAGE_GAIN = 1.5  # m/s per metre to the assigned landmark, capped at the speed limit


def coverage_assignment(task: Task, snap: Snapshot) -> np.ndarray:
    """Coverage: the team's optimal assignment of robots to landmarks (least total distance,
    Hungarian method, every world on its own), each robot driving straight to its landmark.
    Least-total-distance assignments have no crossing paths, so robots rarely meet."""
    pos = snap.poses[..., :2]
    B, N = pos.shape[:2]
    target = np.empty((B, N, 2))
    for b in range(B):
        cost = np.linalg.norm(pos[b, :, None] - task.landmarks[b, None], axis=-1)
        rows, cols = linear_sum_assignment(cost)
        target[b] = pos[b]  # a robot without a landmark (more robots than landmarks) stays
        target[b, rows] = task.landmarks[b, cols]
    return _holonomic_towards(task, snap, target, COVERAGE_GAIN)


def _holonomic_towards(task: Task, snap: Snapshot, target: np.ndarray, gain: float) -> np.ndarray:
    """(vx, vy) in each robot's frame toward map-frame ``target`` (B, N, 2): proportional,
    capped at each robot's top speed."""
    velocity = gain * (target - snap.poses[..., :2])
    top = np.array([r.limits.max_linear_speed_mps for r in task.robots])
    speed = np.linalg.norm(velocity, axis=-1, keepdims=True)
    velocity *= np.minimum(1.0, top[None, :, None] / np.maximum(speed, 1e-9))
    return rotate_into(snap.poses[..., 2], velocity)


PRIVILEGED: dict[str, Callable[[Task, Snapshot], np.ndarray]] = {
    "coverage": coverage_assignment,
}


def privileged_teacher_for(task_name: str) -> Callable[[Task, Snapshot], np.ndarray]:
    """The task's privileged teacher; a ``ValueError`` naming those that exist otherwise."""
    try:
        return PRIVILEGED[task_name]
    except KeyError:
        raise ValueError(
            f"no privileged teacher for task {task_name!r}; tasks with one: {', '.join(sorted(PRIVILEGED))}"
        ) from None
