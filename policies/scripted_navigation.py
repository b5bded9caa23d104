"""Scripted navigation baseline: gap seeking plus a dynamic-window safety filter.

Each control period each robot (1) looks for the open direction nearest its goal: a
heading is open when a corridor as wide as the robot, with a margin, is free of lidar
returns and of neighbours' predicted positions for a look-ahead distance; (2) turns
toward it and drives at a speed set by the free distance ahead and the turn; (3) keeps
that command only if, rolled out as an arc, the robot could still brake before touching
anything, else it takes the nearest arc that passes that test. It uses only what the
observation holds (goal, own velocity, lidar, neighbours), so it runs unchanged behind
the ROS policy node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy, PolicyContext


@dataclass(frozen=True)
class DwaConfig:
    """Tuning of the scripted baseline."""

    headings: int = 120
    """Candidate directions over the full circle."""
    lookahead_m: float = 4.0
    """How much free corridor (or the goal distance, if nearer) makes a direction fully open."""
    blocked_weight: float = 2.0
    """Cost (rad-equivalent) of a direction that is blocked right away, less if further."""
    min_free_m: float = 0.6
    """A direction with less free corridor than this is never chosen while another has more."""
    corridor_margin_m: float = 0.2
    """Half-width of the corridor beyond the robot's enclosing circle."""
    heading_gain: float = 2.0
    """ω = gain × heading error (rad/s per rad), clipped to the limit."""
    slow_distance_m: float = 2.5
    """Free distance ahead below which the robot slows down."""
    goal_slow_distance_m: float = 1.0
    """Distance to the goal below which the robot slows down."""
    hysteresis: float = 0.4
    """Weight on staying with the previous direction (stops dithering between gaps)."""
    neighbour_horizon_s: float = 0.5
    """How far ahead neighbours' positions are predicted."""
    horizon_s: float = 1.5
    """How far ahead arcs are rolled out for the safety filter."""
    time_step_s: float = 0.1
    safety_margin_m: float = 0.1
    """Clearance kept beyond the robot's enclosing circle in the safety filter."""
    reaction_s: float = 0.25
    """Time before braking starts, for the can-it-stop test."""
    linear_samples: int = 9
    angular_samples: int = 25


