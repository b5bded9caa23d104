"""Search steering: the actor decides only *where the scripted baseline searches*.

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
sidecar says ``steering: {headings: H}``; ``LearnedPolicy`` then runs the baseline and
steers it. Baselines that can be steered have ``searching(agent)`` and ``steer(agent,
direction)`` (coverage's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy

KEEP_LOGITS = {"search": 6.0, "turns": 2.0}
"""Initial logit of "keep the baseline's direction" (the others start near 0), by when the
choice counts: with H = 8 other choices a searching robot changes its heading with
probability 8 / (e^6 + 8) ≈ 2 % per control step, or 8 / (e^2 + 8) ≈ 52 % where its
direction is set anew, at first."""


STEER_ON = ("search", "turns")
"""When a robot's choice counts: every step it searches, or only where its search direction is
set anew (a search begins, a wall turns it)."""


def steering_settings(config) -> dict | None:
    """A training config's steering settings as the sidecar's ``steering`` entry (None: the
    run does not steer a baseline)."""
    if not config.steer_search:
        return None
    return {"headings": config.target_headings, "on": config.steer_on}


def num_choices(settings: Mapping) -> int:
    """Choices of a steering actor: keep, or one of the headings."""
    return 1 + int(settings["headings"])


def heading_vectors(headings: int) -> np.ndarray:
    """(H, 2) unit vectors of the search headings, in the robot frame."""
    if headings < 1:
        raise ValueError(f"steering needs at least 1 heading, got {headings}")
    angles = 2.0 * np.pi * np.arange(headings) / headings
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def check_steerable(policy: Policy) -> None:
    """Raise ValueError naming the task if its baseline cannot be steered."""
    if not all(hasattr(policy, name) for name in ("searching", "turning", "steer")):
        raise ValueError(
            f"the {policy.context.task_name} baseline does not search, so there is nothing to steer "
            "(search steering is for coverage)"
        )


@dataclass(frozen=True)
class Steering:
    """How a steering actor's choices act on a baseline: its headings and when they count."""

    headings: np.ndarray
    """(H, 2) unit vectors of the search headings, in the robot frame (choice k → row k-1)."""
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
        return cls(heading_vectors(int(entry.get("headings", 8))), on)

    def choosing(self, policy: Policy, agents: Iterable[str]) -> np.ndarray:
        """Bool per agent: the actor's choice counts for it now."""
        test = policy.searching if self.on == "search" else policy.turning
        return np.array([test(a) for a in agents], dtype=bool)

    def steer(self, policy: Policy, agents: Iterable[str], choices: Iterable[int]) -> None:
        """Apply the actor's ``choices`` (one per agent) to the robots where they count."""
        agents = list(agents)
        for agent, choice, count in zip(agents, choices, self.choosing(policy, agents), strict=True):
            if count and int(choice) > 0:
                policy.steer(agent, self.headings[int(choice) - 1])
