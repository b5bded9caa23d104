"""Flocking: the team travels as one cohesive, aligned, collision-free flock to a goal
region (SwarmBench / VMAS family). Each robot sees only its own motion, the direction of
the flock's goal, its nearest neighbours and a coarse lidar.

Observation of one robot (body frame, SI units):
  velocity (2): own velocity x, y;
  goal (3): unit vector toward the flock's goal point, x, y, and its distance;
  neighbours (5 × k): for the k nearest robots within ``neighbour_radius_m``: position x, y
    and velocity x, y in the robot frame, then 1 (present) or 0 (padding);
  lidar (lidar_obs_beams): ranges (walls and robots), min-pooled from the world's lidar.

Reward per control step and robot: ``progress`` × metres it gained toward the goal;
``-cohesion`` × its distance to the flock's centroid (m); ``alignment`` × the cosine between
its heading of travel and the mean heading of the neighbours within ``neighbour_radius_m``
(0 at rest); ``-separation`` × Σ over other robots of max(0, 1 - distance /
``safety_distance_m``); ``-collision_penalty`` on each new contact; ``goal_bonus`` to every
robot when the flock arrives.

The flock arrives when every robot is within ``goal_radius_m`` of the goal point; the
episode then ends for all robots (terminated). Episode metrics, over the control steps
of the episode:
  cohesion_m: mean over steps of the robots' mean distance to the flock centroid;
  max_spread_m: the largest distance of any robot from the centroid at any step;
  order_parameter: mean over steps of |(1/N) Σ v_i / |v_i||, a robot slower than
    0.05 m/s counting as 0 (1: all travel the same way; 0: at rest or disordered);
  min_separation_m: the smallest centre-to-centre distance between two robots;
  collisions: contact onsets (walls or robots); collision_rate: fraction of robots with any;
  goal_progress: 1 - remaining / initial distance of the centroid to the goal region's
    edge (``goal_radius_m`` around the goal), 1 on arrival, ≤ 0 if it never got closer;
  time_to_goal_s: when the flock arrived (None if it did not);
  success_rate: 1.0 when the flock arrived, no robot was ever more than
    ``cohesion_radius_m`` from the centroid, and order_parameter ≥ ``min_order_parameter``;
    else 0.0 (one figure per episode: the flock succeeds or fails as a whole);
  per robot (``robots``): success (the flock's), collisions, path length, mean distance
    to the centroid (cohesion_m), time to goal.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from numba import njit
from pydantic import Field

from worlds.errors import Problem
from worlds.ranges import Beams, Duration_s, Length_m, Neighbours, RewardWeight
from worlds.spec import Region, Spec, WorldSpec
from worlds.tasks.base import ObservationPart, Snapshot, Task, lidar_pooling_problem, region_problem

MOVING_MPS = 0.05  # below this a robot has no heading of travel (order parameter, alignment)
HEX_PACKING = math.pi / (2 * math.sqrt(3))  # densest packing of equal discs in the plane


class FlockingReward(Spec):
    progress: RewardWeight = 1.0
    goal_bonus: RewardWeight = 10.0
    cohesion: RewardWeight = 0.01
    alignment: RewardWeight = 0.01
    separation: RewardWeight = 0.05
    collision_penalty: RewardWeight = 2.0


class FlockingParams(Spec):
    """``task.params`` of a flocking world."""

    goal_region: Region
    goal_radius_m: Length_m = 2.0
    cohesion_radius_m: Length_m = 4.0
    min_order_parameter: Annotated[float, Field(ge=0, le=1)] = 0.7
    safety_distance_m: Length_m = 0.6
    max_episode_s: Duration_s = 30.0
    neighbours: Neighbours = 4
    neighbour_radius_m: Length_m = 4.0
    lidar_obs_beams: Beams = 8
    reward: FlockingReward = FlockingReward()


# ---- compiled per-step maths (numba; serial: a batch of 256 worlds takes ~0.1 ms) --------


@njit(cache=True, nogil=True)
def nearest_others(poses, b, i, k, radius_m, idx, dist):
    """Fill ``idx``/``dist`` with the (at most ``k``) other robots of world ``b`` nearest to
    robot ``i`` within ``radius_m``, nearest first; return how many there are."""
    n = 0
    if k == 0:
        return 0
    for j in range(poses.shape[1]):
        if j == i:
            continue
        dx = poses[b, j, 0] - poses[b, i, 0]
        dy = poses[b, j, 1] - poses[b, i, 1]
        d = math.sqrt(dx * dx + dy * dy)
        if d > radius_m or (n == k and d >= dist[k - 1]):
            continue
        at = n if n < k else k - 1
        while at > 0 and dist[at - 1] > d:
            dist[at] = dist[at - 1]
            idx[at] = idx[at - 1]
            at -= 1
        dist[at] = d
        idx[at] = j
        if n < k:
            n += 1
    return n


@njit(cache=True, nogil=True)
def write_neighbours(poses, twists, cos_yaw, sin_yaw, b, i, idx, n, k, row, at):
    """Write ``k`` neighbour slots (x, y, vx, vy in robot ``i``'s frame, present) into
    ``row[at:]``: the ``n`` robots in ``idx``, then zero padding. Twists are body-frame;
    ``cos_yaw``/``sin_yaw`` (N,) are world ``b``'s robots' headings (trig is the cost here)."""
    ci, si = cos_yaw[i], sin_yaw[i]
    for slot in range(k):
        base = at + 5 * slot
        if slot >= n:
            for q in range(5):
                row[base + q] = 0.0
            continue
        j = idx[slot]
        dx = poses[b, j, 0] - poses[b, i, 0]
        dy = poses[b, j, 1] - poses[b, i, 1]
        cj, sj = cos_yaw[j], sin_yaw[j]
        vx = cj * twists[b, j, 0] - sj * twists[b, j, 1]  # map frame
        vy = sj * twists[b, j, 0] + cj * twists[b, j, 1]
        row[base] = ci * dx + si * dy
        row[base + 1] = -si * dx + ci * dy
        row[base + 2] = ci * vx + si * vy
        row[base + 3] = -si * vx + ci * vy
        row[base + 4] = 1.0


@njit(cache=True, nogil=True)
def clip_row(row, lo, hi):
    for q in range(row.shape[0]):
        if row[q] < lo[q]:
            row[q] = lo[q]
        elif row[q] > hi[q]:
            row[q] = hi[q]


@njit(cache=True, nogil=True)
def _observe(poses, twists, lidar, goals, k, radius_m, lo, hi, out):
    """out (B, N, D) float32: the observation of the module docstring, clipped to lo/hi."""
    B, N = poses.shape[0], poses.shape[1]
    sectors = lo.shape[0] - 5 - 5 * k
    per = lidar.shape[2] // sectors
    idx = np.empty(max(k, 1), np.int64)
    dist = np.empty(max(k, 1))
    cos_yaw = np.empty(N)
    sin_yaw = np.empty(N)
    for b in range(B):
        for i in range(N):
            cos_yaw[i] = math.cos(poses[b, i, 2])
            sin_yaw[i] = math.sin(poses[b, i, 2])
        for i in range(N):
            row = out[b, i]
            c, s = cos_yaw[i], sin_yaw[i]
            row[0] = twists[b, i, 0]
            row[1] = twists[b, i, 1]
            gx = goals[b, 0] - poses[b, i, 0]
            gy = goals[b, 1] - poses[b, i, 1]
            lx, ly = c * gx + s * gy, -s * gx + c * gy
            d = math.sqrt(lx * lx + ly * ly)
            row[2] = lx / d if d > 1e-9 else 0.0
            row[3] = ly / d if d > 1e-9 else 0.0
            row[4] = d
            n = nearest_others(poses, b, i, k, radius_m, idx, dist)
            write_neighbours(poses, twists, cos_yaw, sin_yaw, b, i, idx, n, k, row, 5)
            at = 5 + 5 * k
            for q in range(sectors):
                m = lidar[b, i, q * per]
                for r in range(1, per):
                    m = min(m, lidar[b, i, q * per + r])
                row[at + q] = m
            clip_row(row, lo, hi)


@njit(cache=True, nogil=True)
def _geometry(poses, twists, goals, radius_m, safety_m, dist, spread, crowding, alignment, order, closest, gap):
    """Per robot: distance to the goal, to the flock centroid, crowding Σ max(0, 1 - d/safety),
    alignment (cosine with the neighbours' mean heading of travel); per world: order
    parameter, closest pair distance, centroid distance to the goal."""
    B, N = poses.shape[0], poses.shape[1]
    ux = np.empty(N)
    uy = np.empty(N)
    for b in range(B):
        cx = cy = sx = sy = 0.0
        for i in range(N):
            c, s = math.cos(poses[b, i, 2]), math.sin(poses[b, i, 2])
            vx = c * twists[b, i, 0] - s * twists[b, i, 1]
            vy = s * twists[b, i, 0] + c * twists[b, i, 1]
            speed = math.sqrt(vx * vx + vy * vy)
            ux[i] = vx / speed if speed > MOVING_MPS else 0.0
            uy[i] = vy / speed if speed > MOVING_MPS else 0.0
            sx += ux[i]
            sy += uy[i]
            cx += poses[b, i, 0]
            cy += poses[b, i, 1]
        cx /= N
        cy /= N
        order[b] = math.sqrt(sx * sx + sy * sy) / N
        gap[b] = math.sqrt((goals[b, 0] - cx) ** 2 + (goals[b, 1] - cy) ** 2)
        closest[b] = np.inf
        for i in range(N):
            x, y = poses[b, i, 0], poses[b, i, 1]
            spread[b, i] = math.sqrt((x - cx) ** 2 + (y - cy) ** 2)
            dist[b, i] = math.sqrt((goals[b, 0] - x) ** 2 + (goals[b, 1] - y) ** 2)
            crowd = hx = hy = 0.0
            seen = 0
            for j in range(N):
                if j == i:
                    continue
                d = math.sqrt((poses[b, j, 0] - x) ** 2 + (poses[b, j, 1] - y) ** 2)
                closest[b] = min(closest[b], d)
                if d < safety_m:
                    crowd += 1.0 - d / safety_m
                if d <= radius_m:
                    hx += ux[j]
                    hy += uy[j]
                    seen += 1
            crowding[b, i] = crowd
            alignment[b, i] = (ux[i] * hx + uy[i] * hy) / seen if seen else 0.0


def contiguous_f64(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous float64 array (what the kernels are compiled for)."""
    return np.ascontiguousarray(a, dtype=np.float64)


class FlockingTask(Task):
    name = "flocking"
    headline_metric = ("time_to_goal_s", "min")
    Params = FlockingParams
    params: FlockingParams

    def __init__(self, world: WorldSpec, params: FlockingParams, num_worlds: int = 1):
        super().__init__(world, params, num_worlds)
        self.lidar = world.sensors.lidar
        B, N = num_worlds, self.num_robots
        self.goals = np.zeros((B, 2))
        self._bounds = self._make_bounds()
        self.active = np.ones((B, N), dtype=bool)
        self.arrived = np.zeros(B, dtype=bool)
        self.time_to_goal_s = np.full(B, np.nan)
        self.collisions = np.zeros((B, N), dtype=int)
        self.path_m = np.zeros((B, N))
        self.steps = np.zeros(B, dtype=int)
        self.cohesion_sum = np.zeros(B)
        self.order_sum = np.zeros(B)
        self.robot_spread_sum = np.zeros((B, N))
        self.max_spread_m = np.zeros(B)
        self.min_separation_m = np.full(B, np.inf)
        self.start_gap_m = np.zeros(B)
        self.gap_m = np.zeros(B)
        self._last_pos = np.zeros((B, N, 2))
        self._last_dist = np.zeros((B, N))
        self._last_contact = np.zeros((B, N), dtype=bool)
        self._elapsed_s = np.zeros(B)

    # ---- checks ------------------------------------------------------------------------
    @classmethod
    def check(cls, world: WorldSpec, params: FlockingParams) -> list[Problem]:
        problems: list[Problem] = []
        if bad := lidar_pooling_problem(world, params.lidar_obs_beams):
            problems.append(bad)
        if bad := region_problem("task.params.goal_region", params.goal_region, world):
            problems.append(bad)
        # The flock arrives when all robots are inside the goal circle: it must hold them.
        footprint = sum(math.pi * e.model.radius_m**2 for e in world.robot_entries())
        need = math.sqrt(footprint / (math.pi * HEX_PACKING))
        if params.goal_radius_m < need:
            problems.append(
                Problem(
                    "task.params.goal_radius_m",
                    f"a circle of {params.goal_radius_m:g} m cannot hold {world.num_robots} robots; "
                    f"it needs at least {need:.2f} m",
                )
            )
        if params.cohesion_radius_m < need:
            problems.append(
                Problem(
                    "task.params.cohesion_radius_m",
                    f"{world.num_robots} robots cannot all be within {params.cohesion_radius_m:g} m "
                    f"of their centroid; it needs at least {need:.2f} m",
                )
            )
        return problems

    # ---- observations ------------------------------------------------------------------
    def observation_layout(self) -> list[ObservationPart]:
        k = self.params.neighbours
        return [
            ObservationPart("velocity", 2, "own velocity x, y in the robot frame (m/s)"),
            ObservationPart("goal", 3, "unit vector x, y toward the flock's goal (robot frame) and its distance (m)"),
            ObservationPart("neighbours", 5 * k, "per neighbour: x, y (m), vx, vy (m/s) in the robot frame, present"),
            ObservationPart("lidar", self.params.lidar_obs_beams, "min-pooled lidar ranges (m)"),
        ]

    def lidar_obs_angles(self) -> np.ndarray:
        """Body-frame angle (rad) at the centre of each pooled lidar sector."""
        return self.lidar.angles().reshape(self.params.lidar_obs_beams, -1).mean(axis=1)

    def _make_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        diag = float(math.hypot(*self.world.arena.size_m))
        # Twice the limit: a push out of a contact can briefly exceed the commanded speed.
        vmax = 2.0 * max(max(r.limits.max_linear_speed_mps, r.limits.max_angular_speed_radps) for r in self.robots)
        k, nb_r, beams = self.params.neighbours, self.params.neighbour_radius_m, self.params.lidar_obs_beams
        lo = np.concatenate(
            [[-vmax, -vmax], [-1.0, -1.0, 0.0], np.tile([-nb_r, -nb_r, -vmax, -vmax, 0.0], k), np.zeros(beams)]
        )
        hi = np.concatenate(
            [
                [vmax, vmax],
                [1.0, 1.0, diag],
                np.tile([nb_r, nb_r, vmax, vmax, 1.0], k),
                np.full(beams, self.lidar.range_max_m),
            ]
        )
        return lo.astype(np.float32), hi.astype(np.float32)

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._bounds

    def observe(self, snap: Snapshot) -> np.ndarray:
        B, N = snap.poses.shape[:2]
        lidar = snap.lidar
        if lidar is None:
            lidar = np.full((B, N, self.params.lidar_obs_beams), self.lidar.range_max_m)
        out = np.empty((B, N, self.observation_size), dtype=np.float32)
        lo, hi = self._bounds
        _observe(
            contiguous_f64(snap.poses),
            contiguous_f64(snap.twists),
            contiguous_f64(lidar),
            self.goals,
            self.params.neighbours,
            self.params.neighbour_radius_m,
            lo,
            hi,
            out,
        )
        return out

    # ---- episode -----------------------------------------------------------------------
    @property
    def max_episode_s(self) -> float:
        return self.params.max_episode_s

    def reset(self, rng: np.random.Generator, starts: np.ndarray, worlds: np.ndarray | None = None) -> None:
        worlds = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=int)
        starts = np.asarray(starts, dtype=float).reshape(len(worlds), self.num_robots, 3)
        self.goals[worlds] = self._draw_goals(rng, len(worlds))
        pos = starts[..., :2]
        goals = self.goals[worlds]
        self.active[worlds] = True
        self.arrived[worlds] = False
        self.time_to_goal_s[worlds] = np.nan
        self.collisions[worlds] = 0
        self.path_m[worlds] = 0.0
        self.steps[worlds] = 0
        self.cohesion_sum[worlds] = 0.0
        self.order_sum[worlds] = 0.0
        self.robot_spread_sum[worlds] = 0.0
        self.max_spread_m[worlds] = 0.0
        self.min_separation_m[worlds] = np.inf
        gap = np.maximum(np.linalg.norm(pos.mean(axis=1) - goals, axis=-1) - self.params.goal_radius_m, 0.0)
        self.start_gap_m[worlds] = gap
        self.gap_m[worlds] = gap
        self._last_pos[worlds] = pos
        self._last_dist[worlds] = np.linalg.norm(pos - goals[:, None, :], axis=-1)
        self._last_contact[worlds] = False
        self._elapsed_s[worlds] = 0.0

    def _draw_goals(self, rng: np.random.Generator, count: int) -> np.ndarray:
        r = self.params.goal_region
        return rng.uniform(r.min, r.max, size=(count, 2))

    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        p, w = self.params, self.params.reward
        B, N = self.num_worlds, self.num_robots
        pos = snap.poses[..., :2]
        dist, spread, crowding, alignment = (np.empty((B, N)) for _ in range(4))
        order, closest, centroid_dist = (np.empty(B) for _ in range(3))
        _geometry(
            contiguous_f64(snap.poses),
            contiguous_f64(snap.twists),
            self.goals,
            p.neighbour_radius_m,
            p.safety_distance_m,
            dist,
            spread,
            crowding,
            alignment,
            order,
            closest,
            centroid_dist,
        )
        act = self.active
        run = act.any(axis=1)  # worlds whose episode is still going
        new_contact = snap.contacts & ~self._last_contact
        arrived = run & (dist <= p.goal_radius_m).all(axis=1)

        rewards = (
            w.progress * (self._last_dist - dist)
            - w.cohesion * spread
            + w.alignment * alignment
            - w.separation * crowding
            - w.collision_penalty * new_contact
            + w.goal_bonus * arrived[:, None]
        )
        rewards = np.where(act, rewards, 0.0)

        # Episode bookkeeping, for worlds still running only.
        self.steps += run
        self.collisions += act & new_contact
        self.path_m += np.where(act, np.linalg.norm(pos - self._last_pos, axis=-1), 0.0)
        self.cohesion_sum += np.where(run, spread.mean(axis=1), 0.0)
        self.robot_spread_sum += np.where(act, spread, 0.0)
        self.order_sum += np.where(run, order, 0.0)
        self.max_spread_m = np.where(run, np.maximum(self.max_spread_m, spread.max(axis=1)), self.max_spread_m)
        self.min_separation_m = np.where(run, np.minimum(self.min_separation_m, closest), self.min_separation_m)
        self.gap_m = np.where(run, np.maximum(centroid_dist - p.goal_radius_m, 0.0), self.gap_m)
        t = np.asarray(snap.time_s, dtype=float).reshape(-1)
        self.time_to_goal_s = np.where(arrived, t, self.time_to_goal_s)
        self._elapsed_s = np.where(run, t, self._elapsed_s)
        self.arrived |= arrived
        terminated = act & arrived[:, None]
        self.active = act & ~arrived[:, None]
        self._last_pos = pos.copy()
        self._last_dist = dist
        self._last_contact = snap.contacts.copy()
        return rewards, terminated

    def done(self) -> np.ndarray:
        return ~self.active.any(axis=1)

    def success(self) -> np.ndarray:
        """(B,): the episode criterion of the module docstring, so far."""
        order = self.order_sum / np.maximum(self.steps, 1)
        return (
            self.arrived
            & (self.max_spread_m <= self.params.cohesion_radius_m)
            & (order >= self.params.min_order_parameter)
        )

    def episode_metrics(self, world: int = 0) -> dict[str, Any]:
        steps = max(int(self.steps[world]), 1)
        success = bool(self.success()[world])
        collisions = self.collisions[world]
        start_gap = float(self.start_gap_m[world])
        progress = 1.0 - float(self.gap_m[world]) / start_gap if start_gap > 1e-9 else 1.0
        ttg = float(self.time_to_goal_s[world])
        min_sep = float(self.min_separation_m[world])
        robots = []
        for i in range(self.num_robots):
            robots.append(
                {
                    "robot": f"robot_{i}",
                    "success": success,
                    "collisions": int(collisions[i]),
                    "path_length_m": round(float(self.path_m[world, i]), 4),
                    "cohesion_m": round(float(self.robot_spread_sum[world, i]) / steps, 4),
                    "time_to_goal_s": None if math.isnan(ttg) else round(ttg, 3),
                }
            )
        return {
            "success_rate": float(success),
            "collision_rate": float((collisions > 0).mean()),
            "collisions": int(collisions.sum()),
            "cohesion_m": float(self.cohesion_sum[world]) / steps,
            "max_spread_m": float(self.max_spread_m[world]),
            "order_parameter": float(self.order_sum[world]) / steps,
            "min_separation_m": None if math.isinf(min_sep) else min_sep,
            "goal_progress": progress,
            "time_to_goal_s": None if math.isnan(ttg) else round(ttg, 3),
            "path_length_m": float(self.path_m[world].mean()),
            "episode_s": round(float(self._elapsed_s[world]), 3),
            "robots": robots,
        }

    def drawables(self, world: int = 0) -> dict[str, np.ndarray]:
        return {"goal": self.goals[world][None].copy()}
