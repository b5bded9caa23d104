"""The interface every policy implements, scripted or learned.

A policy maps each robot's observation vector to its (v m/s, ω rad/s) command. It knows
the task only through a ``PolicyContext``, which an env provides in simulation and the
policy node provides from ROS topics, so one policy runs in both places.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from worlds.robots import Limits
from worlds.tasks import Task


@dataclass(frozen=True)
class PolicyContext:
    """What a policy may know about the task and robots it drives."""

    task_name: str
    agents: tuple[str, ...]
    observation_slices: dict[str, slice]
    observation_size: int
    limits: dict[str, Limits]
    robot_radius_m: dict[str, float]
    control_dt: float
    lidar_angles: np.ndarray | None = None  # body-frame angles of the observed lidar sectors
    lidar_range_max_m: float = np.inf
    goal_tolerance_m: float = 0.0

    @classmethod
    def from_task(cls, task: Task) -> PolicyContext:
        robots = task.robots
        params = task.params
        return cls(
            task_name=task.name,
            agents=tuple(r.name for r in robots),
            observation_slices=task.observation_slices(),
            observation_size=task.observation_size,
            limits={r.name: r.limits for r in robots},
            robot_radius_m={r.name: r.model.radius_m for r in robots},
            control_dt=task.world.control_dt,
            lidar_angles=task.lidar_obs_angles() if hasattr(task, "lidar_obs_angles") else None,
            lidar_range_max_m=task.world.sensors.lidar.range_max_m,
            goal_tolerance_m=float(getattr(params, "goal_tolerance_m", 0.0)),
        )


class PolicyError(ValueError):
    """A policy that cannot be made for this task (unknown name, bad checkpoint)."""


class Policy(ABC):
    """Observations in, commands out, for any subset of the context's agents."""

    name: str = "policy"

    def __init__(self, context: PolicyContext):
        self.context = context

    def reset(self, seed: int | None = None) -> None:
        """Forget per-episode state (called at every episode start)."""

    @abstractmethod
    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Commands ``{agent: array([v, ω])}`` for every agent in ``observations``."""


class FunctionPolicy(Policy):
    """A policy around a function from stacked observations ``(n, D)`` to commands ``(n, 2)``
    (a trained model of any library, a hand-written controller): one call per control step
    for all the robots asked about."""

    def __init__(self, context: PolicyContext, name: str, commands: Callable[[np.ndarray], np.ndarray]):
        super().__init__(context)
        self.name = name
        self.commands = commands

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not observations:
            return {}
        agents = list(observations)
        commands = self.commands(np.stack([np.asarray(observations[a], dtype=np.float32) for a in agents]))
        return {a: np.asarray(commands[i], dtype=np.float32) for i, a in enumerate(agents)}
