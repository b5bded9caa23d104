"""Pursuit: a team of pursuer robots hunts evaders that flee by a scripted rule
(SwarmBench / VMAS family). Each pursuer senses only what is near it.

The evaders are the task's own points (the engine knows only robots and obstacles): each
runs at ``evader_speed_mps`` (a bit below the pursuers' top speed), accelerating at most
``evader_accel_mps2``. While pursuers are within ``evader_sensing_radius_m`` it flees: of
16 headings it takes the one whose point one second ahead is furthest from the nearest of
those pursuers, less 3 m per metre that point lies inside ``evader_wall_margin_m`` of a
wall, plus 0.3 m for keeping its current heading. So it runs into open space and slides
along walls, but a cornered or surrounded evader has nowhere good to go. With no pursuer
in sight it wanders at ``wander_fraction`` of its speed along a heading that turns slowly
(drawn per episode, so episodes are deterministic given the seed). Walls and obstacles
block evaders; robots do not (an evader is caught, not pushed).

Capture rule: an evader is captured when a pursuer's centre comes within
``capture_radius_m`` of it (one pursuer suffices; cornering is how a team makes that
happen against a slower-turning, nearly as fast evader). A captured evader leaves the game.

Observation of one pursuer (body frame, SI units):
  velocity (2): own velocity x, y;
  walls (4): distance from its centre to the arena boundary along its +x, +y, -x, -y
    axes, clipped at ``wall_sensing_m`` (obstacles are not in it);
  evaders (5 × k): the k nearest uncaptured evaders within ``sensing_radius_m``:
    position x, y and velocity x, y in the robot frame, then 1 (present) or 0 (padding);
  neighbours (5 × k): the k nearest pursuers within ``neighbour_radius_m``, likewise.

Reward per control step and pursuer: ``capture_bonus`` to every pursuer per evader
captured (a team reward); ``chase`` × the metres by which it closed on the evader that was
nearest to it (and in sight) at the previous step; ``-collision_penalty`` on each new
contact (walls or robots); ``-time_penalty``.

Episode metrics: captures and capture_fraction; time_to_capture_s (mean capture time of the
captured evaders) and time_to_capture_all_s (None unless all were caught); collisions
(contact onsets) and collision_rate (fraction of pursuers with any); success_rate 1.0 when
every evader was captured before ``max_episode_s``, else 0.0; per robot its captures.
The episode ends (all pursuers terminated) when the last evader is captured.
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
from worlds.ranges import Accel_mps2, Duration_s, Length_m, Neighbours, RewardWeight, Speed_mps
from worlds.spec import Region, Spec, WorldSpec
from worlds.tasks.base import ObservationPart, Snapshot, Task, region_problem
from worlds.tasks.kernels import ObstacleShapes, length, nearest_rows, neighbour_rows, wall_distances

EVADER_RADIUS_M = 0.15  # evaders keep this far from walls and obstacles
START_GAP_M = 1.0  # evaders start at least this far beyond the capture radius from every pursuer
FLEE_HEADINGS = 16  # directions an evader weighs when it flees
_FLEE_ANGLES = 2 * np.pi * np.arange(FLEE_HEADINGS) / FLEE_HEADINGS
FLEE_DIRS = np.stack([np.cos(_FLEE_ANGLES), np.sin(_FLEE_ANGLES)], axis=-1)  # (H, 2)
FLEE_HORIZONS_S = np.array([0.5, 1.5, 3.0])  # how far ahead it looks (s)
WALL_WEIGHT = 1.0  # metres of margin one metre of lost wall clearance is worth
INERTIA_M = 0.2  # metres of margin that keeping its heading is worth


# ---- the task -------------------------------------------------------------------------------
class PursuitReward(Spec):
    capture_bonus: RewardWeight = 10.0
    chase: RewardWeight = 1.0
    collision_penalty: RewardWeight = 2.0
    time_penalty: RewardWeight = 0.01


class PursuitParams(Spec):
    """``task.params`` of a pursuit world."""

    evaders: Annotated[int, Field(ge=1, le=32)] = 2
    evader_region: Region
    evader_speed_mps: Speed_mps = 0.9
    evader_accel_mps2: Accel_mps2 = 2.0
    evader_sensing_radius_m: Length_m = 4.0
    evader_wall_margin_m: Length_m = 1.0
    wander_fraction: Annotated[float, Field(ge=0, le=1)] = 0.3
    capture_radius_m: Length_m = 0.4
    max_episode_s: Duration_s = 40.0
    sensing_radius_m: Length_m = 4.0
    observed_evaders: Annotated[int, Field(ge=1, le=16)] = 2
    wall_sensing_m: Length_m = 3.0
    neighbours: Neighbours = 3
    neighbour_radius_m: Length_m = 3.0
    reward: PursuitReward = PursuitReward()


class PursuitTask(Task):
    name = "pursuit"
    headline_metric = ("time_to_capture_all_s", "min")
    Params = PursuitParams
    params: PursuitParams

    def __init__(self, world: WorldSpec, params: PursuitParams, num_worlds: int = 1):
        super().__init__(world, params, num_worlds)
        B, N, E = num_worlds, self.num_robots, params.evaders
        self.radii = np.array([r.model.radius_m for r in self.robots])
        self.shapes = ObstacleShapes(world)
        self._pursuer_speed = max(r.limits.max_linear_speed_mps for r in self.robots)
        self._bounds = self._make_bounds()
        self.active = np.ones((B, N), dtype=bool)  # pursuers never finish alone
        self.evader_pos = np.zeros((B, E, 2))
        self.evader_vel = np.zeros((B, E, 2))
        self.wander_heading = np.zeros((B, E))
        self.wander_turn_radps = np.zeros((B, E))
        self.captured = np.zeros((B, E), dtype=bool)
        self.capture_time_s = np.full((B, E), np.nan)
        self.captured_by = np.full((B, E), -1)
        self.captures = np.zeros((B, N), dtype=int)
        self.collisions = np.zeros((B, N), dtype=int)
        self.path_m = np.zeros((B, N))
        self.finished = np.zeros(B, dtype=bool)
        self._target = np.full((B, N), -1)  # evader each pursuer was closing on
        self._target_dist = np.zeros((B, N))
        self._last_pos = np.zeros((B, N, 2))
        self._last_contact = np.zeros((B, N), dtype=bool)
        self._elapsed_s = np.zeros(B)

    # ---- checks ------------------------------------------------------------------------
    @classmethod
    def check(cls, world: WorldSpec, params: PursuitParams) -> list[Problem]:
        problems = []
        bad = region_problem("task.params.evader_region", params.evader_region, world)
        if bad:
            problems.append(bad)
        fastest = max(r.limits.max_linear_speed_mps for r in world.robot_entries())
        if params.evader_speed_mps >= fastest:
            problems.append(
                Problem(
                    "task.params.evader_speed_mps",
                    f"must be below the pursuers' top speed ({fastest:g} m/s), or no pursuit can end; "
                    f"got {params.evader_speed_mps:g}",
                )
            )
        if not bad and (
            geometry.sample_free_points(
                np.random.default_rng(world.seed),
                params.evader_region,
                params.evaders,
                world.arena,
                world.obstacles,
                radius_m=EVADER_RADIUS_M,
                min_separation_m=2 * EVADER_RADIUS_M,
            )
            is None
        ):
            problems.append(
                Problem(
                    "task.params.evader_region",
                    f"cannot hold {params.evaders} evaders clear of obstacles and walls: enlarge it",
                )
            )
        return problems

    # ---- observations ------------------------------------------------------------------
    def observation_layout(self) -> list[ObservationPart]:
        k, ke = self.params.neighbours, self.params.observed_evaders
        return [
            ObservationPart("velocity", 2, "own velocity x, y (m/s) in the robot frame"),
            ObservationPart("walls", 4, "distance to the arena boundary along +x, +y, -x, -y of the robot (m)"),
            ObservationPart("evaders", 5 * ke, "per evader: x, y (m), vx, vy (m/s) in the robot frame, present"),
            ObservationPart("neighbours", 5 * k, "per neighbour: x, y (m), vx, vy (m/s) in the robot frame, present"),
        ]

    def _make_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        vmax = max(r.limits.max_linear_speed_mps for r in self.robots) * 2.0
        ve = p.evader_speed_mps * 1.5
        s, nb = p.sensing_radius_m, p.neighbour_radius_m
        lo = np.concatenate(
            [
                [-vmax, -vmax],
                np.zeros(4),
                np.tile([-s, -s, -ve, -ve, 0.0], p.observed_evaders),
                np.tile([-nb, -nb, -vmax, -vmax, 0.0], p.neighbours),
            ]
        ).astype(np.float32)
        hi = np.concatenate(
            [
                [vmax, vmax],
                np.full(4, p.wall_sensing_m),
                np.tile([s, s, ve, ve, 1.0], p.observed_evaders),
                np.tile([nb, nb, vmax, vmax, 1.0], p.neighbours),
            ]
        ).astype(np.float32)
        return lo, hi

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._bounds

    def observe(self, snap: Snapshot) -> np.ndarray:
        p = self.params
        velocity = snap.twists[..., :2]
        walls = wall_distances(snap.poses, self.world.arena.half_extents, p.wall_sensing_m)
        if not self.world.arena.walls:
            walls[:] = p.wall_sensing_m
        evaders = nearest_rows(
            snap.poses, self.evader_pos, self.evader_vel, ~self.captured, p.observed_evaders, p.sensing_radius_m
        )
        neighbours = neighbour_rows(snap.poses, snap.twists, p.neighbours, p.neighbour_radius_m)
        obs = np.concatenate([velocity, walls, evaders, neighbours], axis=-1)
        lo, hi = self._bounds
        return np.clip(obs, lo, hi).astype(np.float32)

    # ---- episode -----------------------------------------------------------------------
    @property
    def max_episode_s(self) -> float:
        return self.params.max_episode_s

    def reset(self, rng: np.random.Generator, starts: np.ndarray, worlds: np.ndarray | None = None) -> None:
        worlds = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=int)
        starts = np.asarray(starts, dtype=float).reshape(len(worlds), self.num_robots, 3)
        p = self.params
        for w, start in zip(worlds, starts, strict=True):
            # Evaders start apart and out of immediate reach of every pursuer (a tighter
            # gap if the region is too crowded for that).
            points = None
            for gap in (p.capture_radius_m + START_GAP_M, p.capture_radius_m + 0.1):
                points = geometry.sample_free_points(
                    rng,
                    p.evader_region,
                    p.evaders,
                    self.world.arena,
                    self.world.obstacles,
                    radius_m=EVADER_RADIUS_M,
                    min_separation_m=gap,
                    avoid=start[:, :2],
                )
                if points is not None:
                    break
            if points is None:
                raise PlacementError(
                    "task.params.evader_region",
                    f"cannot hold {p.evaders} evaders clear of the pursuers' starts, obstacles and walls: enlarge it",
                )
            self.evader_pos[w] = points
            self.wander_heading[w] = rng.uniform(-math.pi, math.pi, p.evaders)
            self.wander_turn_radps[w] = rng.uniform(-0.5, 0.5, p.evaders)
            self._reset_world(w, start)

    def _reset_world(self, w: int, start: np.ndarray) -> None:
        self.evader_vel[w] = 0.0
        self.captured[w] = False
        self.capture_time_s[w] = np.nan
        self.captured_by[w] = -1
        self.captures[w] = 0
        self.collisions[w] = 0
        self.path_m[w] = 0.0
        self.finished[w] = False
        self._last_pos[w] = start[:, :2]
        self._last_contact[w] = False
        self._elapsed_s[w] = 0.0
        self._target[w], self._target_dist[w] = self._nearest_targets(start[None, :, :2], np.array([w]))
        self.active[w] = True

    def _nearest_targets(self, pos: np.ndarray, worlds: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest uncaptured evader in sight of each pursuer (-1: none) and
        the distance to it."""
        dist = length(self.evader_pos[worlds][:, None] - pos[:, :, None])
        dist = np.where(self.captured[worlds][:, None, :] | (dist > self.params.sensing_radius_m), np.inf, dist)
        idx = np.argmin(dist, axis=-1)
        d = np.take_along_axis(dist, idx[..., None], axis=-1)[..., 0]
        return np.where(np.isfinite(d), idx, -1), np.where(np.isfinite(d), d, 0.0)

    def _move_evaders(self, pos: np.ndarray, dt: float) -> None:
        """One control period of every uncaptured evader's flee rule (module docstring)."""
        p = self.params
        free = ~self.captured
        hx, hy = self.world.arena.half_extents
        choice = np.empty(free.shape, dtype=np.int64)
        _flee_choice(
            self.evader_pos,
            self.evader_vel,
            np.ascontiguousarray(pos, dtype=float),
            p.evader_sensing_radius_m,
            p.evader_speed_mps,
            self._pursuer_speed,
            hx,
            hy,
            self.world.arena.walls,
            p.evader_wall_margin_m,
            choice,
        )
        threatened = choice >= 0
        flee_dir = FLEE_DIRS[np.maximum(choice, 0)]
        self.wander_heading += self.wander_turn_radps * dt
        wander = np.stack([np.cos(self.wander_heading), np.sin(self.wander_heading)], axis=-1)
        want = np.where(threatened[..., None], flee_dir, wander)
        speed = np.where(threatened, p.evader_speed_mps, p.wander_fraction * p.evader_speed_mps)
        dv = want * speed[..., None] - self.evader_vel
        max_dv = p.evader_accel_mps2 * dt
        dv *= np.minimum(1.0, max_dv / np.maximum(length(dv)[..., None], 1e-9))
        vel = self.evader_vel + dv
        new_pos, _ = self.shapes.resolve(self.evader_pos + vel * dt, EVADER_RADIUS_M)
        vel = (new_pos - self.evader_pos) / dt  # what the walls let it do
        self.evader_pos = np.where(free[..., None], new_pos, self.evader_pos)
        self.evader_vel = np.where(free[..., None], vel, 0.0)
        # A wanderer that met a wall or obstacle turns back toward the arena's middle.
        blocked = length(vel) < 0.5 * p.wander_fraction * p.evader_speed_mps
        turn = np.arctan2(-self.evader_pos[..., 1], -self.evader_pos[..., 0])
        self.wander_heading = np.where(~threatened & blocked, turn, self.wander_heading)

    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        w, p = self.params.reward, self.params
        B, N = snap.poses.shape[:2]
        pos = snap.poses[..., :2]
        run = ~self.finished
        moved = length(pos - self._last_pos)
        self.path_m += np.where(run[:, None], moved, 0.0)
        self._move_evaders(pos, self.world.control_dt)

        # Captures: the nearest pursuer within the capture radius takes the evader.
        dist = length(self.evader_pos[:, None] - pos[:, :, None])  # (B, N, E)
        closest = np.argmin(dist, axis=1)  # (B, E)
        caught = (dist.min(axis=1) <= p.capture_radius_m) & ~self.captured & run[:, None]
        t = np.asarray(snap.time_s, dtype=float).reshape(-1)
        self.captured |= caught
        self.capture_time_s = np.where(caught, t[:, None], self.capture_time_s)
        self.captured_by = np.where(caught, closest, self.captured_by)
        for e in range(p.evaders):
            np.add.at(self.captures, (np.flatnonzero(caught[:, e]), closest[caught[:, e], e]), 1)

        # Chase: metres closed on last step's target (free then; caught now or not).
        has = self._target >= 0
        d_now = np.take_along_axis(dist, np.where(has, self._target, 0)[..., None], axis=-1)[..., 0]
        rewards = w.chase * np.where(has, self._target_dist - d_now, 0.0)
        rewards += w.capture_bonus * caught.sum(axis=1)[:, None]
        new_contact = snap.contacts & ~self._last_contact
        self.collisions += new_contact & run[:, None]
        rewards -= w.collision_penalty * new_contact + w.time_penalty
        rewards = np.where(run[:, None], rewards, 0.0)

        ended = run & self.captured.all(axis=1)
        terminated = np.broadcast_to(ended[:, None], (B, N)).copy()
        self.finished |= ended
        self._target, self._target_dist = self._nearest_targets(pos, slice(None))
        self._last_pos = pos.copy()
        self._last_contact = snap.contacts.copy()
        self._elapsed_s = np.where(run, t, self._elapsed_s)
        return rewards, terminated

    def done(self) -> np.ndarray:
        return self.finished.copy()

    def episode_metrics(self, world: int = 0) -> dict[str, Any]:
        captured = self.captured[world]
        times = self.capture_time_s[world][captured]
        collisions = self.collisions[world]
        success = bool(captured.all())
        robots = [
            {
                "robot": f"robot_{i}",
                "success": success,
                "captures": int(self.captures[world, i]),
                "collisions": int(collisions[i]),
                "path_length_m": round(float(self.path_m[world, i]), 4),
            }
            for i in range(self.num_robots)
        ]
        return {
            "success_rate": float(success),
            "collision_rate": float((collisions > 0).mean()),
            "collisions": int(collisions.sum()),
            "captures": int(captured.sum()),
            "capture_fraction": float(captured.mean()),
            "time_to_capture_s": round(float(times.mean()), 3) if len(times) else None,
            "time_to_capture_all_s": round(float(times.max()), 3) if success else None,
            "path_length_m": float(self.path_m[world].mean()),
            "episode_s": round(float(self._elapsed_s[world]), 3),
            "robots": robots,
        }

    def drawables(self, world: int = 0) -> dict[str, np.ndarray]:
        free = ~self.captured[world]
        return {"evaders": self.evader_pos[world][free].copy(), "captured": self.evader_pos[world][~free].copy()}


