"""Collecting PPO rollouts: the model acts in a batched env (``sim_bridge.batched_env``) and
every step is kept (observations, actions, their log-probabilities and the critic's values,
rewards with time limits bootstrapped, episode ends). Observations are kept raw: the model
normalises them itself, with the input statistics it acts with, which stay fixed until the
update that follows has used the rollout (``policies.ppo_update``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from policies.base import PolicyContext
from policies.models import MultiAgentActorCritic, RunningNorm
from policies.residual import BASE_CHANNELS, ScriptedTeam, residual_command, residual_input
from policies.steering import Steering, check_steerable
from policies.targets import target_controller
from policies.train_config import TrainConfig
from sim_bridge.batched_env import make_batched_env
from worlds import WorldSpec


@dataclass
class Rollout:
    """T control steps of B worlds × N robots, and where the worlds ended up."""

    obs: torch.Tensor  # (T, B, N, D)
    act: torch.Tensor
    logp: torch.Tensor
    rew: torch.Tensor  # truncation already bootstrapped in
    done: torch.Tensor
    val: torch.Tensor
    mask: torch.Tensor
    next_obs: torch.Tensor  # (B, N, D)
    episodes: list[dict[str, float]]
    state: torch.Tensor | None = None  # (T, B, S): the critic state, for a critic that has one
    next_state: torch.Tensor | None = None  # (B, S)
    policy_mask: torch.Tensor | None = None
    """(T, B, N) where the actor's choice counted (steering: searching robots); None: as ``mask``."""
    memory: torch.Tensor | None = None
    """(T, B, N, H) each robot's actor memory before the step's observation (zero at an
    episode's first step), for an actor with memory."""