class ScriptedNavigationPolicy(Policy):
    """Reactive goal seeking with obstacle and robot avoidance (dynamic window)."""

    name = "scripted"

    def __init__(self, context: PolicyContext, config: DwaConfig | None = None):
        if context.task_name != "navigation":
            raise ValueError(f"the scripted navigation policy drives 'navigation' tasks, not {context.task_name!r}")
        if context.lidar_angles is None:
            raise ValueError("the scripted navigation policy needs lidar in the observation")
        super().__init__(context)
        self.config = config or DwaConfig()
        cfg = self.config
        self._previous: dict[str, float] = {}
        self._times = np.arange(1, round(cfg.horizon_s / cfg.time_step_s) + 1) * cfg.time_step_s
        s = context.observation_slices
        self._goal, self._vel, self._lidar, self._nb = s["goal"], s["velocity"], s["lidar"], s["neighbours"]
        self._cos = np.cos(context.lidar_angles)
        self._sin = np.sin(context.lidar_angles)

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: self._act_one(agent, np.asarray(obs, dtype=float)) for agent, obs in observations.items()}

    def reset(self, seed: int | None = None) -> None:
        self._previous: dict[str, float] = {}

    def _act_one(self, agent: str, obs: np.ndarray) -> np.ndarray:
        cfg, ctx = self.config, self.context
        lim = ctx.limits[agent]
        radius = ctx.robot_radius_m[agent]
        gx, gy, gdist = (float(x) for x in obs[self._goal])
        w_now = float(obs[self._vel][1])

        ranges = obs[self._lidar]
        hit = ranges < ctx.lidar_range_max_m - 1e-3
        ox, oy = ranges[hit] * self._cos[hit], ranges[hit] * self._sin[hit]
        nb = obs[self._nb].reshape(-1, 5)
        nb = nb[nb[:, 4] > 0.5]
        # Neighbours count as obstacles where they are and where they are heading.
        ts = np.linspace(0.0, cfg.neighbour_horizon_s, 4)
        nx = (nb[:, None, 0] + nb[:, None, 2] * ts).ravel()
        ny = (nb[:, None, 1] + nb[:, None, 3] * ts).ravel()
        # A neighbour is as wide as we are: grow its points by our radius.
        px_all = np.concatenate([ox, nx])
        py_all = np.concatenate([oy, ny])
        extra = np.concatenate([np.zeros(len(ox)), np.full(len(nx), radius)])

        # 1. Free distance along each candidate heading's corridor.
        phi = -np.pi + 2 * np.pi * np.arange(cfg.headings) / cfg.headings
        half = radius + cfg.corridor_margin_m
        free = _corridor_free(phi, px_all, py_all, half + extra)
        need = min(cfg.lookahead_m, max(gdist - ctx.goal_tolerance_m * 0.5, 0.3))
        goal_bearing = np.arctan2(gy, gx)
        cost = np.abs(_wrap(phi - goal_bearing))
        prev = self._previous.get(agent)
        if prev is not None:
            cost += cfg.hysteresis * np.abs(_wrap(phi - (prev - w_now * ctx.control_dt)))
        # Short corridors cost in proportion to how short they are, so a slightly longer
        # way round beats turning back, and a wall right ahead beats nothing.
        cost += cfg.blocked_weight * np.clip(1.0 - free / need, 0.0, 1.0)
        # Directions with no room at all are out while any other has some.
        room = free >= min(cfg.min_free_m, need)
        if room.any():
            cost = np.where(room, cost, np.inf)
        k = int(np.argmin(cost))
        target = float(phi[k])
        self._previous[agent] = target

        # 2. Turn toward it; speed from the room ahead, the turn and the goal distance.
        w_des = float(np.clip(cfg.heading_gain * target, -lim.max_angular_speed_radps, lim.max_angular_speed_radps))
        ahead = float(_corridor_free(np.zeros(1), px_all, py_all, half + extra)[0])
        v_des = lim.max_linear_speed_mps * min(
            1.0,
            ahead / cfg.slow_distance_m,
            gdist / cfg.goal_slow_distance_m + 0.2,
        )
        v_des *= max(0.0, np.cos(target)) ** 2
        v_des = max(v_des, 0.0)

        # 3. Keep it only if the robot could brake before touching anything.
        return self._safe_arc(v_des, w_des, ox, oy, nb, radius, lim)

    def _safe_arc(self, v_des, w_des, ox, oy, nb, radius, lim) -> np.ndarray:
        """(v_des, w_des) if the robot could brake on that arc before touching anything,
        else the nearest arc of the sampled fan that passes the test."""
        cfg = self.config
        if self._admissible(np.array([v_des]), np.array([w_des]), ox, oy, nb, radius, lim)[0]:
            return np.array([v_des, w_des], dtype=np.float32)
        vs = np.linspace(0.0, lim.max_linear_speed_mps, cfg.linear_samples)
        ws = np.linspace(-lim.max_angular_speed_radps, lim.max_angular_speed_radps, cfg.angular_samples)
        v, w = np.repeat(vs, len(ws)), np.tile(ws, len(vs))
        ok = self._admissible(v, w, ox, oy, nb, radius, lim)
        # Nearest admissible arc to the wanted one; turning in place always qualifies.
        dist = np.abs(v - v_des) / lim.max_linear_speed_mps + np.abs(w - w_des) / lim.max_angular_speed_radps
        dist[~ok] = np.inf
        best = int(np.argmin(dist))
        return np.array([v[best], w[best]], dtype=np.float32)

    def _admissible(self, v, w, ox, oy, nb, radius, lim) -> np.ndarray:
        """For each arc (v, w): could the robot brake before its first contact?"""
        cfg = self.config
        t = self._times[None, :]
        theta = w[:, None] * t
        straight = (np.abs(w) < 1e-6)[:, None]
        safe_w = np.where(straight, 1.0, w[:, None])
        px = np.where(straight, v[:, None] * t, v[:, None] / safe_w * np.sin(theta))
        py = np.where(straight, 0.0, v[:, None] / safe_w * (1.0 - np.cos(theta)))
        clear = np.full(px.shape, np.inf)
        if len(ox):
            d2 = (px[..., None] - ox) ** 2 + (py[..., None] - oy) ** 2
            clear = np.sqrt(d2.min(axis=-1)) - radius
        for nx, ny, nvx, nvy, _ in nb:
            gap = np.hypot(px - (nx + nvx * t), py - (ny + nvy * t)) - 2 * radius
            clear = np.minimum(clear, gap)
        touching = clear - cfg.safety_margin_m <= 0.0
        first = np.where(touching.any(axis=1), self._times[np.argmax(touching, axis=1)], np.inf)
        stop_time = cfg.reaction_s + v / lim.max_linear_accel_mps2
        return (first > stop_time) | (v <= 1e-6)


def _corridor_free(phi: np.ndarray, px: np.ndarray, py: np.ndarray, half_width: np.ndarray) -> np.ndarray:
    """Distance a disc of radius ``half_width`` can travel along each heading ``phi``
    before touching one of the points (px, py); ``inf`` when nothing is in the way."""
    if len(px) == 0:
        return np.full(len(phi), np.inf)
    c, s = np.cos(phi)[:, None], np.sin(phi)[:, None]
    along = px[None, :] * c + py[None, :] * s
    lateral = np.abs(-px[None, :] * s + py[None, :] * c)
    hw = np.broadcast_to(half_width, px.shape)[None, :]
    blocking = (lateral < hw) & (along > 0.0)
    reach = along - np.sqrt(np.maximum(hw**2 - lateral**2, 0.0))
    reach = np.where(blocking, np.maximum(reach, 0.0), np.inf)
    return reach.min(axis=1)


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi
