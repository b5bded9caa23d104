"""Multi-robot navigation: every robot drives to its own goal without touching anything.

Observation of one robot (body frame, SI units):
  goal (3): goal x, y in the robot frame and its distance;
  velocity (2): own forward speed and yaw rate;
  lidar (lidar_obs_beams): ranges, min-pooled from the world's lidar beams;
  neighbours (5 × k): for the k nearest robots within ``neighbour_radius_m``: position x, y
    and velocity x, y in the robot frame, then 1 (present) or 0 (padding).

Reward per control step: ``progress`` × metres gained toward the goal, ``goal_bonus`` on
arrival, ``-collision_penalty`` on each new contact and ``-contact_penalty`` per step in
contact, ``-proximity_penalty`` × (1 − clearance / ``safe_distance_m``) when the nearest lidar
return is closer than the robot's enclosing circle plus ``safe_distance_m``, ``-time_penalty``.

Episode metrics, per robot and averaged: success (reached within ``goal_tolerance_m``
before ``max_episode_s``), collisions (contact onsets), path length, shortest collision-free
path length ℓ, SPL = success · ℓ / max(path, ℓ) (Anderson et al. 2018), time to goal.
With many worlds at once (training), ℓ is the straight-line distance unless
``exact_paths`` is set: the grid search per robot would cost more than the step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from worlds import geometry
from worlds.errors import Problem
from worlds.layout import PlacementError
from worlds.ranges import Beams, Duration_s, Length_m, Neighbours, RewardWeight
from worlds.spec import Placement, Spec, WorldSpec
from worlds.tasks import kernels
from worlds.tasks.base import ObservationPart, Snapshot, Task, lidar_pooling_problem, region_problem

GOAL_GAP_M = 0.3  # free space kept between goals beyond two robot radii


class RewardWeights(Spec):
    progress: RewardWeight = 1.0
    goal_bonus: RewardWeight = 10.0
    collision_penalty: RewardWeight = 5.0
    """On each new contact."""
    contact_penalty: RewardWeight = 0.5
    """Per control step while in contact (pushing on is never free)."""
    proximity_penalty: RewardWeight = 0.2
    """Per step, scaled by how far inside ``safe_distance_m`` the nearest lidar return is."""
    safe_distance_m: Length_m = 0.4
    """Clearance beyond the robot's enclosing circle that counts as safe."""
    time_penalty: RewardWeight = 0.01


class NavigationParams(Spec):
    """``task.params`` of a navigation world."""

    goals: Placement
    goal_tolerance_m: Length_m = 0.5
    max_episode_s: Duration_s = 60.0
    neighbours: Neighbours = 3
    neighbour_radius_m: Length_m = 5.0
    lidar_obs_beams: Beams = 72
    reward: RewardWeights = RewardWeights()


def rotate_into(yaw: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Express map-frame vectors (..., 2) in frames with heading ``yaw`` (broadcast)."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([c * x + s * y, -s * x + c * y], axis=-1)


def min_pool(ranges: np.ndarray, out_beams: int) -> np.ndarray:
    """Reduce (..., beams) lidar ranges to (..., out_beams) by each sector's minimum."""
    beams = ranges.shape[-1]
    return ranges.reshape(*ranges.shape[:-1], out_beams, beams // out_beams).min(axis=-1)


def neighbour_features(poses: np.ndarray, twists: np.ndarray, k: int, radius_m: float) -> np.ndarray:
    """(B, N, 5k): the k nearest other robots within ``radius_m``, in each robot's frame:
    position x, y, velocity x, y, present flag (see ``worlds.tasks.kernels``)."""
    B, N = poses.shape[:2]
    out = np.zeros((B, N, 5 * k))
    if k > 0 and N > 1:
        kernels.neighbour_features(
            np.ascontiguousarray(poses, dtype=float), np.ascontiguousarray(twists, dtype=float), k, radius_m, out
        )
    return out


class NavigationTask(Task):
    name = "navigation"
    Params = NavigationParams
    params: NavigationParams

    def __init__(self, world: WorldSpec, params: NavigationParams, num_worlds: int = 1):
        super().__init__(world, params, num_worlds)
        self.lidar = world.sensors.lidar
        self.radii = np.array([r.model.radius_m for r in self.robots])
        self.exact_paths = num_worlds == 1
        self._grid = None
        B, N = num_worlds, self.num_robots
        self.goals = np.zeros((B, N, 2))
        self._bounds = self._make_bounds()
        self.active = np.ones((B, N), dtype=bool)
        self.reached = np.zeros((B, N), dtype=bool)
        self.collisions = np.zeros((B, N), dtype=int)
        self.path_m = np.zeros((B, N))
        self.time_to_goal_s = np.full((B, N), np.nan)
        self.shortest_m = np.zeros((B, N))
        self._last_pos = np.zeros((B, N, 2))
        self._last_contact = np.zeros((B, N), dtype=bool)
        self._last_dist = np.zeros((B, N))
        self._elapsed_s = np.zeros(B)

    # ---- checks ------------------------------------------------------------------------
    @classmethod
    def check(cls, world: WorldSpec, params: NavigationParams) -> list[Problem]:
        problems: list[Problem] = []
        n = world.num_robots
        goals = params.goals
        hx, hy = world.arena.half_extents
        if bad := lidar_pooling_problem(world, params.lidar_obs_beams):
            problems.append(bad)
        if goals.poses is not None:
            if len(goals.poses) != n:
                problems.append(
                    Problem(
                        "task.params.goals.poses", f"needs one goal per robot: {n} robots, {len(goals.poses)} goals"
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
            if bad := region_problem("task.params.goals.region", goals.region, world):
                problems.append(bad)
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

    def _make_bounds(self) -> tuple[np.ndarray, np.ndarray]:
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

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._bounds

    def observe(self, snap: Snapshot) -> np.ndarray:
        B, N = snap.poses.shape[:2]
        pos, yaw = snap.poses[..., :2], snap.poses[..., 2]
        goal_rel = rotate_into(yaw, self.goals - pos)
        goal = np.concatenate([goal_rel, np.linalg.norm(goal_rel, axis=-1, keepdims=True)], axis=-1)
        velocity = snap.twists[..., [0, 2]]
        if snap.lidar is None:
            lidar = np.full((B, N, self.params.lidar_obs_beams), self.lidar.range_max_m)
        else:
            lidar = min_pool(snap.lidar, self.params.lidar_obs_beams)
        neighbours = neighbour_features(snap.poses, snap.twists, self.params.neighbours, self.params.neighbour_radius_m)
        obs = np.concatenate([goal, velocity, lidar, neighbours], axis=-1)
        lo, hi = self._bounds
        return np.clip(obs, lo, hi).astype(np.float32)

    # ---- episode -----------------------------------------------------------------------
    @property
    def max_episode_s(self) -> float:
        return self.params.max_episode_s

    def reset(self, rng: np.random.Generator, starts: np.ndarray, worlds: np.ndarray | None = None) -> None:
        worlds = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=int)
        starts = np.asarray(starts, dtype=float).reshape(len(worlds), self.num_robots, 3)
        for w, start in zip(worlds, starts, strict=True):
            self.goals[w] = self._draw_goals(rng)
            self._reset_world(w, start)

    def _draw_goals(self, rng: np.random.Generator) -> np.ndarray:
        goals = self.params.goals
        if goals.poses is not None:
            return np.array([g[:2] for g in goals.poses], dtype=float)
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
            raise PlacementError(
                "task.params.goals.region",
                f"cannot hold {self.num_robots} goals clear of obstacles and each other: enlarge it",
            )
        return points

    def _reset_world(self, w: int, starts: np.ndarray) -> None:
        self.active[w] = True
        self.reached[w] = False
        self.collisions[w] = 0
        self.path_m[w] = 0.0
        self.time_to_goal_s[w] = np.nan
        self._last_pos[w] = starts[:, :2]
        self._last_contact[w] = False
        self._last_dist[w] = np.linalg.norm(self.goals[w] - starts[:, :2], axis=1)
        if self.exact_paths:
            if self._grid is None:
                inflate = float(min(r.model.width_m for r in self.robots)) / 2
                self._grid = geometry.OccupancyGrid(self.world.arena, self.world.obstacles, inflate_m=inflate)
            self.shortest_m[w] = [
                self._grid.path_length(starts[i, :2], self.goals[w, i]) for i in range(self.num_robots)
            ]
        else:
            self.shortest_m[w] = self._last_dist[w]
        self._elapsed_s[w] = 0.0

    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        w = self.params.reward
        pos = snap.poses[..., :2]
        dist = np.linalg.norm(self.goals - pos, axis=-1)
        act = self.active
        moved = np.linalg.norm(pos - self._last_pos, axis=-1)
        self.path_m += np.where(act, moved, 0.0)
        new_contact = snap.contacts & ~self._last_contact
        self.collisions += act & new_contact
        arrived = act & (dist <= self.params.goal_tolerance_m)
        rewards = w.progress * (self._last_dist - dist) - w.time_penalty
        rewards -= w.collision_penalty * new_contact + w.contact_penalty * snap.contacts
        if snap.lidar is not None and w.proximity_penalty > 0:
            clearance = snap.lidar.min(axis=-1) - self.radii
            rewards -= w.proximity_penalty * np.clip(1.0 - clearance / w.safe_distance_m, 0.0, 1.0)
        rewards += w.goal_bonus * arrived
        rewards = np.where(act, rewards, 0.0)
        self.reached |= arrived
        t = np.broadcast_to(np.asarray(snap.time_s, dtype=float).reshape(-1, 1), dist.shape)
        self.time_to_goal_s = np.where(arrived, t, self.time_to_goal_s)
        self.active = act & ~arrived
        self._last_pos = pos.copy()
        self._last_dist = dist
        self._last_contact = snap.contacts.copy()
        self._elapsed_s = np.asarray(snap.time_s, dtype=float).reshape(-1).copy()
        return rewards, arrived

    def done(self) -> np.ndarray:
        return ~self.active.any(axis=1)

    def episode_metrics(self, world: int = 0) -> dict[str, Any]:
        reached = self.reached[world]
        ell = self.shortest_m[world]
        path = self.path_m[world]
        spl = np.where(reached, ell / np.maximum(np.maximum(path, ell), 1e-9), 0.0)
        ttg_all = self.time_to_goal_s[world]
        collisions = self.collisions[world]
        robots = []
        for i in range(self.num_robots):
            robots.append(
                {
                    "robot": f"robot_{i}",
                    "success": bool(reached[i]),
                    "collisions": int(collisions[i]),
                    "path_length_m": round(float(path[i]), 4),
                    "shortest_path_m": round(float(ell[i]), 4),
                    "spl": round(float(spl[i]), 4),
                    "time_to_goal_s": None if math.isnan(ttg_all[i]) else round(float(ttg_all[i]), 3),
                }
            )
        ttg = ttg_all[reached]
        return {
            "success_rate": float(reached.mean()),
            "collision_rate": float((collisions > 0).mean()),
            "collisions": int(collisions.sum()),
            "spl": float(spl.mean()),
            "path_length_m": float(path.mean()),
            "time_to_goal_s": float(ttg.mean()) if len(ttg) else None,
            "episode_s": round(float(self._elapsed_s[world]), 3),
            "robots": robots,
        }

    def drawables(self, world: int = 0) -> dict[str, np.ndarray]:
        return {"goals": self.goals[world].copy()}
