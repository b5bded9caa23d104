"""Transport: the team pushes a heavy round object into a goal region (SwarmBench / VMAS
family). Each robot sees the object, the goal relative to the object, and its neighbours.

The object is the task's own disc (the engine knows only robots and obstacles), of
``object_radius_m``, drawn per episode in ``object_region``; the goal is a disc of
``goal_radius_m`` around a point drawn in ``goal_region``. Pushing model, per control step:
a robot pushes when it overlaps the object (it drove into it); the object then moves, along
the contact normals, just far enough to clear its pushers (a few rounds of projections,
as the engine resolves robot overlaps), but no faster than ``max_speed_mps`` ×
min(1, pushers / ``pushers_for_full_speed``): friction makes it heavy, so one robot moves
it at a fraction of the team's speed, and pushing harder than it yields leaves the robot
overlapping it (the object does not push robots back: the engine does not know it). A
robot pushed into a wall or an obstacle stops against it. With no pusher it stops at once
(quasi-static: friction beats its momentum).

Observation of one robot (body frame, SI units):
  velocity (2): own velocity x, y;
  walls (4): distance to the arena boundary along its +x, +y, -x, -y axes, clipped at
    ``wall_sensing_m`` (obstacles are not in it);
  object (5): object centre x, y and velocity x, y in the robot frame, then the gap
    between the robot's edge and the object's (m; negative while it overlaps the object);
  goal (3): goal centre relative to the object's centre, x, y in the robot frame, and
    that distance;
  neighbours (5 × k): the k nearest robots within ``neighbour_radius_m``: position x, y,
    velocity x, y in the robot frame, present.

Reward per control step and robot: ``progress`` × metres the object gained toward the goal
(shared by all robots); ``approach`` × metres the robot's own motion gained toward the object's edge;
``contact_bonus`` while touching it (gap within ``contact_margin_m``); ``-overlap_penalty`` × how deep (m) it overlaps the
object; ``goal_bonus`` to every robot when the object arrives; ``-collision_penalty`` on
each new contact (walls or robots); ``-time_penalty``.

Episode metrics: success_rate 1.0 when the object's centre got within ``goal_radius_m`` of
the goal before ``max_episode_s``, else 0.0; final_distance_m (object centre to goal
centre at the end) and start_distance_m; progress_fraction (1 - final / start distance);
time_to_goal_s (None if it never arrived); collisions (contact onsets) and collision_rate
(fraction of robots with any); per robot its time in contact with the object. The
episode ends (all robots terminated) when the object arrives.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from worlds import geometry
from worlds.errors import Problem
from worlds.layout import PlacementError
from worlds.ranges import Distance_m, Duration_s, Length_m, Neighbours, RewardWeight, Speed_mps
from worlds.spec import Region, Spec, WorldSpec
from worlds.tasks.base import ObservationPart, Snapshot, Task, region_problem
from worlds.tasks.kernels import ObstacleShapes, length, neighbour_rows, wall_distances
from worlds.tasks.navigation import rotate_into

PUSH_ROUNDS = 8  # projection rounds that clear the pushers
START_GAP_M = 0.3  # free space kept between the object and the robots at the start


class TransportReward(Spec):
    progress: RewardWeight = 5.0
    approach: RewardWeight = 0.5
    contact_bonus: RewardWeight = 0.01
    overlap_penalty: RewardWeight = 1.0
    goal_bonus: RewardWeight = 10.0
    collision_penalty: RewardWeight = 2.0
    time_penalty: RewardWeight = 0.01


class TransportParams(Spec):
    """``task.params`` of a transport world."""

    object_radius_m: Length_m = 0.5
    object_region: Region
    goal_region: Region
    goal_radius_m: Length_m = 0.5
    min_goal_distance_m: Distance_m = 3.0
    max_speed_mps: Speed_mps = 0.5
    pushers_for_full_speed: Annotated[int, Field(ge=1, le=64)] = 2
    contact_margin_m: Distance_m = 0.05
    max_episode_s: Duration_s = 60.0
    wall_sensing_m: Length_m = 3.0
    neighbours: Neighbours = 3
    neighbour_radius_m: Length_m = 3.0
    reward: TransportReward = TransportReward()


class TransportTask(Task):
    name = "transport"
    headline_metric = ("time_to_goal_s", "min")
    Params = TransportParams
    params: TransportParams

    def __init__(self, world: WorldSpec, params: TransportParams, num_worlds: int = 1):
        super().__init__(world, params, num_worlds)
        B, N = num_worlds, self.num_robots
        self.radii = np.array([r.model.radius_m for r in self.robots])
        self.shapes = ObstacleShapes(world)
        self._bounds = self._make_bounds()
        self.active = np.ones((B, N), dtype=bool)  # robots never finish alone
        self.object_pos = np.zeros((B, 2))
        self.object_vel = np.zeros((B, 2))
        self.goal = np.zeros((B, 2))
        self.start_distance_m = np.zeros(B)
        self.time_to_goal_s = np.full(B, np.nan)
        self.contact_s = np.zeros((B, N))
        self.collisions = np.zeros((B, N), dtype=int)
        self.path_m = np.zeros((B, N))
        self.finished = np.zeros(B, dtype=bool)
        self._last_pos = np.zeros((B, N, 2))
        self._last_contact = np.zeros((B, N), dtype=bool)
        self._elapsed_s = np.zeros(B)

    # ---- checks ------------------------------------------------------------------------
    @classmethod
    def check(cls, world: WorldSpec, params: TransportParams) -> list[Problem]:
        problems = []
        for key, region in (("object_region", params.object_region), ("goal_region", params.goal_region)):
            bad = region_problem(f"task.params.{key}", region, world)
            if bad:
                problems.append(bad)
        if problems:
            return problems
        hx, hy = world.arena.half_extents
        if 2 * params.object_radius_m >= min(2 * hx, 2 * hy):
            problems.append(
                Problem(
                    "task.params.object_radius_m", f"the object ({params.object_radius_m:g} m) does not fit the arena"
                )
            )
        elif _draw_object_and_goal(np.random.default_rng(world.seed), world, params, np.zeros((0, 2)), 0.0) is None:
            problems.append(
                Problem(
                    "task.params.goal_region",
                    f"no goal {params.min_goal_distance_m:g} m (min_goal_distance_m) from an object start in "
                    "object_region clear of obstacles and walls: move the regions apart or enlarge them",
                )
            )
        return problems

    # ---- observations ------------------------------------------------------------------
    def observation_layout(self) -> list[ObservationPart]:
        k = self.params.neighbours
        return [
            ObservationPart("velocity", 2, "own velocity x, y (m/s) in the robot frame"),
            ObservationPart("walls", 4, "distance to the arena boundary along +x, +y, -x, -y of the robot (m)"),
            ObservationPart("object", 5, "object centre x, y (m), velocity x, y (m/s) in the robot frame, gap (m)"),
            ObservationPart("goal", 3, "goal centre relative to the object, x, y in the robot frame (m), distance (m)"),
            ObservationPart("neighbours", 5 * k, "per neighbour: x, y (m), vx, vy (m/s) in the robot frame, present"),
        ]

    def _make_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        diag = float(math.hypot(*self.world.arena.size_m))
        vmax = max(r.limits.max_linear_speed_mps for r in self.robots) * 2.0
        vo = p.max_speed_mps * 1.5
        nb = p.neighbour_radius_m
        reach = float(p.object_radius_m + self.radii.max())
        lo = np.concatenate(
            [
                [-vmax, -vmax],
                np.zeros(4),
                [-diag, -diag, -vo, -vo, -reach],
                [-diag, -diag, 0.0],
                np.tile([-nb, -nb, -vmax, -vmax, 0.0], p.neighbours),
            ]
        ).astype(np.float32)
        hi = np.concatenate(
            [
                [vmax, vmax],
                np.full(4, p.wall_sensing_m),
                [diag, diag, vo, vo, diag],
                [diag, diag, diag],
                np.tile([nb, nb, vmax, vmax, 1.0], p.neighbours),
            ]
        ).astype(np.float32)
        return lo, hi

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._bounds

    def observe(self, snap: Snapshot) -> np.ndarray:
        p = self.params
        pos, yaw = snap.poses[..., :2], snap.poses[..., 2]
        velocity = snap.twists[..., :2]
        walls = wall_distances(snap.poses, self.world.arena.half_extents, p.wall_sensing_m)
        if not self.world.arena.walls:
            walls[:] = p.wall_sensing_m
        rel = self.object_pos[:, None, :] - pos
        gap = length(rel) - self._reach
        obj = np.concatenate(
            [
                rotate_into(yaw, rel),
                rotate_into(yaw, np.broadcast_to(self.object_vel[:, None, :], rel.shape)),
                gap[..., None],
            ],
            axis=-1,
        )
        to_goal = rotate_into(yaw, np.broadcast_to((self.goal - self.object_pos)[:, None, :], rel.shape))
        goal = np.concatenate([to_goal, length(to_goal)[..., None]], axis=-1)
        neighbours = neighbour_rows(snap.poses, snap.twists, p.neighbours, p.neighbour_radius_m)
        obs = np.concatenate([velocity, walls, obj, goal, neighbours], axis=-1)
        lo, hi = self._bounds
        return np.clip(obs, lo, hi).astype(np.float32)

    def _touching(self, dist: np.ndarray) -> np.ndarray:
        """(B, N) robots within ``contact_margin_m`` of the object's edge (or in it)."""
        return dist <= self.params.object_radius_m + self.radii + self.params.contact_margin_m

    # ---- episode -----------------------------------------------------------------------
    @property
    def max_episode_s(self) -> float:
        return self.params.max_episode_s

    def reset(self, rng: np.random.Generator, starts: np.ndarray, worlds: np.ndarray | None = None) -> None:
        worlds = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=int)
        starts = np.asarray(starts, dtype=float).reshape(len(worlds), self.num_robots, 3)
        clear = float(self.radii.max()) + START_GAP_M
        for w, start in zip(worlds, starts, strict=True):
            drawn = _draw_object_and_goal(rng, self.world, self.params, start[:, :2], clear)
            if drawn is None:
                raise PlacementError(
                    "task.params.object_region",
                    "cannot place the object clear of the robots, obstacles and walls with a goal "
                    "min_goal_distance_m away in task.params.goal_region: enlarge the regions",
                )
            self.object_pos[w], self.goal[w] = drawn
            self._reset_world(w, start)

    def _reset_world(self, w: int, start: np.ndarray) -> None:
        self.object_vel[w] = 0.0
        self.start_distance_m[w] = np.linalg.norm(self.goal[w] - self.object_pos[w])
        self.time_to_goal_s[w] = np.nan
        self.contact_s[w] = 0.0
        self.collisions[w] = 0
        self.path_m[w] = 0.0
        self.finished[w] = False
        self.active[w] = True
        self._last_pos[w] = start[:, :2]
        self._last_contact[w] = False
        self._elapsed_s[w] = 0.0

    def _push(self, pos: np.ndarray, dt: float) -> None:
        """Move the object out of its pushers, within its speed limit (module docstring)."""
        p = self.params
        reach = p.object_radius_m + self.radii  # (N,)
        before = self.object_pos.copy()
        offset = self.object_pos[:, None, :] - pos  # (B, N, 2) robot → object
        dist = length(offset)
        overlap = np.maximum(reach - dist, 0.0)
        normal = offset / np.maximum(dist, 1e-9)[..., None]
        pushing = overlap > 1e-9
        shift = np.zeros_like(self.object_pos)
        for _ in range(PUSH_ROUNDS):  # simultaneous projections: no robot order matters
            need = np.where(pushing, overlap - np.sum(shift[:, None] * normal, axis=-1), 0.0)
            need = np.maximum(need, 0.0)
            count = np.maximum((need > 0).sum(axis=1), 1)
            shift += np.sum(need[..., None] * normal, axis=1) / count[:, None]
        pushers = pushing.sum(axis=1)
        cap = p.max_speed_mps * np.minimum(1.0, pushers / p.pushers_for_full_speed) * dt
        shift *= np.minimum(1.0, cap / np.maximum(length(shift), 1e-12))[:, None]
        self.object_pos, _ = self.shapes.resolve(self.object_pos + shift, p.object_radius_m)
        self.object_vel = (self.object_pos - before) / dt

    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        w, p = self.params.reward, self.params
        B, N = snap.poses.shape[:2]
        pos = snap.poses[..., :2]
        run = ~self.finished
        dt = self.world.control_dt
        moved = length(pos - self._last_pos)
        self.path_m += np.where(run[:, None], moved, 0.0)
        gap_before = np.maximum(length(self.object_pos[:, None] - self._last_pos) - self._reach, 0)
        dist_before = length(self.goal - self.object_pos)

        old_pos, old_vel = self.object_pos.copy(), self.object_vel.copy()
        # Approach counts the robot's own motion only (against the object where it was).
        gap_moved = np.maximum(length(old_pos[:, None] - pos) - self._reach, 0.0)
        self._push(pos, dt)
        # A finished world's object stays where it arrived.
        self.object_pos = np.where(run[:, None], self.object_pos, old_pos)
        self.object_vel = np.where(run[:, None], self.object_vel, old_vel)
        dist_after = length(self.goal - self.object_pos)
        centre = length(self.object_pos[:, None] - pos)
        depth = np.maximum(self._reach - centre, 0.0)  # what the object could not clear
        touching = self._touching(centre)

        rewards = w.progress * (dist_before - dist_after)[:, None] + w.approach * (gap_before - gap_moved)
        rewards += w.contact_bonus * touching - w.overlap_penalty * depth
        new_contact = snap.contacts & ~self._last_contact
        self.collisions += new_contact & run[:, None]
        rewards -= w.collision_penalty * new_contact + w.time_penalty
        t = np.asarray(snap.time_s, dtype=float).reshape(-1)
        arrived = run & (dist_after <= p.goal_radius_m)
        rewards += w.goal_bonus * arrived[:, None]
        rewards = np.where(run[:, None], rewards, 0.0)

        self.contact_s += (touching & run[:, None]) * dt
        self.time_to_goal_s = np.where(arrived, t, self.time_to_goal_s)
        self.finished |= arrived
        terminated = np.broadcast_to(arrived[:, None], (B, N)).copy()
        self._last_pos = pos.copy()
        self._last_contact = snap.contacts.copy()
        self._elapsed_s = np.where(run, t, self._elapsed_s)
        return rewards, terminated

    @property
    def _reach(self) -> np.ndarray:
        """(N,) centre distance at which each robot touches the object."""
        return self.params.object_radius_m + self.radii

    def done(self) -> np.ndarray:
        return self.finished.copy()

    def episode_metrics(self, world: int = 0) -> dict[str, Any]:
        success = bool(self.finished[world])
        collisions = self.collisions[world]
        final = float(np.linalg.norm(self.goal[world] - self.object_pos[world]))
        start = float(self.start_distance_m[world])
        ttg = self.time_to_goal_s[world]
        robots = [
            {
                "robot": f"robot_{i}",
                "success": success,
                "contact_s": round(float(self.contact_s[world, i]), 3),
                "collisions": int(collisions[i]),
                "path_length_m": round(float(self.path_m[world, i]), 4),
            }
            for i in range(self.num_robots)
        ]
        return {
            "success_rate": float(success),
            "collision_rate": float((collisions > 0).mean()),
            "collisions": int(collisions.sum()),
            "final_distance_m": round(final, 4),
            "start_distance_m": round(start, 4),
            "progress_fraction": round(1.0 - final / start, 4) if start > 0 else 1.0,
            "time_to_goal_s": None if math.isnan(ttg) else round(float(ttg), 3),
            "path_length_m": float(self.path_m[world].mean()),
            "episode_s": round(float(self._elapsed_s[world]), 3),
            "robots": robots,
        }

    def drawables(self, world: int = 0) -> dict[str, np.ndarray]:
        return {"object": self.object_pos[world][None].copy(), "goal": self.goal[world][None].copy()}


def _draw_object_and_goal(
    rng: np.random.Generator, world: WorldSpec, params: TransportParams, robots: np.ndarray, clear_m: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """An object start clear of obstacles, walls and the robots (``clear_m`` beyond its edge)
    and a goal at least ``min_goal_distance_m`` from it; None when none can be found."""
    for _ in range(16):
        start = geometry.sample_free_points(
            rng,
            params.object_region,
            1,
            world.arena,
            world.obstacles,
            radius_m=params.object_radius_m,
            min_separation_m=params.object_radius_m + clear_m,
            avoid=robots,
        )
        if start is None:
            return None
        goal = geometry.sample_free_points(
            rng,
            params.goal_region,
            1,
            world.arena,
            world.obstacles,
            radius_m=params.object_radius_m,
            min_separation_m=params.min_goal_distance_m,
            avoid=start,
        )
        if goal is not None:
            return start[0], goal[0]
    return None
