"""Scripted pursuit baseline: chase the nearest evader, two pursuers to an evader.

Each pursuer, from its own observation only: (1) ranks the evaders it sees by distance and
takes the first one that fewer than ``per_evader`` of the neighbours it sees are nearer to
(a greedy, decentralised assignment: the team splits over the evaders); (2) if it is the
nearest of its group it aims at the evader's position predicted a short lead ahead
(interception); a second pursuer aims further ahead, along the evader's escape, to cut it
off; (3) with no evader in sight it sweeps the arena in straight legs, turning toward open
space (give or take 60°, from a seeded generator) at walls, pushed apart from neighbours; (4) adds a short-range push away from
neighbours and walls. Commands are holonomic (vx, vy) in the robot frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy, PolicyContext
from policies.vectors import clamp, vector_length
from worlds.robots import Limits


@dataclass(frozen=True)
class PursuitConfig:
    """Tuning of the scripted pursuit baseline."""

    per_evader: int = 2
    """Pursuers assigned to one evader before the next takes the rest."""
    lead_s: float = 0.6
    """Prediction horizon per metre of distance for the nearest pursuer (capped)."""
    cutoff_lead_s: float = 1.5
    """Extra prediction horizon of the second pursuer, to get ahead of the evader."""
    max_lead_s: float = 2.0
    avoid_m: float = 0.55
    """Centre distance to a neighbour below which pursuers push apart."""
    wall_margin_m: float = 0.3
    """Distance from the robot's surface to a wall below which it pushes off."""
    spread_m: float = 2.0
    """While searching, neighbours closer than this push the searcher away."""
    search_turn_m: float = 1.0
    """While searching, a wall this close ahead makes the robot pick a new direction."""


def holonomic_command(direction: np.ndarray, speed: float, limits: Limits) -> np.ndarray:
    """(vx, vy) along ``direction`` (robot frame) at ``speed``, within the robot's limits."""
    norm = vector_length(direction)
    if norm < 1e-9:
        return np.zeros(2, dtype=np.float32)
    v = np.asarray(direction, dtype=float) / norm * min(speed, limits.max_linear_speed_mps)
    v[0] = clamp(v[0], limits.min_linear_speed_mps, limits.max_linear_speed_mps)
    v[1] = clamp(v[1], -limits.max_angular_speed_radps, limits.max_angular_speed_radps)
    return v.astype(np.float32)


def neighbour_push(neighbours: np.ndarray, within_m: float) -> np.ndarray:
    """Σ over neighbours nearer than ``within_m`` of a unit vector away from each, weighted
    by how far inside that distance it is (robot frame)."""
    px = py = 0.0
    for x, y, *_ in neighbours.tolist():
        d = float(np.hypot(x, y))
        if 1e-6 < d < within_m:
            weight = 1.0 - d / within_m
            px -= weight * x / d
            py -= weight * y / d
    return np.array([px, py])


def sidestep(neighbours: np.ndarray, velocity: np.ndarray, clearance_m: float, horizon_s: float) -> np.ndarray:
    """Push away from neighbours on a collision course: for each, the point of closest
    approach within ``horizon_s`` at current velocities; nearer than ``clearance_m``
    (centre to centre), push away from that point, harder the sooner it comes."""
    push = np.zeros(2)
    for x, y, vx, vy, _ in neighbours:
        r = np.array([x, y])
        v = np.array([vx, vy]) - velocity  # the neighbour's motion relative to mine
        vv = float(v @ v)
        t = 0.0 if vv < 1e-9 else clamp(float(-(r @ v) / vv), 0.0, horizon_s)
        closest = r + v * t
        d = vector_length(closest)
        if d < clearance_m:
            away = -closest / d if d > 1e-6 else np.array([-r[1], r[0]]) / max(vector_length(r), 1e-6)
            push += (1.0 - t / horizon_s) * (1.0 - d / clearance_m) * away
    return push


