"""Scripted flocking baseline: Reynolds' boids with goal seeking.

Each robot sums five velocity terms computed from its own observation, in its own frame:
separation (away from neighbours closer than ``separation_m``, harder the closer),
cohesion (toward the centroid of the neighbours it sees), alignment (toward their mean
velocity), goal seeking (toward the flock's goal at ``cruise_mps``, slowing in the last
metre), and wall avoidance (away from lidar sectors with a return nearer than
``wall_m`` that no neighbour explains). The sum is capped at the robot's speed limit. The
weights are the classic hand-tuned kind: the flock gets there, but nothing plans ahead
(no waiting for a straggler out of sight, no path around a wall). Commands are (vx, vy)
in the robot's frame, so it drives holonomic robots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy, PolicyContext


@dataclass(frozen=True)
class BoidsConfig:
    """Tuning of the boids baseline."""

    cruise_mps: float = 0.7
    """Speed of the goal-seeking term far from the goal."""
    goal_slow_m: float = 1.0
    """Distance to the goal point below which the goal term shrinks in proportion."""
    separation_m: float = 0.7
    """Centre-to-centre distance below which a neighbour pushes the robot away."""
    separation_gain: float = 1.5
    """m/s of push from a neighbour at zero distance (linear down to 0 at separation_m)."""
    cohesion_gain: float = 0.25
    """m/s per metre between the robot and its neighbours' centroid."""
    alignment_gain: float = 0.4
    """Weight of the neighbours' mean velocity minus the robot's own."""
    wall_m: float = 1.0
    """Lidar returns nearer than this push the robot away."""
    wall_gain: float = 1.0
    """m/s of push from a return at zero range (linear down to 0 at wall_m)."""


class BoidsPolicy(Policy):
    """Separation, cohesion, alignment and goal seeking from each robot's local view."""

    name = "scripted"

    def __init__(self, context: PolicyContext, config: BoidsConfig | None = None):
        if context.task_name != "flocking":
            raise ValueError(f"the boids policy drives 'flocking' tasks, not {context.task_name!r}")
        if context.lidar_angles is None:
            raise ValueError("the boids policy needs lidar in the observation")
        super().__init__(context)
        self.config = config or BoidsConfig()
        s = context.observation_slices
        self._vel, self._goal, self._nb, self._lidar = s["velocity"], s["goal"], s["neighbours"], s["lidar"]
        self._dirs = np.stack([np.cos(context.lidar_angles), np.sin(context.lidar_angles)], axis=-1)

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: self._act_one(agent, np.asarray(obs, dtype=float)) for agent, obs in observations.items()}

    def _act_one(self, agent: str, obs: np.ndarray) -> np.ndarray:
        cfg = self.config
        lim = self.context.limits[agent]
        radius = self.context.robot_radius_m[agent]
        own_v = obs[self._vel]
        gx, gy, gdist = obs[self._goal]
        desired = cfg.cruise_mps * min(1.0, gdist / cfg.goal_slow_m) * np.array([gx, gy])

        nb = obs[self._nb].reshape(-1, 5)
        nb = nb[nb[:, 4] > 0.5]
        if len(nb):
            rel, vel = nb[:, :2], nb[:, 2:4]
            d = np.maximum(np.linalg.norm(rel, axis=1), 1e-6)
            push = np.clip(1.0 - d / cfg.separation_m, 0.0, None)
            desired -= cfg.separation_gain * (push[:, None] * rel / d[:, None]).sum(axis=0)
            desired += cfg.cohesion_gain * rel.mean(axis=0)
            desired += cfg.alignment_gain * (vel.mean(axis=0) - own_v)

        ranges = obs[self._lidar]
        hits = ranges < cfg.wall_m
        if hits.any():
            points = ranges[hits, None] * self._dirs[hits]
            # A return next to a seen neighbour is that neighbour: separation handles it.
            if len(nb):
                gap = np.linalg.norm(points[:, None, :] - nb[None, :, :2], axis=-1).min(axis=1)
                wall = gap > 2.5 * radius
                points, r = points[wall], ranges[hits][wall]
            else:
                r = ranges[hits]
            push = np.clip(1.0 - r / cfg.wall_m, 0.0, None)
            desired -= cfg.wall_gain * (push[:, None] * points / np.maximum(r, 1e-6)[:, None]).sum(axis=0)

        speed = float(np.linalg.norm(desired))
        vmax = lim.max_linear_speed_mps
        if speed > vmax:
            desired *= vmax / speed
        lo = np.array([lim.min_linear_speed_mps, -lim.max_angular_speed_radps])
        hi = np.array([lim.max_linear_speed_mps, lim.max_angular_speed_radps])
        return np.clip(desired, lo, hi).astype(np.float32)
