"""Drawing an episode from a world and a seed: the same starts and task draw (goals, …)
wherever it is drawn (the env, the sim node, the robot stand-in)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worlds import WorldSpec
from worlds.layout import sample_starts
from worlds.tasks import Task


@dataclass
class Episode:
    seed: int | None
    backend_seed: int
    starts: np.ndarray  # (N, 3) x, y, yaw


def draw_episode(world: WorldSpec, task: Task, rng: np.random.Generator, seed: int | None = None) -> Episode:
    """Draw starts, then the task's own draw, from ``rng`` (in that order, always)."""
    backend_seed = int(rng.integers(2**31))
    starts = sample_starts(world, rng)
    task.reset(rng, starts)
    return Episode(seed, backend_seed, starts)


def episode_for_seed(world: WorldSpec, task: Task, seed: int) -> Episode:
    return draw_episode(world, task, np.random.default_rng(seed), seed)