def wall_push(walls: np.ndarray, within_m: float) -> np.ndarray:
    """Away from walls (distances along +x, +y, -x, -y) nearer than ``within_m``."""
    w = np.clip(1.0 - np.asarray(walls, dtype=float) / within_m, 0.0, 1.0)
    return np.array([w[2] - w[0], w[3] - w[1]])


def wall_ahead(walls: np.ndarray, direction: np.ndarray) -> float:
    """Distance to the nearest wall the robot is heading for (axis walls it moves toward)."""
    ahead = [walls[0] if direction[0] > 0.3 else np.inf, walls[2] if direction[0] < -0.3 else np.inf]
    ahead += [walls[1] if direction[1] > 0.3 else np.inf, walls[3] if direction[1] < -0.3 else np.inf]
    return float(min(ahead))


class SweepSearch:
    """Per-robot search in straight legs that turn at walls, toward open space give or take
    60° (drawn from a generator seeded at each episode start, so runs repeat)."""

    def __init__(self, turn_at_m: float):
        self.turn_at_m = turn_at_m
        self._rng = np.random.default_rng(0)
        self._heading: dict[str, np.ndarray] = {}

    def reset(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)
        self._heading = {}

    def direction(self, agent: str, walls: np.ndarray) -> np.ndarray:
        """Unit search direction (robot frame) of ``agent`` given its wall distances."""
        heading = self._heading.get(agent)
        if heading is None or wall_ahead(walls, heading) < self.turn_at_m:
            open_side = np.arctan2(walls[1] - walls[3], walls[0] - walls[2])
            angle = open_side + self._rng.uniform(-np.pi / 3, np.pi / 3)
            heading = np.array([np.cos(angle), np.sin(angle)])
            self._heading[agent] = heading
        return heading


def visible(rows: np.ndarray) -> np.ndarray:
    """The present rows of a (k, 5) block of x, y, vx, vy, present."""
    return rows[rows[:, 4] > 0.5]


class PursuitPolicy(Policy):
    """Greedy chase with a decentralised two-per-evader assignment."""

    name = "scripted"

    def __init__(self, context: PolicyContext, config: PursuitConfig | None = None):
        if context.task_name != "pursuit":
            raise ValueError(f"the scripted pursuit policy drives 'pursuit' tasks, not {context.task_name!r}")
        super().__init__(context)
        self.config = config or PursuitConfig()
        s = context.observation_slices
        self._vel, self._walls, self._ev, self._nb = s["velocity"], s["walls"], s["evaders"], s["neighbours"]
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
        evaders = visible(obs[self._ev].reshape(-1, 5))
        neighbours = visible(obs[self._nb].reshape(-1, 5)) if self._nb.stop > self._nb.start else np.zeros((0, 5))
        speed = lim.max_linear_speed_mps

        if len(evaders):
            mine = np.hypot(evaders[:, 0], evaders[:, 1])
            ahead = np.zeros(len(evaders), dtype=int)  # neighbours nearer to each evader than me
            for k, (ex, ey) in enumerate(evaders[:, :2]):
                ahead[k] = int(np.sum(np.hypot(neighbours[:, 0] - ex, neighbours[:, 1] - ey) < mine[k]))
            order = np.argsort(mine)
            free = [k for k in order if ahead[k] < cfg.per_evader]
            k = free[0] if free else int(order[0])
            ex, ey, evx, evy = evaders[k, :4]
            lead = min(cfg.lead_s * mine[k], cfg.max_lead_s)
            if ahead[k] >= 1 and mine[k] > 1.0:
                lead = min(lead + cfg.cutoff_lead_s, cfg.max_lead_s + cfg.cutoff_lead_s)
            direction = np.array([ex + evx * lead, ey + evy * lead])
            direction /= max(vector_length(direction), 1e-9)
            direction += 1.5 * neighbour_push(neighbours, cfg.avoid_m)
        else:
            direction = self._search.direction(agent, walls) + neighbour_push(neighbours, cfg.spread_m)
        direction += wall_push(walls, radius + cfg.wall_margin_m)
        return holonomic_command(direction, speed, lim)
