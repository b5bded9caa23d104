"""A ``backend: unity`` world as sern's batched env (``BatchedEnv``'s interface), so that
``sern train`` runs MAPPO through ML-Agents' protocol.

One Unity connection holds one world (B = 1). The Unity side restarts the world itself when
its episode ends, as ``BatchedEnv`` does, and sends the next episode's first observations in
the same exchange, so a restart costs no extra round trip. A robot that finishes is parked
and masked (``active`` False) until the world restarts; its observation stays its last.
"""

from __future__ import annotations

import numpy as np

from sim_bridge.batch_step import BatchStep
from sim_bridge.mlagents.world_env import UnityWorldEnv
from worlds import WorldSpec


class UnityBatchedEnv:
    """``BatchedEnv``'s interface over a ``UnityWorldEnv`` (one world)."""

    num_worlds = 1
    state_dim = 0
    state = None  # the Unity side sends no critic state

    def __init__(self, world: WorldSpec, seed: int = 0):
        self.world = world
        self.env = UnityWorldEnv(world)
        self.task = self.env.task  # spaces and context only: the Unity side runs the task
        self.robots = self.env.robots
        self.agents = list(self.env.possible_agents)
        self.num_agents = len(self.agents)
        self.obs_dim = self.task.observation_size
        self.act_dim = 2
        self.action_low = self.env.command_low.astype(np.float32)
        self.action_high = self.env.command_high.astype(np.float32)
        self.control_dt = self.env.control_dt
        self.max_steps = self.env.max_steps
        self.steps = np.zeros(1, dtype=int)
        self.seed = seed
        self.active = np.zeros((1, self.num_agents), dtype=bool)
        self._obs = np.zeros((1, self.num_agents, self.obs_dim), dtype=np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        observations, _ = self.env.reset(seed=self.seed if seed is None else seed)
        self._start(observations)
        return self._obs.copy()

    def _start(self, observations: dict[str, np.ndarray]) -> None:
        self.active[:] = False
        for agent, obs in observations.items():
            i = self.agents.index(agent)
            self._obs[0, i] = obs
            self.active[0, i] = True
        self.steps[:] = 0

    def step(self, actions: np.ndarray) -> BatchStep:
        """Apply ``(1, N, 2)`` commands (parked robots' are ignored)."""
        acting = self.active.copy()
        commands = np.clip(np.nan_to_num(np.asarray(actions, dtype=float)), self.action_low, self.action_high)
        observations, rewards, terminations, truncations, infos = self.env.step(
            {a: commands[0, i] for i, a in enumerate(self.agents) if acting[0, i]}
        )
        self.steps += 1
        reward = np.zeros((1, self.num_agents), dtype=np.float32)
        terminated = np.zeros((1, self.num_agents), dtype=bool)
        for agent, obs in observations.items():
            i = self.agents.index(agent)
            self._obs[0, i] = obs
            reward[0, i] = rewards[agent]
            terminated[0, i] = terminations[agent]
            if terminations[agent] or truncations[agent]:
                self.active[0, i] = False
        final_obs = self._obs.copy()
        world_done = np.array([not self.env.agents])
        truncated = np.array([bool(world_done[0] and any(truncations.values()))])
        episodes = []
        if world_done[0]:
            episodes = [next(iter(infos.values()))["episode"]]
            fresh, _ = self.env.reset()  # the episode the Unity side already started
            self._start(fresh)
        return BatchStep(self._obs.copy(), reward, terminated, acting, world_done, truncated, final_obs, episodes)

    def close(self) -> None:
        self.env.close()
