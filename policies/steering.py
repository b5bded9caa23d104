"""Steering: the actor makes one decision the scripted baseline makes badly or not at all.

Two decisions can be steered, each where the coverage baseline loses landmarks.

*Where a searching robot searches* (``on`` = ``search`` or ``turns``).
On coverage the baseline's losses are searches: in every failed episode of 100 exactly one
landmark is left uncovered, and a robot that knew which way to look would have found it (the
baseline with an oracle choosing each robot's first search direction covers everything in
94 % of those episodes, against 79 %). Everything else the baseline does (matching robots to
the landmarks in view, driving there, keeping apart) it does well. So here the actor makes
one decision, per robot and control step, that counts only while the robot is searching:

  0           keep the search direction the baseline has (``KEEP_LOGITS`` makes this the
              untrained actor's choice almost always: the run starts as the baseline);
  1 .. H      search along heading 2π(k-1)/H in the robot's frame from now on.

A heading choice is written into the baseline's memory: the robot runs that way, bouncing
off walls as the baseline does, until a landmark becomes its own, so one choice has a
lasting, coherent effect (which per-step exploration of commands does not). The actor sees
the observation and the baseline's command (``policies.residual.residual_input``), and PPO
trains it only on the steps where its choice counts (``Rollout.policy_mask``). A checkpoint's
sidecar says ``steering: {headings: H, on: ...}``; ``LearnedPolicy`` then runs the
baseline and steers it.

*When a robot hands its landmark off* (``on`` = ``holding``). In 16 of the 21 episodes of 100
the baseline loses, the missing landmark was in view of a robot holding its own, and never of
a robot searching (``benchmarks/coverage_failures.py``): the greedy matching leaves a
searcher nearby to take it, but the searcher cannot see it. A robot that left its landmark
for the free one would leave its own to that searcher, which does see it. The baseline never
leaves; here, for a robot holding its landmark while it sees another nobody covers, the
actor chooses

  0           stay (``KEEP_LOGITS["holding"]``: the untrained actor leaves with
              probability 1 / (e^6 + 1) ≈ 0.25 % per such step);
  1           hand off: drive to the nearest free landmark in view, committed until there
              (``CoveragePolicy.hand_off``).

What it has to learn is when leaving pays: when someone will take the landmark it leaves,
and nobody else is going for the one it goes to. Sidecar: ``steering: {on: holding}``.
With ``on`` = ``holding_changes`` the same choice counts only at the steps where what the
holding robot sees changes (``CoveragePolicy.holding_anew``: it comes to hold, the free
landmark is another one, a neighbour comes or goes), about 1.6 moments per robot and
episode instead of ~48 steps, so each choice carries its own consequence.

Baselines that can be steered have ``searching``, ``turning`` and ``steer(agent,
direction)``, and ``holding`` and ``hand_off(agent)`` (coverage's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy

KEEP_LOGITS = {"search": 6.0, "turns": 2.0, "holding": 6.0, "holding_changes": 2.0}
"""Initial logit of "keep what the baseline does" (the others start near 0), by when the
choice counts: with H = 8 other choices a searching robot changes its heading with
probability 8 / (e^6 + 8) ≈ 2 % per control step, or 8 / (e^2 + 8) ≈ 52 % where its
direction is set anew, at first; a holding robot hands off with 1 / (e^6 + 1) ≈ 0.25 %
per step, or 1 / (e^2 + 1) ≈ 12 % per moment its view changes."""


STEER_ON = ("search", "turns", "holding", "holding_changes")
HAND_OFF_ON = ("holding", "holding_changes")
"""When a robot's choice counts: every step it searches, or only where its search direction is
set anew (a search begins, a wall turns it): the choice is a search heading; every step it
holds its landmark and sees another free one: the choice is whether to hand off."""


def steering_settings(config) -> dict | None:
    """A training config's steering settings as the sidecar's ``steering`` entry (None: the
    run does not steer a baseline)."""
    if not config.steer_search:
        return None
    if config.steer_on in HAND_OFF_ON:
        return {"on": config.steer_on}
    return {"headings": config.target_headings, "on": config.steer_on}


def num_choices(settings: Mapping) -> int:
    """Choices of a steering actor: keep, or one of the headings (hand off, when holding)."""
    if settings.get("on") in HAND_OFF_ON:
        return 2
    return 1 + int(settings["headings"])


def heading_vectors(headings: int) -> np.ndarray:
    """(H, 2) unit vectors of the search headings, in the robot frame."""
    if headings < 1:
        raise ValueError(f"steering needs at least 1 heading, got {headings}")
    angles = 2.0 * np.pi * np.arange(headings) / headings
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def check_steerable(policy: Policy) -> None:
    """Raise ValueError naming the task if its baseline cannot be steered."""
    if not all(hasattr(policy, name) for name in ("searching", "turning", "steer", "holding", "hand_off")):
        raise ValueError(
            f"the {policy.context.task_name} baseline does not search, so there is nothing to steer "
            "(search steering is for coverage)"
        )


@dataclass(frozen=True)
class Steering:
    """How a steering actor's choices act on a baseline: its headings and when they count."""

    headings: np.ndarray | None
    """(H, 2) unit vectors of the search headings, in the robot frame (choice k → row k-1);
    None when holding robots choose whether to hand off."""
    on: str = "search"
    """When a robot's choice counts (``STEER_ON``)."""

    @classmethod
    def from_entry(cls, entry: Mapping | None) -> Steering | None:
        """From a sidecar's (or ``steering_settings``') ``steering`` entry (None: no steering);
        ValueError naming what is wrong."""
        if entry is None:
            return None
        on = entry.get("on", "search")
        if on not in STEER_ON:
            raise ValueError(f"steering.on must be one of {', '.join(STEER_ON)}, got {on!r}")
        if on in HAND_OFF_ON:
            return cls(None, on)
        return cls(heading_vectors(int(entry.get("headings", 8))), on)

    def choosing(self, policy: Policy, agents: Iterable[str]) -> np.ndarray:
        """Bool per agent: the actor's choice counts for it now."""
        test = {
            "search": policy.searching,
            "turns": policy.turning,
            "holding": policy.holding,
            "holding_changes": policy.holding_anew,
        }[self.on]
        return np.array([test(a) for a in agents], dtype=bool)

    def steer(self, policy: Policy, agents: Iterable[str], choices: Iterable[int]) -> None:
        """Apply the actor's ``choices`` (one per agent) to the robots where they count."""
        agents = list(agents)
        for agent, choice, count in zip(agents, choices, self.choosing(policy, agents), strict=True):
            if not count or int(choice) == 0:
                continue
            if self.headings is None:
                policy.hand_off(agent)
            else:
                policy.steer(agent, self.headings[int(choice) - 1])
