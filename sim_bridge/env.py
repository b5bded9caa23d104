"""The multi-robot environment: a world's task on a backend, as a PettingZoo ``ParallelEnv``.

Agents are ``robot_0 .. robot_{n-1}``, the same names as the ROS namespaces. Actions are
(v m/s, ω rad/s) and are clipped to each robot's limits; a robot with no action this step
is commanded to stop. A robot that reaches its goal leaves ``agents`` and stays parked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from sim_bridge.agents import WorldAgents
from sim_bridge.backends import Backend, Dynamics, make_backend
from sim_bridge.episode import draw_episode
from worlds import WorldSpec, load_world, make_task
from worlds.tasks import Snapshot


class MultiRobotEnv(WorldAgents, ParallelEnv):
    """A world file's task on a simulator backend, one control period per ``step``."""

    metadata = {"name": "sern_multi_robot_v0", "render_modes": ["rgb_array"], "is_parallelizable": True}

    def __init__(
        self,
        world: WorldSpec | str | Path,
        backend: str | Backend | None = None,
        render_mode: str | None = None,
        dynamics: Dynamics | None = None,
    ):
        self.world = world if isinstance(world, WorldSpec) else load_world(world)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}; got {render_mode!r}")
        self.render_mode = render_mode
        self.task = make_task(self.world)
        self.backend = backend if isinstance(backend, Backend) else make_backend(self.world, backend, dynamics=dynamics)
        self._init_agents(self.world, self.task)
        self.agents: list[str] = []
        self.control_dt = self.world.control_dt
        self.max_steps = math.ceil(self.task.max_episode_s / self.control_dt - 1e-9)
        self.snapshot: Snapshot | None = None
        self.num_steps = 0
        self._np_random = np.random.default_rng(self.world.seed)

    # ---- episode -----------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; the same ``seed`` gives the same episode on the same backend."""
        if seed is not None:
            self._np_random = np.random.default_rng(seed)
        episode = draw_episode(self.world, self.task, self._np_random, seed)
        self.backend.reset(episode.backend_seed, episode.starts[None])
        self.agents = list(self.possible_agents)
        self.num_steps = 0
        self.snapshot = self._snapshot()
        obs = self.task.observe(self.snapshot)[0]
        observations = {a: obs[i] for i, a in enumerate(self.agents)}
        infos = {a: {} for a in self.agents}
        return observations, infos

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() before step()")
        commands = np.zeros((self.backend.num_robots, 2))
        for agent, action in actions.items():
            i = self._agent_index(agent)
            if agent not in self.agents:
                continue  # finished robots stay parked
            commands[i] = self._checked_action(agent, action)
        self.backend.apply(commands[None])
        self.backend.step(self.control_dt)
        self.num_steps += 1
        self.snapshot = self._snapshot()
        rewards_all, arrived = (a[0] for a in self.task.step(self.snapshot))
        obs = self.task.observe(self.snapshot)[0]
        truncate = self.num_steps >= self.max_steps
        observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        for agent in self.agents:
            i = self._index[agent]
            observations[agent] = obs[i]
            rewards[agent] = float(rewards_all[i])
            terminations[agent] = bool(arrived[i])
            truncations[agent] = bool(truncate and not arrived[i])
            infos[agent] = {}
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        if not self.agents:
            metrics = self.task.episode_metrics()
            for agent in infos:
                infos[agent]["episode"] = metrics
        return observations, rewards, terminations, truncations, infos

    def _snapshot(self) -> Snapshot:
        """The world's state with its world axis (B = 1) kept, as tasks take it."""
        states = self.backend.states()
        lidar = self.backend.lidar()[:1] if self.backend.capabilities.lidar else None
        return Snapshot(
            time_s=np.array([states.time_s]),
            poses=states.poses[:1],
            twists=states.twists[:1],
            lidar=lidar,
            contacts=self.backend.contacts()[:1],
        )

    def episode_metrics(self) -> dict[str, Any]:
        """The task's metrics for the episode so far (final once ``agents`` is empty)."""
        return self.task.episode_metrics()

    def drawables(self) -> dict[str, np.ndarray]:
        """What the task draws on a map of the episode (goals, items, ...)."""
        return self.task.drawables()

    def render(self):
        """``rgb_array``: robot_0's camera image (needs ``sensors.camera`` in the world)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        return self.backend.render(0).rgb

    def close(self) -> None:
        self.backend.close()


def make_env(world: WorldSpec | str | Path, backend: str | None = None, dynamics: Dynamics | None = None):
    """The env ``sern run`` and ``sern eval`` use for ``world`` on ``backend`` (default: the
    world's own): a ``MultiRobotEnv`` on a physics backend, or, for ``unity``, a
    ``UnityWorldEnv`` whose world runs on the other side of ML-Agents' protocol. A world the
    backend cannot run is a ``ValueError`` saying why."""
    world = world if isinstance(world, WorldSpec) else load_world(world)
    if (backend or world.backend) == "unity":
        from sim_bridge.backends import require_runnable
        from sim_bridge.mlagents.world_env import UnityWorldEnv

        require_runnable(world, "unity")
        return UnityWorldEnv(world)
    return MultiRobotEnv(world, backend=backend, dynamics=dynamics)


class SingleRobotEnv(gymnasium.Env):
    """A one-robot world as a Gymnasium env (same observations, actions and rewards)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, world: WorldSpec | str | Path, backend: str | Backend | None = None, render_mode=None):
        self._env = MultiRobotEnv(world, backend, render_mode)
        if len(self._env.possible_agents) != 1:
            raise ValueError(
                f"{self._env.world.source}: SingleRobotEnv needs a world with one robot; "
                f"this one has {len(self._env.possible_agents)}"
            )
        self._agent = self._env.possible_agents[0]
        self.observation_space = self._env.observation_space(self._agent)
        self.action_space = self._env.action_space(self._agent)
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        obs, infos = self._env.reset(seed=seed, options=options)
        return obs[self._agent], infos[self._agent]

    def step(self, action):
        obs, rew, term, trunc, info = self._env.step({self._agent: action})
        a = self._agent
        return obs[a], rew[a], term[a], trunc[a], info[a]

    def render(self):
        return self._env.render()

    def close(self):
        self._env.close()
