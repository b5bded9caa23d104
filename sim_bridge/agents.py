"""The agents of a world's task, as sern's PettingZoo envs name and check them."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces

from sim_bridge.backends import CommandError
from worlds.spec import WorldSpec, command_bounds


class WorldAgents:
    """The agents of a world's task as a PettingZoo env names them: ``robot_<i>``, the task's
    observation space, each robot's (v, ω) action space, and the check of one action.
    ``MultiRobotEnv`` and the unity backend's ``UnityWorldEnv`` share it."""

    def _init_agents(self, world: WorldSpec, task) -> None:
        self.robots = world.robot_entries()
        self.possible_agents = [r.name for r in self.robots]
        self._index = {name: i for i, name in enumerate(self.possible_agents)}
        self.command_low, self.command_high = command_bounds(self.robots)
        lo, hi = task.observation_bounds()
        self._obs_space = spaces.Box(lo, hi, dtype=np.float32)

    @functools.cache  # noqa: B019 - one env, a handful of agents
    def observation_space(self, agent: str) -> spaces.Box:
        self._agent_index(agent)
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Box:
        i = self._agent_index(agent)
        low, high = self.command_low[i].astype(np.float32), self.command_high[i].astype(np.float32)
        return spaces.Box(low=low, high=high, dtype=np.float32)

    def _agent_index(self, agent: str) -> int:
        try:
            return self._index[agent]
        except KeyError:
            raise KeyError(f"unknown agent {agent!r}; agents are {', '.join(self.possible_agents)}") from None

    @staticmethod
    def _checked_action(agent: str, action: Any) -> np.ndarray:
        """``action`` as (v, ω); a wrong shape or a non-finite value is a ``CommandError``."""
        a = np.asarray(action, dtype=float).reshape(-1)
        if a.shape != (2,):
            raise CommandError(f"{agent}: an action is (v m/s, ω rad/s); got shape {np.shape(action)}")
        if not np.all(np.isfinite(a)):
            raise CommandError(f"{agent}: action {a.tolist()} is not finite")
        return a
