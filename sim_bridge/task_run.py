"""A task's episode run alongside a ``Fleet``, the way ``MultiRobotEnv`` runs it: the task is
stepped once per control period on the world's state, a robot it terminates is parked, and
the episode ends when every robot is done or at the time limit. No ROS here: the sim node
calls ``end_of_control_period`` at each control-period boundary and publishes what it says.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import numpy as np

from sim_bridge.fleet import Fleet
from worlds.tasks import Snapshot


class EpisodeState(Enum):
    """Where an episode stands: waiting for its first command, running, or over; a finished
    one succeeded when the task's success criterion held (its ``success_rate`` is 1)."""

    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TaskRun:
    """The episode of ``fleet.task`` on ``fleet``'s robots (see the module docstring)."""

    def __init__(self, fleet: Fleet, seed: int, episode: int = 0):
        self.fleet = fleet
        self.task = fleet.task
        self.control_dt = fleet.world.control_dt
        self.max_steps = math.ceil(self.task.max_episode_s / self.control_dt - 1e-9)
        self.seed = seed
        self.episode = episode
        self.control_steps = 0
        self.done = np.zeros(len(fleet.robots), dtype=bool)  # terminated or truncated, as the env's agents
        self.state = EpisodeState.WAITING
        self.origin_s = 0.0  # fleet time at which the episode's clock started
        self._first_step = 0
        self._metrics: dict[str, Any] | None = None

    def start(self) -> None:
        """The episode's clock starts now, at the start of a control period: the task's times
        count from here (robots stood at their starts while it waited: nothing moved)."""
        if self.state is EpisodeState.WAITING:
            self.state = EpisodeState.RUNNING
            self.origin_s = self.fleet.time_s
            self._first_step = self.fleet.steps

    @property
    def running(self) -> bool:
        return self.state is EpisodeState.RUNNING

    @property
    def over(self) -> bool:
        return self.state in (EpisodeState.SUCCEEDED, EpisodeState.FAILED)

    @property
    def steps_per_control(self) -> int:
        """Fleet steps in one control period."""
        return round(self.control_dt / self.fleet.step_s)

    def at_control_boundary(self) -> bool:
        """Whether the fleet's clock is at the end of one of the episode's control periods."""
        return (self.fleet.steps - self._first_step) % self.steps_per_control == 0

    @property
    def time_s(self) -> float:
        """The episode's time: since it started (0 while it waits)."""
        return 0.0 if self.state is EpisodeState.WAITING else self.fleet.time_s - self.origin_s

    def snapshot(self) -> Snapshot:
        """The world's state now, with its world axis (B = 1), as tasks take it."""
        backend = self.fleet.backend
        states = backend.states()
        lidar = backend.lidar()[:1] if backend.capabilities.lidar else None
        return Snapshot(
            time_s=np.array([states.time_s - self.origin_s]),
            poses=states.poses[:1],
            twists=states.twists[:1],
            lidar=lidar,
            contacts=backend.contacts()[:1],
        )

    def end_of_control_period(self) -> np.ndarray:
        """Step the task on the state at the end of a control period; returns the robots it
        terminated now. Robots it is done with are parked; at the time limit every robot is
        done and the episode is over."""
        if not self.running:
            return np.zeros_like(self.done)
        _, terminated = self.task.step(self.snapshot())
        terminated = terminated[0] & ~self.done
        self.control_steps += 1
        self.done |= terminated
        if self.control_steps >= self.max_steps:
            self.done[:] = True
        self.fleet.parked |= self.done
        if self.done.all():
            self._metrics = self.task.episode_metrics()
            won = self._metrics.get("success_rate", 0.0) >= 1.0
            self.state = EpisodeState.SUCCEEDED if won else EpisodeState.FAILED
        return terminated

    def metrics(self) -> dict[str, Any]:
        """The task's episode metrics so far (final once the episode is over)."""
        return self._metrics if self._metrics is not None else self.task.episode_metrics()
