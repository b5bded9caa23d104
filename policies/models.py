"""Torch models for multi-robot policies: a shared-parameter actor and a critic that sees
one robot (IPPO) or the whole team (MAPPO). Models normalise their own inputs (running
statistics kept as buffers) and map actions to command limits themselves, so an inference
node feeds raw observations and gets commands in m/s and rad/s.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal


class RunningNorm(nn.Module):
    """Running mean and variance of inputs (updated in training mode only)."""

    def __init__(self, size: int, clip: float = 10.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1])
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + 1e-8), -self.clip, self.clip)


def mlp(inp: int, hidden: int, out: int, out_gain: float) -> nn.Sequential:
    def layer(a, b, gain):
        lin = nn.Linear(a, b)
        nn.init.orthogonal_(lin.weight, gain)
        nn.init.zeros_(lin.bias)
        return lin

    return nn.Sequential(
        layer(inp, hidden, np.sqrt(2)),
        nn.Tanh(),
        layer(hidden, hidden, np.sqrt(2)),
        nn.Tanh(),
        layer(hidden, out, out_gain),
    )


def discrete_commands(low: np.ndarray, high: np.ndarray, per_axis: int) -> np.ndarray:
    """A grid of ``per_axis`` × ``per_axis`` (v, ω) commands spanning the limits."""
    v = np.linspace(low[0], high[0], per_axis)
    w = np.linspace(low[1], high[1], per_axis)
    return np.stack(np.meshgrid(v, w, indexing="ij"), axis=-1).reshape(-1, 2)


def to_unit(commands: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Commands within [low, high] → [-1, 1] per axis (the actor's action space; the
    inverse of ``MultiAgentActorCritic.to_command`` for continuous actions)."""
    return 2.0 * (commands - low) / (high - low) - 1.0


