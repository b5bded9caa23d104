"""The task interface: what robots observe, how they are rewarded, when they are done and
what an episode measured. Tasks are pure numpy; a backend supplies the ``Snapshot``.

To write a task, subclass ``Task`` and provide:

- ``Params``: a ``worlds.spec.Spec`` model of the task's ``params`` in the world file;
- ``check(world, params)``: problems that need the whole world (returns a list, may be empty);
- ``observation_layout()``: names and sizes of the parts of one robot's observation;
- ``reset(rng, starts)``: draw the episode (goals, items, ...) for robots at ``starts``;
- ``observe(snap)``: the (N, obs_dim) float32 observations;
- ``step(snap)``: (rewards (N,), terminated (N,)) after a control step, updating metrics;
- ``episode_metrics()``: a JSON-able dict with at least ``success_rate`` and
  ``collision_rate`` and a ``robots`` list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from worlds.errors import Problem
from worlds.spec import Spec, WorldSpec


@dataclass
class Snapshot:
    """The state of one world after a control step, as a task sees it.

    Poses are map-frame ``x, y, yaw`` (m, m, rad; REP-103); twists are body-frame
    ``vx, vy, wz`` (m/s, m/s, rad/s). ``lidar`` is (N, beams) ranges in metres, beam 0 at
    ``-fov/2`` counter-clockwise, ``None`` when the world has no lidar.
    ``contacts`` marks robots touching an obstacle, a wall or another robot.
    """

    time_s: float
    poses: np.ndarray
    twists: np.ndarray
    lidar: np.ndarray | None
    contacts: np.ndarray


@dataclass(frozen=True)
class ObservationPart:
    name: str
    size: int
    description: str


class Task(ABC):
    """Base class of every task (see the module docstring for what to write)."""

    name: ClassVar[str]
    Params: ClassVar[type[Spec]]

    def __init__(self, world: WorldSpec, params: Spec):
        self.world = world
        self.params = params
        self.robots = world.robot_entries()
        self.num_robots = len(self.robots)

    @classmethod
    def check(cls, world: WorldSpec, params: Spec) -> list[Problem]:
        """Problems with ``params`` that need the rest of the world; none by default."""
        return []

    @abstractmethod
    def observation_layout(self) -> list[ObservationPart]: ...

    @property
    def observation_size(self) -> int:
        return sum(p.size for p in self.observation_layout())

    def observation_slices(self) -> dict[str, slice]:
        """Where each named part sits in one robot's observation vector."""
        out, at = {}, 0
        for part in self.observation_layout():
            out[part.name] = slice(at, at + part.size)
            at += part.size
        return out

    @abstractmethod
    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Low and high bounds of one robot's observation vector."""

    @abstractmethod
    def reset(self, rng: np.random.Generator, starts: np.ndarray) -> None: ...

    @abstractmethod
    def observe(self, snap: Snapshot) -> np.ndarray: ...

    @abstractmethod
    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    @abstractmethod
    def max_episode_s(self) -> float: ...

    @abstractmethod
    def episode_metrics(self) -> dict[str, Any]: ...

    def drawables(self) -> dict[str, np.ndarray]:
        """Task points worth drawing on a top-down plot (e.g. ``goals``: (N, 2))."""
        return {}
