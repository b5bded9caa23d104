"""Scripted foraging baseline: greedy collection.

Each robot, from its own observation only: (1) while carrying, heads straight for the
nest; (2) otherwise goes for the nearest item it sees that no neighbour it sees is
clearly nearer to (so two robots rarely race for one item), else the nearest item;
(3) with no item in sight it sweeps the arena in straight legs that turn at walls,
spreading away from neighbours; (4) sidesteps neighbours on a collision course (closest
approach at current velocities) and pushes off neighbours and walls at short range. Commands are holonomic (vx, vy) in the robot frame, at full speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy, PolicyContext
from policies.scripted_pursuit import SweepSearch, holonomic_command, neighbour_push, sidestep, visible, wall_push
from policies.vectors import vector_length


@dataclass(frozen=True)
class ForagingConfig:
    """Tuning of the scripted foraging baseline."""

    claim_margin_m: float = 0.3
    """A neighbour this much nearer to an item than me has it; I look for another."""
    avoid_m: float = 0.5
    """Centre distance to a neighbour below which robots push apart."""
    clearance_m: float = 0.5
    """Closest approach (centre to centre) to a neighbour that makes a robot sidestep."""
    horizon_s: float = 1.0
    """How far ahead collision courses are looked for."""
    wall_margin_m: float = 0.2
    """Distance from the robot's surface to a wall below which it pushes off (not when
    going for an item)."""
    spread_m: float = 2.0
    """While searching, neighbours closer than this push the searcher away."""
    search_turn_m: float = 0.8
    """While searching, a wall this close ahead makes the robot pick a new direction."""


class ForagingPolicy(Policy):
    """Greedy item collection with neighbour-aware item choice and sweeping search."""

    name = "scripted"

    def __init__(self, context: PolicyContext, config: ForagingConfig | None = None):
        if context.task_name != "foraging":
            raise ValueError(f"the scripted foraging policy drives 'foraging' tasks, not {context.task_name!r}")
        super().__init__(context)
        self.config = config or ForagingConfig()
        s = context.observation_slices
        self._vel, self._carrying, self._nest, self._walls = s["velocity"], s["carrying"], s["nest"], s["walls"]
        self._items, self._nb = s["items"], s["neighbours"]
        self._search = SweepSearch(self.config.search_turn_m)

    def reset(self, seed: int | None = None) -> None:
        self._search.reset(seed)

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: self._act_one(agent, np.asarray(obs, dtype=float)) for agent, obs in observations.items()}

    def _act_one(self, agent: str, obs: np.ndarray) -> np.ndarray:
        cfg = self.config
        lim = self.context.limits[agent]
        radius = self.context.robot_radius_m[agent]
        walls = obs[self._walls]
        neighbours = visible(obs[self._nb].reshape(-1, 5))
        items = obs[self._items].reshape(-1, 3)
        items = items[items[:, 2] > 0.5]
        near_wall_ok = False
        if obs[self._carrying][0] > 0.5:
            nx, ny, _ = obs[self._nest]
            direction = np.array([nx, ny])
        elif len(items):
            mine = np.hypot(items[:, 0], items[:, 1])
            theirs = np.full(len(items), np.inf)
            for x, y, *_ in neighbours:
                theirs = np.minimum(theirs, np.hypot(items[:, 0] - x, items[:, 1] - y))
            free = mine < theirs + cfg.claim_margin_m
            pick = np.where(free, mine, mine + 100.0)  # claimed items only if nothing else
            k = int(np.argmin(pick))
            direction = items[k, :2].copy()
            near_wall_ok = True  # items may lie by a wall: go and get them
        else:
            direction = self._search.direction(agent, walls) + neighbour_push(neighbours, cfg.spread_m)
        direction = direction / max(vector_length(direction), 1e-9)
        direction += 1.5 * neighbour_push(neighbours, cfg.avoid_m)
        direction += 2.0 * sidestep(neighbours, obs[self._vel], cfg.clearance_m, cfg.horizon_s)
        if not near_wall_ok:
            direction += wall_push(walls, radius + cfg.wall_margin_m)
        return holonomic_command(direction, lim.max_linear_speed_mps, lim)