class MultiAgentActorCritic(nn.Module):
    """Shared actor over one robot's observation; critic over one robot's observation
    (``centralised=False``, IPPO) or all robots' observations plus the robot's one-hot
    index (``centralised=True``, MAPPO). Continuous actions: a Gaussian in [-1, 1] scaled to
    the limits; discrete: a categorical over a grid of commands; ``choices`` > 0: a
    categorical over that many choices that are not commands (``policies.targets`` turns
    them into commands; ``choose`` gives them, ``act`` does not apply).

    ``memory`` > 0 gives the actor a memory (recurrent MAPPO): a GRU cell of that size reads
    each observation (``remember``) and the actor acts on the observation and the memory.
    Whoever runs the actor keeps each robot's memory, starting from ``initial_memory`` at
    every episode start, and passes it to ``choose`` / ``act`` / ``get_action_and_value``.
    The critic stays feed-forward (in MAPPO it sees the team or the task's state)."""

    def __init__(
        self,
        obs_dim: int,
        num_agents: int,
        action_low: np.ndarray,
        action_high: np.ndarray,
        hidden: int = 128,
        centralised: bool = True,
        discrete_per_axis: int = 0,
        choices: int = 0,
        state_dim: int = 0,
        memory: int = 0,
    ):
        super().__init__()
        if memory < 0:
            raise ValueError(f"memory is a GRU size (0: none), got {memory}")
        self.obs_dim, self.num_agents = obs_dim, num_agents
        self.state_dim = state_dim
        if state_dim and not centralised:
            raise ValueError("a critic state (state_dim > 0) is for the centralised critic (MAPPO), not IPPO")
        self.centralised = centralised
        if discrete_per_axis > 0 and choices > 0:
            raise ValueError("a model has a grid of commands (discrete_per_axis) or choices, not both")
        self.choices = choices
        self.discrete = discrete_per_axis > 0 or choices > 0
        low = np.asarray(action_low, dtype=np.float32).reshape(-1)[:2]
        high = np.asarray(action_high, dtype=np.float32).reshape(-1)[:2]
        self.register_buffer("action_low", torch.as_tensor(low))
        self.register_buffer("action_high", torch.as_tensor(high))
        self.obs_norm = RunningNorm(obs_dim)
        self.memory_size = memory
        if memory:
            self.memory_cell = nn.GRUCell(obs_dim, memory)
        actor_in = obs_dim + memory
        critic_in = obs_dim * num_agents + num_agents if centralised else obs_dim
        if state_dim:  # MAPPO with the task's global state: state, the robot's own observation, its index
            self.state_norm = RunningNorm(state_dim)
            critic_in = state_dim + obs_dim + num_agents
        if choices > 0:
            self.actor = mlp(actor_in, hidden, choices, 0.01)
        elif self.discrete:
            grid = discrete_commands(low, high, discrete_per_axis)
            self.register_buffer("commands", torch.as_tensor(grid, dtype=torch.float32))
            self.actor = mlp(actor_in, hidden, len(grid), 0.01)
        else:
            self.actor = mlp(actor_in, hidden, 2, 0.01)
            self.log_std = nn.Parameter(torch.full((2,), -0.5))
        self.critic = mlp(critic_in, hidden, 1, 1.0)

    # ---- inputs --------------------------------------------------------------------------
    def critic_input(self, norm_obs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """norm_obs (..., N, D) (and the raw critic state (..., S) when the model has one) →
        critic input (..., N, C)."""
        if not self.centralised:
            return norm_obs
        lead = norm_obs.shape[:-2]
        ids = torch.eye(self.num_agents, device=norm_obs.device).expand(*lead, -1, -1)
        if self.state_dim:
            if state is None:
                raise ValueError("this critic needs the task's critic state")
            shared = self.state_norm(state).unsqueeze(-2).expand(*lead, self.num_agents, -1)
            return torch.cat([shared, norm_obs, ids], dim=-1)
        team = norm_obs.reshape(*lead, 1, self.num_agents * self.obs_dim).expand(*lead, self.num_agents, -1)
        return torch.cat([team, ids], dim=-1)

    # ---- memory (recurrent actor) ------------------------------------------------------
    def initial_memory(self, *lead: int) -> torch.Tensor:
        """A fresh memory (``lead`` + (memory_size,)) for robots starting an episode."""
        return torch.zeros((*lead, self.memory_size))

    def remember(self, obs: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Raw observations (..., D) and the robots' memory before them (..., H) → their
        memory after them (..., H)."""
        if not self.memory_size:
            raise ValueError("this model has no memory (memory=0)")
        lead = obs.shape[:-1]
        if memory.shape != (*lead, self.memory_size):
            raise ValueError(
                f"memory of shape {tuple(memory.shape)} for observations {tuple(obs.shape)}: "
                f"expected {(*lead, self.memory_size)}"
            )
        x = self.obs_norm(obs).reshape(-1, self.obs_dim)
        return self.memory_cell(x, memory.reshape(-1, self.memory_size)).reshape(*lead, self.memory_size)

    def _dist(self, norm_obs: torch.Tensor, memory: torch.Tensor | None = None):
        if self.memory_size:
            if memory is None:
                raise ValueError("this actor has a memory: pass each robot's memory (remember)")
            norm_obs = torch.cat([norm_obs, memory], dim=-1)
        out = self.actor(norm_obs)
        if self.discrete:
            return Categorical(logits=out)
        return Normal(out, self.log_std.exp().expand_as(out))

    # ---- training API (CleanRL style) ----------------------------------------------------
    def get_value(self, obs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """obs (..., N, D) raw (and the critic state (..., S)) → values (..., N) (normalised
        return scale)."""
        return self.critic(self.critic_input(self.obs_norm(obs), state)).squeeze(-1)

    def get_action_and_value(
        self,
        obs: torch.Tensor,
        action: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
    ):
        """obs (..., N, D) raw (and the critic state (..., S); for an actor with memory, the
        memory after these observations (..., N, H)) → (action, log_prob, entropy, value) per
        agent."""
        norm = self.obs_norm(obs)
        dist = self._dist(norm, memory)
        if action is None:
            action = dist.sample()
        if self.discrete:
            logp, ent = dist.log_prob(action), dist.entropy()
        else:
            logp, ent = dist.log_prob(action).sum(-1), dist.entropy().sum(-1)
        value = self.critic(self.critic_input(norm, state)).squeeze(-1)
        return action, logp, ent, value

    def to_command(self, action: torch.Tensor) -> torch.Tensor:
        """A sampled action → (v, ω) command within limits."""
        if self.choices:
            raise ValueError(
                "this model's actions are choices, not commands: policies.targets turns them into commands"
            )
        if self.discrete:
            return self.commands[action.long()]
        unit = torch.clamp(action, -1.0, 1.0)
        return self.action_low + (unit + 1.0) * 0.5 * (self.action_high - self.action_low)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
        memory: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Raw observations (..., D) of any robots → commands (..., 2) (no critic needed):
        the most likely action, or (``deterministic=False``) one drawn from the policy, from
        ``generator`` when given (reproducible draws). An actor with memory needs the robots'
        memory after these observations (``remember``)."""
        return self.to_command(self.choose(obs, deterministic, generator, memory))

    @torch.no_grad()
    def choose(
        self,
        obs: torch.Tensor,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
        memory: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Raw observations (..., D) → actions as the policy samples them (before
        ``to_command``), chosen as in ``act``."""
        dist = self._dist(self.obs_norm(obs), memory)
        if deterministic:
            action = dist.probs.argmax(-1) if self.discrete else dist.mean
        elif self.discrete:
            probs = dist.probs.reshape(-1, dist.probs.shape[-1])
            action = torch.multinomial(probs, 1, generator=generator).reshape(dist.probs.shape[:-1])
        else:
            noise = torch.randn(dist.mean.shape, generator=generator)
            action = dist.mean + dist.stddev * noise
        return action

    def spec(self) -> dict:
        """Constructor arguments, for the checkpoint's sidecar."""
        extra = {"choices": self.choices} if self.choices else {}
        if self.state_dim:
            extra["state_dim"] = self.state_dim
        if self.memory_size:
            extra["memory"] = self.memory_size
        return {
            "obs_dim": self.obs_dim,
            "num_agents": self.num_agents,
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "hidden": self.actor[0].out_features,
            "centralised": self.centralised,
            "discrete_per_axis": round(len(self.commands) ** 0.5) if self.discrete and not self.choices else 0,
            **extra,
        }


MODELS = {"MultiAgentActorCritic": MultiAgentActorCritic}
