"""Many copies of a world's task at once, for training: arrays in, arrays out, each world
restarting on its own when its episode ends.

Shapes: observations ``(B, N, obs_dim)`` float32, actions ``(B, N, act_dim)``, rewards and
flags ``(B, N)``, world flags ``(B,)``. Agents are the world's robots in ``robot_<i>``
order, as in ``MultiRobotEnv``; a robot that finishes (e.g. reaches its goal) is parked
and masked (``active`` False) until its world restarts.
"""

from __future__ import annotations

import math

import numpy as np

from sim_bridge.backends import make_backend
from sim_bridge.batch_step import BatchStep
from worlds import WorldSpec, load_world, make_task
from worlds.layout import sample_starts
from worlds.spec import command_bounds
from worlds.tasks import Snapshot


class BatchedEnv:
    """``num_worlds`` copies of a world on the vectorised kinematic engine."""

    def __init__(
        self,
        world: WorldSpec | str,
        num_worlds: int,
        seed: int = 0,
        backend: str = "kinematic",
        critic_state: bool = False,
    ):
        """``critic_state``: also keep the task's critic state (``state``, ``BatchStep.state``)
        for a critic that reads it; off, the task does not compute it."""
        self.world = world if isinstance(world, WorldSpec) else load_world(world)
        self.num_worlds = num_worlds
        self.task = make_task(self.world, num_worlds)
        self.backend = make_backend(self.world, backend, num_worlds=num_worlds)
        if not self.backend.capabilities.vectorised and num_worlds > 1:
            raise ValueError(f"the {backend} backend holds one world; use the kinematic backend for batches")
        self.robots = self.world.robot_entries()
        self.num_agents = len(self.robots)
        self.agents = [r.name for r in self.robots]
        self.obs_dim = self.task.observation_size
        self.act_dim = 2
        self.action_low, self.action_high = (b.astype(np.float32) for b in command_bounds(self.robots))
        self.control_dt = self.world.control_dt
        self.max_steps = math.ceil(self.task.max_episode_s / self.control_dt - 1e-9)
        self.steps = np.zeros(num_worlds, dtype=int)
        self.rng = np.random.default_rng(seed)
        self._obs: np.ndarray | None = None
        self.state_dim = self.task.critic_state_size
        self._keep_state = critic_state
        self.state: np.ndarray | None = None
        """(B, S) the task's critic state now (``Task.critic_state``; None: not kept, or the task
        has none)."""

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._restart(np.arange(self.num_worlds))
        snap = self.snapshot()
        self._obs = self.task.observe(snap)
        self.state = self._critic_state(snap)
        return self._obs

    def _critic_state(self, snap: Snapshot) -> np.ndarray | None:
        return self.task.critic_state(snap) if self._keep_state else None

    def _restart(self, worlds: np.ndarray) -> None:
        starts = np.stack([sample_starts(self.world, self.rng) for _ in worlds])
        self.task.reset(self.rng, starts, worlds)
        if hasattr(self.backend, "reset_worlds"):
            self.backend.reset_worlds(worlds, starts)
        else:
            self.backend.reset(int(self.rng.integers(2**31)), starts)
        self.steps[worlds] = 0

    @property
    def active(self) -> np.ndarray:
        """``(B, N)``: the robots still in their episode (a finished one is parked)."""
        if hasattr(self.task, "active"):
            return self.task.active
        return np.ones((self.num_worlds, self.num_agents), bool)

    def snapshot(self) -> Snapshot:
        """The worlds' state now, as the task sees it."""
        states = self.backend.states()
        time_s = getattr(self.backend, "time_s", np.full(self.num_worlds, states.time_s))
        return Snapshot(
            time_s=np.asarray(time_s, dtype=float),
            poses=states.poses,
            twists=states.twists,
            lidar=self.backend.lidar() if self.backend.capabilities.lidar else None,
            contacts=self.backend.contacts(),
        )

    def step(self, actions: np.ndarray) -> BatchStep:
        """Apply ``(B, N, 2)`` actions (clipped to limits; parked agents get zero)."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        active = self.active.copy()
        cmd = np.clip(np.nan_to_num(np.asarray(actions, dtype=float)), self.action_low, self.action_high)
        cmd[~active] = 0.0
        if hasattr(self.backend, "apply_unchecked"):
            self.backend.apply_unchecked(cmd)
        else:
            self.backend.apply(cmd)
        self.backend.step(self.control_dt)
        self.steps += 1
        snap = self.snapshot()
        rewards, terminated = self.task.step(snap)
        obs = self.task.observe(snap)
        state = self._critic_state(snap)
        truncated = (self.steps >= self.max_steps) & ~self.task.done()
        world_done = self.task.done() | truncated
        episodes = []
        final_obs = obs.copy()
        final_state = state
        if world_done.any():
            ended = np.flatnonzero(world_done)
            episodes = [self.task.episode_metrics(int(w)) for w in ended]
            self._restart(ended)
            snap = self.snapshot()
            obs = self.task.observe(snap)
            state = self._critic_state(snap)
        self._obs = obs
        self.state = state
        return BatchStep(
            obs,
            rewards.astype(np.float32),
            terminated,
            active,
            world_done,
            truncated,
            final_obs,
            episodes,
            state,
            final_state,
        )


def make_batched_env(
    world: WorldSpec | str, num_worlds: int, seed: int = 0, backend: str = "kinematic", critic_state: bool = False
):
    """A ``BatchedEnv`` on the vectorised engine, or for ``unity`` a ``UnityBatchedEnv`` (one
    world on the other side of ML-Agents' protocol, ``sim_bridge.mlagents.batched``)."""
    if backend == "unity":
        from sim_bridge.mlagents.batched import UnityBatchedEnv

        world = world if isinstance(world, WorldSpec) else load_world(world)
        if num_worlds != 1 or critic_state:
            raise ValueError("backend unity holds one world (num_worlds 1) and sends no critic state")
        return UnityBatchedEnv(world, seed=seed)
    return BatchedEnv(world, num_worlds, seed=seed, backend=backend, critic_state=critic_state)
