"""Coverage: the robots spread out so that every landmark has a robot on it, each choosing
its landmark from its own local view, without communication (the VMAS / MPE "spread"
task, SwarmBench family). Landmarks are drawn per episode.

Observation of one robot (body frame, SI units):
  velocity (2): own velocity x, y;
  landmarks (4 × landmark_obs): for the nearest landmarks within ``landmark_radius_m``:
    position x, y in the robot frame, 1 if another robot is within ``cover_radius_m`` of it
    (the landmark's beacon says it is taken) else 0, then 1 (present) or 0 (padding);
  neighbours (5 × k): for the k nearest robots within ``neighbour_radius_m``: position x, y
    and velocity x, y in the robot frame, then 1 (present) or 0 (padding);
  lidar (lidar_obs_beams): ranges (walls and robots), min-pooled from the world's lidar;
  messages (6 × relay_senders, only with ``relay_radius_m`` > 0): what the nearest robots
    within ``relay_radius_m`` say (``worlds.tasks.messages``), nearest first: the sender's
    position x, y, 1 (present), then the free landmark it reports, x, y, 1 (or zeros if it
    reports none), all in the robot frame.

Messages (off by default: the shipped world is the task without communication): every robot
says one thing, a free landmark in its view that it is not taking: the nearest landmark in
its view that no robot covers, or, while it covers none itself (it is on its way to one, the
nearest free one it sees), the next nearest. This carries what a robot busy with its own
landmark sees to a robot still looking: in 16 of the 21 episodes of 100 (seeds 0–99) where
the greedy baseline without messages leaves a landmark uncovered, that landmark had been in
view of a robot that was not searching, and never of one that was.

Reward per control step and robot: ``progress`` × the decrease of the team's cost, the mean
over landmarks of the distance to the nearest robot (m; shared); ``covered`` × the fraction
of landmarks covered (shared); ``holding`` if the robot itself covers a landmark as the
robot nearest to it; ``complete`` while every landmark is covered (shared: the success
criterion as a reward); ``-collision_penalty`` on each new contact. Episodes run to the time
limit: holding the landmarks is part of the task.

A landmark is covered when a robot is within ``cover_radius_m`` of it. Episode metrics:
  coverage_fraction: fraction of landmarks covered at the end of the episode;
  mean_coverage_fraction: mean over control steps of the fraction covered (rewards speed);
  landmark_distance_m: mean over landmarks of the distance to the nearest robot, at the end;
  time_to_full_coverage_s: when all landmarks were first covered at once (None if never);
  collisions: contact onsets (walls or robots); collision_rate: fraction of robots with any;
  success_rate: 1.0 when every landmark is covered at the end of the episode, else 0.0
    (one figure per episode: the team covers or it does not);
  per robot (``robots``): success (it covers a landmark at the end, as the robot nearest
    to it), collisions, path length.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from numba import njit
from pydantic import Field

from worlds import geometry
from worlds.errors import Problem
from worlds.layout import PlacementError
from worlds.ranges import Beams, Distance_m, Duration_s, Length_m, Neighbours, RewardWeight
from worlds.spec import Region, Spec, WorldSpec
from worlds.tasks.base import ObservationPart, Snapshot, Task, lidar_pooling_problem, region_problem
from worlds.tasks.flocking import clip_row, contiguous_f64, nearest_others, write_neighbours
from worlds.tasks.messages import deliver, inbox_size
from worlds.tasks.navigation import rotate_into

LANDMARK_CLEARANCE_M = 0.05  # free space kept between a landmark and walls beyond a robot's radius


class CoverageReward(Spec):
    progress: RewardWeight = 1.0
    covered: RewardWeight = 0.05
    holding: RewardWeight = 0.02
    complete: RewardWeight = 0.0
    collision_penalty: RewardWeight = 2.0


class CoverageParams(Spec):
    """``task.params`` of a coverage world."""

    landmark_region: Region
    landmarks: Annotated[int, Field(ge=1, le=32)] = 6
    landmark_separation_m: Length_m = 1.5
    cover_radius_m: Length_m = 0.4
    max_episode_s: Duration_s = 30.0
    landmark_obs: Annotated[int, Field(ge=1, le=32)] = 4
    landmark_radius_m: Length_m = 5.0
    neighbours: Neighbours = 3
    neighbour_radius_m: Length_m = 3.0
    lidar_obs_beams: Beams = 8
    relay_radius_m: Distance_m = 0.0
    """Range of the robots' messages (0: no messages)."""
    relay_senders: Annotated[int, Field(ge=1, le=16)] = 2
    """Robots heard per step (the nearest within relay_radius_m)."""
    reward: CoverageReward = CoverageReward()


