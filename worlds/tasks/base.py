"""The task interface: what robots observe, how they are rewarded, when they are done and
what an episode measured. Tasks are pure numpy; a backend supplies the ``Snapshot``.

Every array carries a leading world axis ``B`` (``num_worlds``; 1 for single-world envs),
then the robot axis ``N``. To write a task, subclass ``Task`` and provide:

- ``Params``: a ``worlds.spec.Spec`` model of the task's ``params`` in the world file;
- ``check(world, params)``: problems that need the whole world (returns a list, may be empty);
- ``observation_layout()``: names and sizes of the parts of one robot's observation;
- ``observation_bounds()``: low and high bounds of one robot's observation;
- ``reset(rng, starts, worlds)``: draw the episode (goals, items, ...) for the given worlds'
  robots at ``starts`` ``(len(worlds), N, 3)``;
- ``observe(snap)``: the ``(B, N, obs_dim)`` float32 observations;
- ``step(snap)``: ``(rewards (B, N), terminated (B, N))`` after a control step, updating
  the metrics; a terminated robot stays parked;
- ``episode_metrics(world)``: a JSON-able dict with at least ``success_rate`` and
  ``collision_rate`` and a ``robots`` list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from worlds.errors import Problem
from worlds.spec import Region, Spec, WorldSpec


@dataclass
class Snapshot:
    """The state of the worlds after a control step, as a task sees it.

    Poses ``(B, N, 3)`` are map-frame ``x, y, yaw`` (m, m, rad; REP-103); twists ``(B, N, 3)``
    are body-frame ``vx, vy, wz`` (m/s, m/s, rad/s). ``lidar`` is ``(B, N, beams)`` ranges
    in metres (beam angles from ``Lidar.angles()``), ``None`` when the world has no lidar.
    ``contacts`` ``(B, N)`` marks robots touching an obstacle, a wall or another robot.
    ``time_s`` is each world's episode time ``(B,)``.
    """

    time_s: np.ndarray
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
    headline_metric: ClassVar[tuple[str, str]] = ("success_rate", "max")
    """The episode metric that ranks policies on this task, and whether "max" or "min" is
    better (used to compare learned policies against the scripted baseline)."""

    def __init__(self, world: WorldSpec, params: Spec, num_worlds: int = 1):
        self.world = world
        self.params = params
        self.robots = world.robot_entries()
        self.num_robots = len(self.robots)
        self.num_worlds = num_worlds

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
    def reset(self, rng: np.random.Generator, starts: np.ndarray, worlds: np.ndarray | None = None) -> None:
        """Start episodes in ``worlds`` (all when None) with robots at ``starts``."""

    @abstractmethod
    def observe(self, snap: Snapshot) -> np.ndarray: ...

    @abstractmethod
    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    @abstractmethod
    def max_episode_s(self) -> float: ...

    @abstractmethod
    def episode_metrics(self, world: int = 0) -> dict[str, Any]: ...

    critic_state_size: int = 0
    """Size of ``critic_state`` per world (0: the task has none)."""

    def critic_state(self, snap: Snapshot) -> np.ndarray | None:
        """``(B, S)`` float32: what no robot sees but a centralised critic may (MAPPO's global
        state: where everything is, what is done, how much time is left), for training only;
        None if the task has none."""
        return None

    def drawables(self, world: int = 0) -> dict[str, np.ndarray]:
        """Task points worth drawing on a top-down plot (e.g. ``goals``: (N, 2))."""
        return {}

    def done(self) -> np.ndarray:
        """``(B,)``: worlds whose episode the task has finished (before the time limit)."""
        return np.zeros(self.num_worlds, dtype=bool)

    def action_layout(self) -> str:
        """What the action means: ``unicycle`` (v, ω) or ``holonomic`` (vx, vy)."""
        holo = {r.model.holonomic for r in self.robots}
        return "holonomic" if holo == {True} else "unicycle"


def region_problem(key: str, region: Region, world: WorldSpec) -> Problem | None:
    """A problem when ``region`` reaches outside the arena."""
    hx, hy = world.arena.half_extents
    if region.min[0] < -hx or region.max[0] > hx or region.min[1] < -hy or region.max[1] > hy:
        return Problem(
            key,
            f"region {[list(region.min), list(region.max)]} reaches outside the arena "
            f"(x in [{-hx:g}, {hx:g}], y in [{-hy:g}, {hy:g}])",
        )
    return None


def lidar_pooling_problem(world: WorldSpec, lidar_obs_beams: int) -> Problem | None:
    """A problem when the observed lidar sectors do not divide the world's beams."""
    beams = world.sensors.lidar.beams
    if beams % lidar_obs_beams:
        return Problem(
            "task.params.lidar_obs_beams", f"must divide sensors.lidar.beams ({beams}); got {lidar_obs_beams}"
        )
    return None
