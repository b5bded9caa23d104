"""Residual policies: a learned correction on top of the task's scripted baseline
(residual policy learning: Silver et al. 2018, Johannink et al. 2019).

The baseline computes its command from the robot's observation (and its own per-robot
memory: a search heading, an exploration direction); the actor sees the observation and
that command and outputs a correction, which is added to it and clipped to the limits:

    command = clip(baseline + (actor_command - mid), low, high),  mid = (low + high) / 2

With its last layer near zero the actor starts as the baseline, so PPO begins from a
competent team and learns only what improves on it (where to wait, whom to leave an item
or a landmark to, how to corner). For PPO the baseline is part of the environment.

``ScriptedTeam`` drives a batched env's worlds with one baseline per world (each keeps its
robots' memory); imitation uses it to label states, residual training to get the commands
the actor corrects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from policies.base import PolicyContext
from policies.models import to_unit
from policies.scripted import make_scripted
from policies.steering import Steering

BASE_CHANNELS = 2
"""Entries the residual actor's input has beyond the observation: the baseline's command."""


class ScriptedTeam:
    """The scripted baseline of a batched env's task, one instance per world."""

    def __init__(
        self,
        context: PolicyContext,
        agents: list[str],
        num_worlds: int,
        tuning: Mapping[str, float] | None = None,
        seed: int = 0,
    ):
        self.agents = list(agents)
        self.policies = [make_scripted(context, tuning) for _ in range(num_worlds)]
        self._episodes = 0
        self._seed = seed
        self.reset(range(num_worlds))

    def reset(self, worlds: Iterable[int]) -> None:
        """Start new episodes in ``worlds`` (fresh memory; each gets its own seed)."""
        for b in worlds:
            self.policies[int(b)].reset(self._seed + self._episodes)
            self._episodes += 1

    def commands(self, obs: np.ndarray, active: np.ndarray, worlds: Iterable[int] | None = None) -> np.ndarray:
        """(B, N, 2) baseline commands for ``obs`` (B, N, D) of the ``active`` (B, N) robots
        (zeros elsewhere and in worlds not listed)."""
        out = np.zeros((*obs.shape[:2], 2), dtype=np.float32)
        for b in range(len(self.policies)) if worlds is None else worlds:
            acts = self.policies[b].act({a: obs[b, i] for i, a in enumerate(self.agents) if active[b, i]})
            for i, a in enumerate(self.agents):
                if a in acts:
                    out[b, i] = acts[a]
        return out

    def choices(self, obs: np.ndarray, active: np.ndarray, headings: int) -> np.ndarray:
        """(B, N) the baselines' decisions as target choices (``policies.targets``) for ``obs``
        (B, N, D) of the ``active`` (B, N) robots (0 elsewhere); for baselines that decide by
        choosing targets (coverage)."""
        out = np.zeros(obs.shape[:2], dtype=np.int64)
        for b, policy in enumerate(self.policies):
            if not hasattr(policy, "choices"):
                raise ValueError(f"the {policy.context.task_name} baseline does not decide by choosing targets")
            picked = policy.choices({a: obs[b, i] for i, a in enumerate(self.agents) if active[b, i]}, headings)
            for i, a in enumerate(self.agents):
                out[b, i] = picked.get(a, 0)
        return out

    def choosing(self, steering: Steering) -> np.ndarray:
        """(B, N) bool: a steering choice counts for the robot now (``policies.steering``)."""
        return np.stack([steering.choosing(policy, self.agents) for policy in self.policies])

    def steer(self, choices: np.ndarray, steering: Steering) -> None:
        """Apply steering choices (B, N) where they count (``policies.steering``)."""
        for b, policy in enumerate(self.policies):
            steering.steer(policy, self.agents, choices[b])


def residual_input(obs: torch.Tensor, base: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The actor's input: the observation (..., D) and the baseline's command (..., 2)
    scaled to [-1, 1] per axis."""
    return torch.cat([obs, to_unit(base, low, high).to(obs.dtype)], dim=-1)


def residual_command(base: torch.Tensor, command: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The baseline's command plus the actor's correction (its command's offset from the
    middle of the limits), clipped to the limits."""
    return torch.clamp(base + command - 0.5 * (low + high), low, high)
