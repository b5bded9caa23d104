"""Multi-robot navigation: every robot drives to its own goal without touching anything.

Observation of one robot (body frame, SI units):
  goal (3): goal x, y in the robot frame and its distance;
  velocity (2): own forward speed and yaw rate;
  lidar (lidar_obs_beams): ranges, min-pooled from the world's lidar beams;
  neighbours (5 × k): for the k nearest robots within ``neighbour_radius_m``: position x, y
    and velocity x, y in the robot frame, then 1 (present) or 0 (padding).

Reward per control step: ``progress`` × metres gained toward the goal, ``goal_bonus`` on
arrival, ``-collision_penalty`` on each new contact, ``-time_penalty``.

Episode metrics, per robot and averaged: success (reached within ``goal_tolerance_m``
before ``max_episode_s``), collisions (contact onsets), path length, shortest collision-free
path length ℓ, SPL = success · ℓ / max(path, ℓ) (Anderson et al. 2018), time to goal.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from worlds import geometry
from worlds.errors import Problem
from worlds.spec import NonNegativeFloat, Placement, PositiveFloat, Spec, WorldSpec
from worlds.tasks.base import ObservationPart, Snapshot, Task

GOAL_GAP_M = 0.3  # free space kept between goals beyond two robot radii


class RewardWeights(Spec):
    progress: NonNegativeFloat = 1.0
    goal_bonus: NonNegativeFloat = 10.0
    collision_penalty: NonNegativeFloat = 5.0
    time_penalty: NonNegativeFloat = 0.01


class NavigationParams(Spec):
    """``task.params`` of a navigation world."""

    goals: Placement
    goal_tolerance_m: PositiveFloat = 0.5
    max_episode_s: PositiveFloat = 60.0
    neighbours: Annotated[int, Field(ge=0, le=16)] = 3
    neighbour_radius_m: PositiveFloat = 5.0
    lidar_obs_beams: Annotated[int, Field(gt=0)] = 72
    reward: RewardWeights = RewardWeights()


def rotate_into(yaw: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Express map-frame vectors (..., 2) in frames with heading ``yaw`` (broadcast)."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([c * x + s * y, -s * x + c * y], axis=-1)


def min_pool(ranges: np.ndarray, out_beams: int) -> np.ndarray:
    """Reduce (N, beams) lidar ranges to (N, out_beams) by taking each sector's minimum."""
    n, beams = ranges.shape
    return ranges.reshape(n, out_beams, beams // out_beams).min(axis=2)


class NavigationTask(Task):
    name = "navigation"
    Params = NavigationParams
    params: NavigationParams

    def __init__(self, world: WorldSpec, params: NavigationParams):
        super().__init__(world, params)
        self.lidar = world.sensors.lidar
        self.radii = np.array([r.model.radius_m for r in self.robots])
        self._grid = geometry.OccupancyGrid(
            world.arena, world.obstacles, inflate_m=float(min(r.model.width_m for r in self.robots)) / 2
        )
        self.goals = np.zeros((self.num_robots, 2))
        self._reset_metrics(np.zeros((self.num_robots, 3)))

    # ---- checks ------------------------------------------------------------------------
    @classmethod
    def check(cls, world: WorldSpec, params: NavigationParams) -> list[Problem]:
        problems: list[Problem] = []
        n = world.num_robots
        goals = params.goals
        hx, hy = world.arena.half_extents
        if world.sensors.lidar.beams % params.lidar_obs_beams:
            problems.append(
                Problem(
                    "task.params.lidar_obs_beams",
                    f"must divide sensors.lidar.beams ({world.sensors.lidar.beams}); got {params.lidar_obs_beams}",
                )
            )
        if goals.poses is not None:
            if len(goals.poses) != n:
                problems.append(
                    Problem(
                        "task.params.goals.poses",
                        f"needs one goal per robot: {n} robots, {len(goals.poses)} goals",
                    )
                )
            for k, goal in enumerate(goals.poses):
                key = f"task.params.goals.poses[{k}]"
                if len(goal) != 2:
                    problems.append(Problem(key, f"a goal is [x, y]; got {list(goal)}"))
                    continue
                if abs(goal[0]) > hx or abs(goal[1]) > hy:
                    problems.append(
                        Problem(
                            key,
                            f"goal {list(goal)} is outside the arena (x in [{-hx:g}, {hx:g}], y in [{-hy:g}, {hy:g}])",
                        )
                    )
                elif geometry.clearance(world.arena, world.obstacles, np.array(goal)) < 0:
                    problems.append(Problem(key, f"goal {list(goal)} is inside an obstacle"))
        else:
            r = goals.region
            if r.min[0] < -hx or r.max[0] > hx or r.min[1] < -hy or r.max[1] > hy:
                problems.append(
                    Problem(
                        "task.params.goals.region",
                        f"region {[list(r.min), list(r.max)]} reaches outside the arena "
                        f"(x in [{-hx:g}, {hx:g}], y in [{-hy:g}, {hy:g}])",
                    )
                )
        return problems

    # ---- observations ------------------------------------------------------------------
    def observation_layout(self) -> list[ObservationPart]:
        k = self.params.neighbours
        return [
            ObservationPart("goal", 3, "goal x, y in the robot frame (m) and distance (m)"),
            ObservationPart("velocity", 2, "forward speed (m/s) and yaw rate (rad/s)"),
            ObservationPart("lidar", self.params.lidar_obs_beams, "min-pooled lidar ranges (m)"),
            ObservationPart("neighbours", 5 * k, "per neighbour: x, y (m), vx, vy (m/s) in the robot frame, present"),
        ]

    def lidar_obs_angles(self) -> np.ndarray:
        """Body-frame angle (rad) at the centre of each pooled lidar sector."""
        return self.lidar.angles().reshape(self.params.lidar_obs_beams, -1).mean(axis=1)

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        diag = float(math.hypot(*self.world.arena.size_m))
        vmax = max(r.limits.max_linear_speed_mps for r in self.robots) * 2.0
        wmax = max(r.limits.max_angular_speed_radps for r in self.robots) * 2.0
        k = self.params.neighbours
        nb_r = self.params.neighbour_radius_m
        lo = np.concatenate(
            [
                [-diag, -diag, 0.0],
                [-vmax, -wmax],
                np.zeros(self.params.lidar_obs_beams),
                np.tile([-nb_r, -nb_r, -vmax, -vmax, 0.0], k),
            ]
        ).astype(np.float32)
        hi = np.concatenate(
            [
                [diag, diag, diag],
                [vmax, wmax],
                np.full(self.params.lidar_obs_beams, self.lidar.range_max_m),
                np.tile([nb_r, nb_r, vmax, vmax, 1.0], k),
            ]
        ).astype(np.float32)
        return lo, hi

    def observe(self, snap: Snapshot) -> np.ndarray:
        n, k = self.num_robots, self.params.neighbours
        pos, yaw = snap.poses[:, :2], snap.poses[:, 2]
        goal_rel = rotate_into(yaw, self.goals - pos)
        goal = np.column_stack([goal_rel, np.linalg.norm(goal_rel, axis=1)])
        velocity = snap.twists[:, [0, 2]]
        if snap.lidar is None:
            lidar = np.full((n, self.params.lidar_obs_beams), self.lidar.range_max_m)
        else:
            lidar = min_pool(snap.lidar, self.params.lidar_obs_beams)
        neighbours = neighbour_features(snap, k, self.params.neighbour_radius_m)
        obs = np.concatenate([goal, velocity, lidar, neighbours], axis=1)
        lo, hi = self.observation_bounds()
        return np.clip(obs, lo, hi).astype(np.float32)

    # ---- episode -----------------------------------------------------------------------
    @property
    def max_episode_s(self) -> float:
        return self.params.max_episode_s

    def reset(self, rng: np.random.Generator, starts: np.ndarray) -> None:
        goals = self.params.goals
        if goals.poses is not None:
            self.goals = np.array([g[:2] for g in goals.poses], dtype=float)
        else:
            sep = 2 * float(self.radii.max()) + GOAL_GAP_M
            points = geometry.sample_free_points(
                rng,
                goals.region,
                self.num_robots,
                self.world.arena,
                self.world.obstacles,
                radius_m=self.radii,
                min_separation_m=sep,
            )
            if points is None:
                raise ValueError(
                    f"{self.world.source}: task.params.goals.region cannot hold {self.num_robots} "
                    "goals clear of obstacles and each other: enlarge it"
                )
            self.goals = points
        self._reset_metrics(starts)

    def _reset_metrics(self, starts: np.ndarray) -> None:
        n = self.num_robots
        self.active = np.ones(n, dtype=bool)
        self.reached = np.zeros(n, dtype=bool)
        self.collisions = np.zeros(n, dtype=int)
        self.path_m = np.zeros(n)
        self.time_to_goal_s = np.full(n, np.nan)
        self._last_pos = starts[:, :2].copy()
        self._last_contact = np.zeros(n, dtype=bool)
        self._last_dist = np.linalg.norm(self.goals - starts[:, :2], axis=1)
        self.shortest_m = np.array([self._grid.path_length(starts[i, :2], self.goals[i]) for i in range(n)])
        self._elapsed_s = 0.0

    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        w = self.params.reward
        pos = snap.poses[:, :2]
        dist = np.linalg.norm(self.goals - pos, axis=1)
        act = self.active
        self.path_m[act] += np.linalg.norm(pos - self._last_pos, axis=1)[act]
        new_contact = snap.contacts & ~self._last_contact
        self.collisions[act] += new_contact[act]
        arrived = act & (dist <= self.params.goal_tolerance_m)
        rewards = w.progress * (self._last_dist - dist) - w.time_penalty
        rewards -= w.collision_penalty * new_contact
        rewards += w.goal_bonus * arrived
        rewards[~act] = 0.0
        self.reached |= arrived
        self.time_to_goal_s[arrived] = snap.time_s
        self.active = act & ~arrived
        self._last_pos, self._last_dist, self._last_contact = pos.copy(), dist, snap.contacts.copy()
        self._elapsed_s = snap.time_s
        return rewards, arrived

    def episode_metrics(self) -> dict[str, Any]:
        n = self.num_robots
        ell = self.shortest_m
        spl = np.where(self.reached, ell / np.maximum(self.path_m, ell), 0.0)
        robots = []
        for i in range(n):
            robots.append(
                {
                    "robot": f"robot_{i}",
                    "success": bool(self.reached[i]),
                    "collisions": int(self.collisions[i]),
                    "path_length_m": round(float(self.path_m[i]), 4),
                    "shortest_path_m": round(float(ell[i]), 4),
                    "spl": round(float(spl[i]), 4),
                    "time_to_goal_s": None
                    if math.isnan(self.time_to_goal_s[i])
                    else round(float(self.time_to_goal_s[i]), 3),
                }
            )
        ttg = self.time_to_goal_s[self.reached]
        return {
            "success_rate": float(self.reached.mean()),
            "collision_rate": float((self.collisions > 0).mean()),
            "collisions": int(self.collisions.sum()),
            "spl": float(spl.mean()),
            "path_length_m": float(self.path_m.mean()),
            "time_to_goal_s": float(ttg.mean()) if len(ttg) else None,
            "episode_s": round(self._elapsed_s, 3),
            "robots": robots,
        }

    def drawables(self) -> dict[str, np.ndarray]:
        return {"goals": self.goals.copy()}


def neighbour_features(snap: Snapshot, k: int, radius_m: float) -> np.ndarray:
    """(N, 5k): the k nearest other robots within ``radius_m`` in each robot's frame."""
    n = len(snap.poses)
    out = np.zeros((n, 5 * k))
    if k == 0 or n < 2:
        return out
    pos, yaw = snap.poses[:, :2], snap.poses[:, 2]
    vel_map = rotate_into(-yaw, snap.twists[:, :2])  # body → map
    rel = pos[None, :, :] - pos[:, None, :]  # [i, j] = p_j - p_i
    dist = np.linalg.norm(rel, axis=-1)
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1)[:, :k]
    for slot in range(min(k, n - 1)):
        j = order[:, slot]
        d = dist[np.arange(n), j]
        present = d <= radius_m
        rel_b = rotate_into(yaw, rel[np.arange(n), j])
        vel_b = rotate_into(yaw, vel_map[j])
        block = np.column_stack([rel_b, vel_b, np.ones(n)])
        out[:, 5 * slot : 5 * slot + 5] = np.where(present[:, None], block, 0.0)
    return out