def landmarks_in_view(d: np.ndarray, params: CoverageParams) -> np.ndarray:
    """Which landmarks a robot sees, from its distances ``d`` (..., L) to every landmark: the
    ``landmark_obs`` nearest within ``landmark_radius_m`` (ties to the lower index)."""
    rank = np.argsort(np.argsort(d, axis=-1, kind="stable"), axis=-1, kind="stable")
    return (d <= params.landmark_radius_m) & (rank < params.landmark_obs)


# ---- compiled per-step maths (numba, serial) ------------------------------------------------


@njit(cache=True, nogil=True)
def _observe(poses, twists, lidar, landmarks, m, radius_m, cover_m, k, nb_radius_m, lo, hi, out):
    """out (B, N, D) float32: the observation of the module docstring, clipped to lo/hi."""
    B, N, L = poses.shape[0], poses.shape[1], landmarks.shape[1]
    d = np.empty((N, L))
    covering = np.empty(L, np.int64)
    cos_yaw = np.empty(N)
    sin_yaw = np.empty(N)
    lm_idx = np.empty(m, np.int64)
    lm_dist = np.empty(m)
    idx = np.empty(max(k, 1), np.int64)
    dist = np.empty(max(k, 1))
    nb_at = 2 + 4 * m
    lidar_at = nb_at + 5 * k
    sectors = lo.shape[0] - lidar_at
    per = lidar.shape[2] // sectors
    for b in range(B):
        for lm in range(L):
            covering[lm] = 0
        for i in range(N):
            cos_yaw[i] = math.cos(poses[b, i, 2])
            sin_yaw[i] = math.sin(poses[b, i, 2])
            for lm in range(L):
                dx = landmarks[b, lm, 0] - poses[b, i, 0]
                dy = landmarks[b, lm, 1] - poses[b, i, 1]
                d[i, lm] = math.sqrt(dx * dx + dy * dy)
                if d[i, lm] <= cover_m:
                    covering[lm] += 1
        for i in range(N):
            row = out[b, i]
            c, s = cos_yaw[i], sin_yaw[i]
            row[0] = twists[b, i, 0]
            row[1] = twists[b, i, 1]
            # The m nearest landmarks within range, nearest first (insertion).
            n = 0
            for lm in range(L):
                dl = d[i, lm]
                if dl > radius_m or (n == m and dl >= lm_dist[m - 1]):
                    continue
                at = n if n < m else m - 1
                while at > 0 and lm_dist[at - 1] > dl:
                    lm_dist[at] = lm_dist[at - 1]
                    lm_idx[at] = lm_idx[at - 1]
                    at -= 1
                lm_dist[at] = dl
                lm_idx[at] = lm
                if n < m:
                    n += 1
            for slot in range(m):
                base = 2 + 4 * slot
                if slot >= n:
                    for q in range(4):
                        row[base + q] = 0.0
                    continue
                lm = lm_idx[slot]
                dx = landmarks[b, lm, 0] - poses[b, i, 0]
                dy = landmarks[b, lm, 1] - poses[b, i, 1]
                others = covering[lm] - (1 if d[i, lm] <= cover_m else 0)
                row[base] = c * dx + s * dy
                row[base + 1] = -s * dx + c * dy
                row[base + 2] = 1.0 if others > 0 else 0.0
                row[base + 3] = 1.0
            n = nearest_others(poses, b, i, k, nb_radius_m, idx, dist)
            write_neighbours(poses, twists, cos_yaw, sin_yaw, b, i, idx, n, k, row, nb_at)
            for q in range(sectors):
                r = lidar[b, i, q * per]
                for t in range(1, per):
                    r = min(r, lidar[b, i, q * per + t])
                row[lidar_at + q] = r
            clip_row(row, lo, hi)


@njit(cache=True, nogil=True)
def _coverage(poses, landmarks, nearest_m, holder):
    """Per landmark: distance to the nearest robot and that robot's index."""
    B, N, L = poses.shape[0], poses.shape[1], landmarks.shape[1]
    for b in range(B):
        for lm in range(L):
            best, who = np.inf, 0
            for i in range(N):
                dx = landmarks[b, lm, 0] - poses[b, i, 0]
                dy = landmarks[b, lm, 1] - poses[b, i, 1]
                dl = math.sqrt(dx * dx + dy * dy)
                if dl < best:
                    best, who = dl, i
            nearest_m[b, lm] = best
            holder[b, lm] = who


class CoverageTask(Task):
    name = "coverage"
    headline_metric = ("success_rate", "max")
    Params = CoverageParams
    params: CoverageParams

    def __init__(self, world: WorldSpec, params: CoverageParams, num_worlds: int = 1):
        super().__init__(world, params, num_worlds)
        self.lidar = world.sensors.lidar
        B, N, L = num_worlds, self.num_robots, params.landmarks
        self.clearance_m = max(r.model.radius_m for r in self.robots) + LANDMARK_CLEARANCE_M
        self.landmarks = np.zeros((B, L, 2))
        self._bounds = self._make_bounds()
        self.active = np.ones((B, N), dtype=bool)  # nobody finishes early: coverage is held
        self.collisions = np.zeros((B, N), dtype=int)
        self.path_m = np.zeros((B, N))
        self.steps = np.zeros(B, dtype=int)
        self.covered_sum = np.zeros(B)
        self.covered = np.zeros((B, L), dtype=bool)
        self.nearest_m = np.zeros((B, L))
        self.holding = np.zeros((B, N), dtype=bool)
        self.time_to_full_s = np.full(B, np.nan)
        self._last_cost = np.zeros(B)
        self._last_pos = np.zeros((B, N, 2))
        self._last_contact = np.zeros((B, N), dtype=bool)
        self._elapsed_s = np.zeros(B)

    # ---- checks ------------------------------------------------------------------------
    @classmethod
    def check(cls, world: WorldSpec, params: CoverageParams) -> list[Problem]:
        problems: list[Problem] = []
        if bad := lidar_pooling_problem(world, params.lidar_obs_beams):
            problems.append(bad)
        if bad := region_problem("task.params.landmark_region", params.landmark_region, world):
            problems.append(bad)
            return problems
        n = world.num_robots
        if params.landmarks > n and params.landmark_separation_m > 2 * params.cover_radius_m:
            problems.append(
                Problem(
                    "task.params.landmarks",
                    f"{params.landmarks} landmarks at least {params.landmark_separation_m:g} m apart need "
                    f"{params.landmarks} robots to cover them (a robot covers {params.cover_radius_m:g} m around "
                    f"it); the world has {n}",
                )
            )
        clearance = max(e.model.radius_m for e in world.robot_entries()) + LANDMARK_CLEARANCE_M
        points = geometry.sample_free_points(
            np.random.default_rng(world.seed),
            params.landmark_region,
            params.landmarks,
            world.arena,
            world.obstacles,
            radius_m=clearance,
            min_separation_m=params.landmark_separation_m,
        )
        if points is None:
            problems.append(
                Problem(
                    "task.params.landmark_region",
                    f"cannot hold {params.landmarks} landmarks {params.landmark_separation_m:g} m apart, "
                    f"clear of obstacles and walls: enlarge it or lower landmarks / landmark_separation_m",
                )
            )
        return problems

    # ---- observations ------------------------------------------------------------------
    def observation_layout(self) -> list[ObservationPart]:
        m, k = self.params.landmark_obs, self.params.neighbours
        return [
            ObservationPart("velocity", 2, "own velocity x, y in the robot frame (m/s)"),
            ObservationPart(
                "landmarks", 4 * m, "per landmark: x, y (m) in the robot frame, taken by another robot, present"
            ),
            ObservationPart("neighbours", 5 * k, "per neighbour: x, y (m), vx, vy (m/s) in the robot frame, present"),
            ObservationPart("lidar", self.params.lidar_obs_beams, "min-pooled lidar ranges (m)"),
        ] + self._message_layout()

    def _message_layout(self) -> list[ObservationPart]:
        if not self.params.relay_radius_m:
            return []
        size = inbox_size(self.params.relay_senders, 1)
        return [
            ObservationPart(
                "messages",
                size,
                "per heard robot: its x, y (m), present; the free landmark it reports: x, y (m), set",
            )
        ]

    def lidar_obs_angles(self) -> np.ndarray:
        """Body-frame angle (rad) at the centre of each pooled lidar sector."""
        return self.lidar.angles().reshape(self.params.lidar_obs_beams, -1).mean(axis=1)

    def _make_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        # Twice the limit: a push out of a contact can briefly exceed the commanded speed.
        vmax = 2.0 * max(max(r.limits.max_linear_speed_mps, r.limits.max_angular_speed_radps) for r in self.robots)
        p = self.params
        m, lm_r, k, nb_r = p.landmark_obs, p.landmark_radius_m, p.neighbours, p.neighbour_radius_m
        lo = np.concatenate(
            [
                [-vmax, -vmax],
                np.tile([-lm_r, -lm_r, 0.0, 0.0], m),
                np.tile([-nb_r, -nb_r, -vmax, -vmax, 0.0], k),
                np.zeros(p.lidar_obs_beams),
                *self._message_bounds(low=True),
            ]
        )
        hi = np.concatenate(
            [
                [vmax, vmax],
                np.tile([lm_r, lm_r, 1.0, 1.0], m),
                np.tile([nb_r, nb_r, vmax, vmax, 1.0], k),
                np.full(p.lidar_obs_beams, self.lidar.range_max_m),
                *self._message_bounds(low=False),
            ]
        )
        return lo.astype(np.float32), hi.astype(np.float32)

    def _message_bounds(self, low: bool) -> list[np.ndarray]:
        p = self.params
        if not p.relay_radius_m:
            return []
        sender, reach = p.relay_radius_m, p.relay_radius_m + p.landmark_radius_m
        slot = [-sender, -sender, 0.0, -reach, -reach, 0.0] if low else [sender, sender, 1.0, reach, reach, 1.0]
        return [np.tile(slot, p.relay_senders)]

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._bounds

    def observe(self, snap: Snapshot) -> np.ndarray:
        B, N = snap.poses.shape[:2]
        p = self.params
        lidar = snap.lidar
        if lidar is None:
            lidar = np.full((B, N, p.lidar_obs_beams), self.lidar.range_max_m)
        out = np.empty((B, N, self.observation_size), dtype=np.float32)
        lo, hi = self._bounds
        core = self.observation_size - sum(part.size for part in self._message_layout())
        _observe(
            contiguous_f64(snap.poses),
            contiguous_f64(snap.twists),
            contiguous_f64(lidar),
            self.landmarks,
            p.landmark_obs,
            p.landmark_radius_m,
            p.cover_radius_m,
            p.neighbours,
            p.neighbour_radius_m,
            lo[:core],
            hi[:core],
            out,
        )
        if p.relay_radius_m:
            inbox = np.zeros((B, N, inbox_size(p.relay_senders, 1)))
            points, valid = self.reports(snap.poses)
            deliver(contiguous_f64(snap.poses), points, valid, p.relay_senders, p.relay_radius_m, inbox)
            out[..., core:] = np.clip(inbox, lo[core:], hi[core:])
        return out

    def reports(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What each robot says (the module docstring's protocol): points (B, N, 1, 2), the
        reported landmark in the robot's frame, and valid (B, N, 1), whether it reports one."""
        p = self.params
        rel = self.landmarks[:, None, :, :] - poses[:, :, None, :2]  # (B, N, L, 2)
        d = np.linalg.norm(rel, axis=-1)
        in_view = landmarks_in_view(d, p)
        on = d <= p.cover_radius_m
        free = ~on.any(axis=1)  # (B, L): nobody covers it
        candidate = in_view & free[:, None, :]
        cost = np.where(candidate, d, np.inf)
        taking = ~on.any(axis=2)  # (B, N): on its way to the nearest free landmark it sees
        nearest = np.argmin(cost, axis=-1)
        b, i = np.nonzero(taking)
        cost[b, i, nearest[b, i]] = np.inf
        pick = np.argmin(cost, axis=-1)  # (B, N)
        valid = np.take_along_axis(cost, pick[..., None], axis=-1)[..., 0] < np.inf
        vec = np.take_along_axis(rel, pick[..., None, None], axis=2)[:, :, 0, :]  # map frame
        body = rotate_into(poses[..., 2], vec)
        return np.where(valid[..., None], body, 0.0)[:, :, None, :], valid[:, :, None]

    # ---- episode -----------------------------------------------------------------------
    @property
    def max_episode_s(self) -> float:
        return self.params.max_episode_s

    def reset(self, rng: np.random.Generator, starts: np.ndarray, worlds: np.ndarray | None = None) -> None:
        worlds = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=int)
        starts = np.asarray(starts, dtype=float).reshape(len(worlds), self.num_robots, 3)
        for w in worlds:
            self.landmarks[w] = self._draw_landmarks(rng)
        self.active[worlds] = True
        self.collisions[worlds] = 0
        self.path_m[worlds] = 0.0
        self.steps[worlds] = 0
        self.covered_sum[worlds] = 0.0
        self.time_to_full_s[worlds] = np.nan
        self._last_pos[worlds] = starts[..., :2]
        self._last_contact[worlds] = False
        self._elapsed_s[worlds] = 0.0
        nearest = np.empty((len(worlds), self.params.landmarks))
        holder = np.empty((len(worlds), self.params.landmarks), dtype=np.int64)
        _coverage(contiguous_f64(starts), self.landmarks[worlds], nearest, holder)
        self._last_cost[worlds] = nearest.mean(axis=1)
        self._update_cover(worlds, nearest, holder)

    def _draw_landmarks(self, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        points = geometry.sample_free_points(
            rng,
            p.landmark_region,
            p.landmarks,
            self.world.arena,
            self.world.obstacles,
            radius_m=self.clearance_m,
            min_separation_m=p.landmark_separation_m,
        )
        if points is None:
            raise PlacementError(
                "task.params.landmark_region",
                f"cannot hold {p.landmarks} landmarks {p.landmark_separation_m:g} m apart: enlarge it",
            )
        return points

    def _update_cover(self, worlds: np.ndarray | slice, nearest: np.ndarray, holder: np.ndarray) -> None:
        covered = nearest <= self.params.cover_radius_m
        self.nearest_m[worlds] = nearest
        self.covered[worlds] = covered
        # holding[b, i]: robot i is the nearest robot to a landmark it covers.
        held = np.zeros((len(nearest), self.num_robots + 1), dtype=bool)
        rows = np.broadcast_to(np.arange(len(nearest))[:, None], holder.shape)
        held[rows, np.where(covered, holder, self.num_robots)] = True
        self.holding[worlds] = held[:, : self.num_robots]

    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        w = self.params.reward
        B, L = self.num_worlds, self.params.landmarks
        pos = snap.poses[..., :2]
        nearest = np.empty((B, L))
        holder = np.empty((B, L), dtype=np.int64)
        _coverage(contiguous_f64(snap.poses), self.landmarks, nearest, holder)
        self._update_cover(slice(None), nearest, holder)
        cost = nearest.mean(axis=1)
        fraction = self.covered.mean(axis=1)
        new_contact = snap.contacts & ~self._last_contact
        rewards = (
            (w.progress * (self._last_cost - cost) + w.covered * fraction + w.complete * (fraction >= 1.0))[:, None]
            + w.holding * self.holding
            - w.collision_penalty * new_contact
        )
        self.steps += 1
        self.collisions += new_contact
        self.path_m += np.linalg.norm(pos - self._last_pos, axis=-1)
        self.covered_sum += fraction
        t = np.asarray(snap.time_s, dtype=float).reshape(-1)
        first_full = (fraction >= 1.0) & np.isnan(self.time_to_full_s)
        self.time_to_full_s = np.where(first_full, t, self.time_to_full_s)
        self._elapsed_s = t.copy()
        self._last_cost = cost
        self._last_pos = pos.copy()
        self._last_contact = snap.contacts.copy()
        return rewards, np.zeros_like(self.active)

    def episode_metrics(self, world: int = 0) -> dict[str, Any]:
        steps = max(int(self.steps[world]), 1)
        covered = self.covered[world]
        success = bool(covered.all())
        collisions = self.collisions[world]
        ttf = float(self.time_to_full_s[world])
        robots = []
        for i in range(self.num_robots):
            robots.append(
                {
                    "robot": f"robot_{i}",
                    "success": bool(self.holding[world, i]),
                    "collisions": int(collisions[i]),
                    "path_length_m": round(float(self.path_m[world, i]), 4),
                }
            )
        return {
            "success_rate": float(success),
            "collision_rate": float((collisions > 0).mean()),
            "collisions": int(collisions.sum()),
            "coverage_fraction": float(covered.mean()),
            "mean_coverage_fraction": float(self.covered_sum[world]) / steps,
            "landmark_distance_m": float(self.nearest_m[world].mean()),
            "time_to_full_coverage_s": None if math.isnan(ttf) else round(ttf, 3),
            "path_length_m": float(self.path_m[world].mean()),
            "episode_s": round(float(self._elapsed_s[world]), 3),
            "robots": robots,
        }

    @property
    def critic_state_size(self) -> int:
        return 6 * self.num_robots + 3 * self.params.landmarks + 1

    def critic_state(self, snap: Snapshot) -> np.ndarray:
        """Per world: each robot's x, y (m), cos and sin of its yaw, vx, vy (robot frame);
        each landmark's x, y and 1 if covered; the fraction of the episode gone."""
        poses, twists = snap.poses, snap.twists
        robots = np.concatenate(
            [poses[..., :2], np.cos(poses[..., 2:3]), np.sin(poses[..., 2:3]), twists[..., :2]], axis=-1
        )
        landmarks = np.concatenate([self.landmarks, self.covered[..., None]], axis=-1)
        elapsed = np.asarray(snap.time_s, dtype=float).reshape(-1, 1) / self.max_episode_s
        B = self.num_worlds
        parts = [robots.reshape(B, -1), landmarks.reshape(B, -1), np.broadcast_to(elapsed, (B, 1))]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def drawables(self, world: int = 0) -> dict[str, np.ndarray]:
        return {"landmarks": self.landmarks[world].copy()}