@njit(cache=True, fastmath=True, nogil=True)
def _flee_choice(evaders, velocity, pursuers, sense_r, speed, pursuer_speed, hx, hy, walls, margin, choice):
    """choice (B, E): index into FLEE_DIRS of each evader's flight (module docstring), or -1
    when no pursuer is within ``sense_r`` of it."""
    B, E, N = evaders.shape[0], evaders.shape[1], pursuers.shape[1]
    H, T = FLEE_DIRS.shape[0], FLEE_HORIZONS_S.shape[0]
    ex_max, ey_max = hx - EVADER_RADIUS_M, hy - EVADER_RADIUS_M
    near = np.empty(N, dtype=np.bool_)
    for b in range(B):
        for e in range(E):
            ex, ey = evaders[b, e, 0], evaders[b, e, 1]
            threatened = False
            for n in range(N):
                dx, dy = pursuers[b, n, 0] - ex, pursuers[b, n, 1] - ey
                near[n] = dx * dx + dy * dy <= sense_r * sense_r
                threatened |= near[n]
            if not threatened:
                choice[b, e] = -1
                continue
            vx, vy = velocity[b, e, 0], velocity[b, e, 1]
            v = math.sqrt(vx * vx + vy * vy)
            hx_now, hy_now = (vx / v, vy / v) if v > 1e-9 else (0.0, 0.0)
            best, best_score = 0, -np.inf
            for h in range(H):
                worst = np.inf
                room = np.inf
                for t in range(T):
                    qx = ex + FLEE_DIRS[h, 0] * speed * FLEE_HORIZONS_S[t]
                    qy = ey + FLEE_DIRS[h, 1] * speed * FLEE_HORIZONS_S[t]
                    if walls:
                        qx = min(max(qx, -ex_max), ex_max)
                        qy = min(max(qy, -ey_max), ey_max)
                        if t == 0:
                            room = min(hx - abs(qx), hy - abs(qy))
                    gap = np.inf
                    for n in range(N):
                        if near[n]:
                            dx, dy = qx - pursuers[b, n, 0], qy - pursuers[b, n, 1]
                            gap = min(gap, math.sqrt(dx * dx + dy * dy))
                    worst = min(worst, gap - pursuer_speed * FLEE_HORIZONS_S[t])
                score = worst + INERTIA_M * (hx_now * FLEE_DIRS[h, 0] + hy_now * FLEE_DIRS[h, 1])
                if walls:
                    score -= WALL_WEIGHT * max(margin - room, 0.0)
                if score > best_score:
                    best, best_score = h, score
            choice[b, e] = best