class Collector:
    """Runs the model in a batched env and hands back rollouts (keeps the env's state).

    With ``residual`` (the baseline's tuning, ``{}`` for the default) the model corrects the
    scripted baseline's commands (``policies.residual``): its input is the observation and
    the baseline's command, and what the env gets is their sum. With ``targets`` (a sidecar's
    ``targets`` entry) the model's actions are target choices that a ``TargetController``
    turns into commands. With ``steering`` (a sidecar's ``steering`` entry) the baseline
    drives and the model's choices steer its searches (``policies.steering``). With
    ``critic_state`` the env keeps the task's critic state for a critic that reads it. For an
    actor with memory it keeps each robot's memory across rollouts, fresh at episode starts."""

    def __init__(
        self,
        world: WorldSpec,
        num_worlds: int,
        seed: int,
        residual: dict[str, float] | None = None,
        targets: dict | None = None,
        steering: dict | None = None,
        critic_state: bool = False,
        backend: str = "kinematic",
    ):
        self.env = make_batched_env(world, num_worlds, seed, backend, critic_state)
        self.base = None
        context = PolicyContext.from_task(self.env.task)
        if residual is not None or steering is not None:
            self.base = ScriptedTeam(context, self.env.agents, num_worlds, residual, seed=seed)
        self.controller = target_controller(context, targets)
        self.steering = Steering.from_entry(steering)
        if self.steering is not None:
            check_steerable(self.base.policies[0])
        # the model's limits (robot 0's, as make_model and LearnedPolicy use), so training and serving agree
        self._low = torch.as_tensor(self.env.action_low[0], dtype=torch.float32)
        self._high = torch.as_tensor(self.env.action_high[0], dtype=torch.float32)
        self.base_command = None
        self.obs = self._model_input(self.env.reset(seed=seed), self.env.active)
        self.episode_return = np.zeros(num_worlds)
        self.memory: torch.Tensor | None = None  # (B, N, H) for an actor with memory

    @property
    def obs_dim(self) -> int:
        """Size of the model's input per robot."""
        return self.env.obs_dim + (BASE_CHANNELS if self.base is not None else 0)

    def _model_input(self, obs: np.ndarray, active: np.ndarray, worlds=None) -> torch.Tensor:
        """The model's input for raw observations (B, N, D); with a residual base this
        also steps the baselines of ``worlds`` (all by default) and keeps their commands."""
        raw = torch.as_tensor(obs)
        if self.base is None:
            return raw
        base = torch.as_tensor(self.base.commands(obs, active, worlds))
        if worlds is None:
            self.base_command = base
        return residual_input(raw, base, self._low, self._high)

    def _command(self, model: MultiAgentActorCritic, action: torch.Tensor) -> torch.Tensor:
        if self.steering is not None:  # the baseline drives, the choice is its next search heading
            self.base.steer(action.numpy(), self.steering)
            return self.base_command
        if self.controller is not None:
            raw = self.obs[..., : self.env.obs_dim].numpy()
            base = None if self.base_command is None else self.base_command.numpy()
            return torch.as_tensor(self.controller.commands(raw, action.numpy(), base))
        command = model.to_command(action)
        if self.base is None:
            return command
        return residual_command(self.base_command, command, self._low, self._high)

    def collect(
        self, model: MultiAgentActorCritic, steps: int, value_norm: RunningNorm, config: TrainConfig
    ) -> Rollout:
        env = self.env
        B, N, D = env.num_worlds, env.num_agents, self.obs_dim
        act_shape = () if model.discrete else (2,)
        buf = {
            "obs": torch.zeros((steps, B, N, D)),
            "act": torch.zeros((steps, B, N, *act_shape)),
            "logp": torch.zeros((steps, B, N)),
            "rew": torch.zeros((steps, B, N)),
            "done": torch.zeros((steps, B, N)),
            "val": torch.zeros((steps, B, N)),
            "mask": torch.zeros((steps, B, N)),
        }
        if self.steering is not None:
            buf["policy_mask"] = torch.zeros((steps, B, N))
        if model.memory_size:
            buf["memory"] = torch.zeros((steps, B, N, model.memory_size))
            if self.memory is None or self.memory.shape[-1] != model.memory_size:
                self.memory = model.initial_memory(B, N)
        use_state = bool(model.state_dim)
        if use_state:
            buf["state"] = torch.zeros((steps, B, model.state_dim))
        state = torch.as_tensor(env.state) if use_state else None
        episodes = []
        for t in range(steps):
            if self.steering is not None:  # the choice counts for robots searching now
                counts = self.base.choosing(self.steering) & env.active
                buf["policy_mask"][t] = torch.as_tensor(counts, dtype=torch.float32)
            with torch.no_grad():
                memory = None
                if model.memory_size:
                    buf["memory"][t] = self.memory
                    memory = model.remember(self.obs, self.memory)
                action, logp, _, value = model.get_action_and_value(self.obs, state=state, memory=memory)
                command = self._command(model, action)
            step = env.step(command.numpy())
            rewards = torch.as_tensor(step.rewards)
            if step.truncated.any():  # bootstrap the time limit instead of calling it an end
                final = self._model_input(step.final_obs, step.active, np.flatnonzero(step.truncated))
                with torch.no_grad():
                    final_state = torch.as_tensor(step.final_state) if use_state else None
                    v_final = denormalise(model.get_value(final, final_state), value_norm, config)
                alive = torch.as_tensor(step.active & ~step.terminated & step.truncated[:, None])
                rewards = rewards + config.gamma * v_final * alive
            buf["obs"][t], buf["act"][t], buf["logp"][t], buf["val"][t] = self.obs, action, logp, value
            buf["rew"][t] = rewards
            if use_state:
                buf["state"][t] = state
                state = torch.as_tensor(step.state)
            buf["done"][t] = torch.as_tensor(step.terminated | step.world_done[:, None], dtype=torch.float32)
            if memory is not None:  # a robot whose episode ended starts the next one afresh
                self.memory = memory * (1.0 - buf["done"][t]).unsqueeze(-1)
            buf["mask"][t] = torch.as_tensor(step.active, dtype=torch.float32)
            self.episode_return += step.rewards.sum(axis=1) / N
            for w, metrics in zip(np.flatnonzero(step.world_done), step.episodes, strict=True):
                episodes.append({"return": float(self.episode_return[w]), **_scalars(metrics)})
                self.episode_return[w] = 0.0
            if self.base is not None:
                self.base.reset(np.flatnonzero(step.world_done))
            self.obs = self._model_input(step.obs, env.active)
        next_state = state.clone() if use_state else None
        return Rollout(**buf, next_obs=self.obs.clone(), episodes=episodes, next_state=next_state)


def denormalise(v: torch.Tensor, norm: RunningNorm, config: TrainConfig) -> torch.Tensor:
    if not config.value_norm:
        return v
    return v * torch.sqrt(norm.var + 1e-8) + norm.mean


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
