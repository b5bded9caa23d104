"""Foraging: a team collects items scattered over the arena and brings them to a nest
(SwarmBench / VMAS family). Each robot senses only the items and robots near it.

The items are the task's own points (the engine knows only robots and obstacles), drawn
per episode in ``item_region``, clear of obstacles and at least ``item_nest_gap_m`` beyond
the nest's edge. A robot that carries nothing picks up an item by bringing its centre
within ``pickup_radius_m`` of it (the nearest, if several; the lower-numbered robot wins a
tie); it carries one item at a time, and delivers it by entering the nest (a disc of
``nest_radius_m`` around ``nest``). Carried items travel with their robot and are not
visible to others.

Observation of one robot (body frame, SI units):
  velocity (2): own velocity x, y;
  carrying (1): 1 while it carries an item, else 0;
  nest (3): nest centre x, y in the robot frame and its distance;
  walls (4): distance to the arena boundary along its +x, +y, -x, -y axes, clipped at
    ``wall_sensing_m`` (obstacles are not in it);
  items (3 × k): the k nearest items on the floor within ``item_sensing_radius_m``:
    position x, y in the robot frame, then 1 (present) or 0 (padding);
  neighbours (5 × k): the k nearest robots within ``neighbour_radius_m``: position x, y,
    velocity x, y in the robot frame, present.

Reward per control step and robot: ``delivery_bonus`` for each item it delivers,
``pickup_bonus`` for each it picks up; ``progress`` × the metres it gained toward the
target it had at the previous step (the nest while carrying, else the nearest item in
sight; no target, no shaping); ``-collision_penalty`` on each new contact (walls or
robots); ``-time_penalty``.

Episode metrics: items_delivered (count) and delivered_fraction; delivery_rate_per_min
(items delivered per minute of episode); time_to_deliver_all_s (None unless all were);
pickups; collisions (contact onsets) and collision_rate (fraction of robots with any);
success_rate 1.0 when every item was delivered before ``max_episode_s``, else 0.0 (one
figure for the team); per robot its pickups and deliveries. The episode ends (all robots
terminated) when the last item is delivered.
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
from worlds.ranges import Distance_m, Duration_s, Length_m, Neighbours, RewardWeight
from worlds.spec import Region, Spec, Vec2, WorldSpec
from worlds.tasks.base import ObservationPart, Snapshot, Task, region_problem
from worlds.tasks.kernels import length, nearest_rows, neighbour_rows, wall_distances
from worlds.tasks.navigation import rotate_into

ITEM_RADIUS_M = 0.1  # items keep this far from walls and obstacles, and twice this apart
FLOOR, CARRIED, DELIVERED = 0, 1, 2  # item states


class ForagingReward(Spec):
    delivery_bonus: RewardWeight = 10.0
    pickup_bonus: RewardWeight = 1.0
    progress: RewardWeight = 0.5
    collision_penalty: RewardWeight = 2.0
    time_penalty: RewardWeight = 0.01


class ForagingParams(Spec):
    """``task.params`` of a foraging world."""

    nest: Vec2 = (0.0, 0.0)
    nest_radius_m: Length_m = 0.8
    items: Annotated[int, Field(ge=1, le=256)] = 12
    item_region: Region
    item_nest_gap_m: Distance_m = 1.0
    pickup_radius_m: Length_m = 0.3
    max_episode_s: Duration_s = 60.0
    item_sensing_radius_m: Length_m = 3.0
    observed_items: Annotated[int, Field(ge=1, le=16)] = 3
    wall_sensing_m: Length_m = 3.0
    neighbours: Neighbours = 3
    neighbour_radius_m: Length_m = 3.0
    reward: ForagingReward = ForagingReward()


class ForagingTask(Task):
    name = "foraging"
    headline_metric = ("delivery_rate_per_min", "max")
    Params = ForagingParams
    params: ForagingParams

    def __init__(self, world: WorldSpec, params: ForagingParams, num_worlds: int = 1):
        super().__init__(world, params, num_worlds)
        B, N, M = num_worlds, self.num_robots, params.items
        self.nest = np.asarray(params.nest, dtype=float)
        self._bounds = self._make_bounds()
        self.active = np.ones((B, N), dtype=bool)  # robots never finish alone
        self.item_pos = np.zeros((B, M, 2))
        self.item_state = np.zeros((B, M), dtype=np.int8)
        self.carrying = np.full((B, N), -1)  # index of the item each robot carries
        self.pickups = np.zeros((B, N), dtype=int)
        self.deliveries = np.zeros((B, N), dtype=int)
        self.collisions = np.zeros((B, N), dtype=int)
        self.path_m = np.zeros((B, N))
        self.all_delivered_s = np.full(B, np.nan)
        self.finished = np.zeros(B, dtype=bool)
        self._target = np.zeros((B, N, 2))  # what each robot was heading for at the last step
        self._has_target = np.zeros((B, N), dtype=bool)
        self._last_pos = np.zeros((B, N, 2))
        self._last_contact = np.zeros((B, N), dtype=bool)
        self._elapsed_s = np.zeros(B)

    # ---- checks ------------------------------------------------------------------------
    @classmethod
    def check(cls, world: WorldSpec, params: ForagingParams) -> list[Problem]:
        problems = []
        hx, hy = world.arena.half_extents
        (x, y), r = params.nest, params.nest_radius_m
        if abs(x) + r > hx or abs(y) + r > hy:
            problems.append(
                Problem(
                    "task.params.nest",
                    f"the nest (radius {r:g} m around {[x, y]}) reaches outside the arena "
                    f"(x in [{-hx:g}, {hx:g}], y in [{-hy:g}, {hy:g}])",
                )
            )
        bad = region_problem("task.params.item_region", params.item_region, world)
        if bad:
            problems.append(bad)
        elif _draw_items(np.random.default_rng(world.seed), world, params) is None:
            problems.append(
                Problem(
                    "task.params.item_region",
                    f"cannot hold {params.items} items clear of obstacles, walls, each other and "
                    f"{params.item_nest_gap_m:g} m beyond the nest: enlarge it or lower task.params.items",
                )
            )
        return problems

    # ---- observations ------------------------------------------------------------------
    def observation_layout(self) -> list[ObservationPart]:
        k, ki = self.params.neighbours, self.params.observed_items
        return [
            ObservationPart("velocity", 2, "own velocity x, y (m/s) in the robot frame"),
            ObservationPart("carrying", 1, "1 while carrying an item, else 0"),
            ObservationPart("nest", 3, "nest centre x, y in the robot frame (m) and distance (m)"),
            ObservationPart("walls", 4, "distance to the arena boundary along +x, +y, -x, -y of the robot (m)"),
            ObservationPart("items", 3 * ki, "per item on the floor in sight: x, y (m) in the robot frame, present"),
            ObservationPart("neighbours", 5 * k, "per neighbour: x, y (m), vx, vy (m/s) in the robot frame, present"),
        ]

    def _make_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        diag = float(math.hypot(*self.world.arena.size_m))
        vmax = max(r.limits.max_linear_speed_mps for r in self.robots) * 2.0
        s, nb = p.item_sensing_radius_m, p.neighbour_radius_m
        lo = np.concatenate(
            [
                [-vmax, -vmax, 0.0],
                [-diag, -diag, 0.0],
                np.zeros(4),
                np.tile([-s, -s, 0.0], p.observed_items),
                np.tile([-nb, -nb, -vmax, -vmax, 0.0], p.neighbours),
            ]
        ).astype(np.float32)
        hi = np.concatenate(
            [
                [vmax, vmax, 1.0],
                [diag, diag, diag],
                np.full(4, p.wall_sensing_m),
                np.tile([s, s, 1.0], p.observed_items),
                np.tile([nb, nb, vmax, vmax, 1.0], p.neighbours),
            ]
        ).astype(np.float32)
        return lo, hi

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._bounds

    def observe(self, snap: Snapshot) -> np.ndarray:
        p = self.params
        B, N = snap.poses.shape[:2]
        pos, yaw = snap.poses[..., :2], snap.poses[..., 2]
        velocity = snap.twists[..., :2]
        carrying = (self.carrying >= 0)[..., None].astype(float)
        nest_rel = rotate_into(yaw, self.nest - pos)
        nest = np.concatenate([nest_rel, length(nest_rel)[..., None]], axis=-1)
        walls = wall_distances(snap.poses, self.world.arena.half_extents, p.wall_sensing_m)
        if not self.world.arena.walls:
            walls[:] = p.wall_sensing_m
        floor = self.item_state == FLOOR
        items = nearest_rows(snap.poses, self.item_pos, None, floor, p.observed_items, p.item_sensing_radius_m)
        items = items.reshape(B, N, p.observed_items, 5)[..., [0, 1, 4]].reshape(B, N, -1)
        neighbours = neighbour_rows(snap.poses, snap.twists, p.neighbours, p.neighbour_radius_m)
        obs = np.concatenate([velocity, carrying, nest, walls, items, neighbours], axis=-1)
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
            items = _draw_items(rng, self.world, self.params)
            if items is None:
                raise PlacementError(
                    "task.params.item_region",
                    f"cannot hold {self.params.items} items clear of obstacles, walls, each other and the nest: "
                    "enlarge it",
                )
            self.item_pos[w] = items
            self._reset_world(w, start)

    def _reset_world(self, w: int, start: np.ndarray) -> None:
        self.item_state[w] = FLOOR
        self.carrying[w] = -1
        self.pickups[w] = 0
        self.deliveries[w] = 0
        self.collisions[w] = 0
        self.path_m[w] = 0.0
        self.all_delivered_s[w] = np.nan
        self.finished[w] = False
        self.active[w] = True
        self._last_pos[w] = start[:, :2]
        self._last_contact[w] = False
        self._elapsed_s[w] = 0.0
        self._exchange(start[None, :, :2], np.ones(1, dtype=bool), np.array([w]), False)

    def _exchange(self, pos: np.ndarray, run: np.ndarray, worlds: np.ndarray | slice, exchange: bool):
        """Deliveries and pick-ups (when ``exchange``) in ``worlds``, then each robot's
        target for the shaping reward; returns (delivered, picked) flags (B, N)."""
        p = self.params
        item_pos, item_state = self.item_pos[worlds], self.item_state[worlds]
        carrying, target, has = self.carrying[worlds], self._target[worlds], self._has_target[worlds]
        delivered = np.zeros(carrying.shape, dtype=bool)
        picked = np.zeros(carrying.shape, dtype=bool)
        _exchange_items(
            np.ascontiguousarray(pos, dtype=float),
            run,
            exchange,
            self.nest,
            p.nest_radius_m,
            p.pickup_radius_m,
            p.item_sensing_radius_m,
            item_pos,
            item_state,
            carrying,
            delivered,
            picked,
            target,
            has,
        )
        self.item_pos[worlds], self.item_state[worlds], self.carrying[worlds] = item_pos, item_state, carrying
        self._target[worlds], self._has_target[worlds] = target, has
        return delivered, picked

    def step(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        w = self.params.reward
        B, N = snap.poses.shape[:2]
        pos = snap.poses[..., :2]
        run = ~self.finished
        moved = length(pos - self._last_pos)
        self.path_m += np.where(run[:, None], moved, 0.0)

        # Shaping toward the previous step's target (no jump when a target changes).
        before = length(self._last_pos - self._target)
        after = length(pos - self._target)
        rewards = w.progress * np.where(self._has_target, before - after, 0.0)

        delivered, picked = self._exchange(pos, run, slice(None), True)
        self.deliveries += delivered
        self.pickups += picked
        rewards += w.delivery_bonus * delivered + w.pickup_bonus * picked

        new_contact = snap.contacts & ~self._last_contact
        self.collisions += new_contact & run[:, None]
        rewards -= w.collision_penalty * new_contact + w.time_penalty
        rewards = np.where(run[:, None], rewards, 0.0)

        t = np.asarray(snap.time_s, dtype=float).reshape(-1)
        ended = run & (self.item_state == DELIVERED).all(axis=1)
        self.all_delivered_s = np.where(ended, t, self.all_delivered_s)
        self.finished |= ended
        terminated = np.broadcast_to(ended[:, None], (B, N)).copy()
        self._last_pos = pos.copy()
        self._last_contact = snap.contacts.copy()
        self._elapsed_s = np.where(run, t, self._elapsed_s)
        return rewards, terminated

    def done(self) -> np.ndarray:
        return self.finished.copy()

    def episode_metrics(self, world: int = 0) -> dict[str, Any]:
        delivered = int((self.item_state[world] == DELIVERED).sum())
        total = self.params.items
        success = delivered == total
        collisions = self.collisions[world]
        episode_s = float(self._elapsed_s[world])
        robots = [
            {
                "robot": f"robot_{i}",
                "success": success,
                "pickups": int(self.pickups[world, i]),
                "deliveries": int(self.deliveries[world, i]),
                "collisions": int(collisions[i]),
                "path_length_m": round(float(self.path_m[world, i]), 4),
            }
            for i in range(self.num_robots)
        ]
        all_s = self.all_delivered_s[world]
        return {
            "success_rate": float(success),
            "collision_rate": float((collisions > 0).mean()),
            "collisions": int(collisions.sum()),
            "items_delivered": delivered,
            "delivered_fraction": delivered / total,
            "delivery_rate_per_min": round(60.0 * delivered / episode_s, 4) if episode_s > 0 else 0.0,
            "time_to_deliver_all_s": None if math.isnan(all_s) else round(float(all_s), 3),
            "pickups": int(self.pickups[world].sum()),
            "path_length_m": float(self.path_m[world].mean()),
            "episode_s": round(episode_s, 3),
            "robots": robots,
        }

    def drawables(self, world: int = 0) -> dict[str, np.ndarray]:
        floor = self.item_state[world] == FLOOR
        return {"nest": self.nest[None].copy(), "items": self.item_pos[world][floor].copy()}


def _draw_items(rng: np.random.Generator, world: WorldSpec, params: ForagingParams) -> np.ndarray | None:
    """Item positions (M, 2) in the item region, clear of obstacles and walls, apart, and
    ``item_nest_gap_m`` beyond the nest's edge; None when the region cannot hold them."""
    region = params.item_region
    keep_out = params.nest_radius_m + params.item_nest_gap_m
    chosen: list[np.ndarray] = []
    for _ in range(32):  # candidates in batches: far cheaper than one at a time
        cand = rng.uniform(region.min, region.max, size=(128, 2))
        ok = geometry.clearance(world.arena, world.obstacles, cand) >= 2 * ITEM_RADIUS_M
        ok &= np.linalg.norm(cand - params.nest, axis=1) >= keep_out
        for point in cand[ok]:
            if not chosen or np.min(np.linalg.norm(np.array(chosen) - point, axis=1)) >= 2 * ITEM_RADIUS_M:
                chosen.append(point)
                if len(chosen) == params.items:
                    return np.array(chosen)
    return None


@njit(cache=True, fastmath=True, nogil=True)
def _exchange_items(
    pos, run, exchange, nest, nest_r, pickup_r, sense_r, items, state, carrying, delivered, picked, target, has
):
    """Per world: carriers in the nest deliver; robots in order pick up the nearest floor
    item within ``pickup_r`` (so two never take one item); carried items follow their
    robots; then each robot's target: the nest while carrying, else the nearest floor item
    within ``sense_r`` (``has`` False when there is none)."""
    B, N, M = pos.shape[0], pos.shape[1], items.shape[1]
    for b in range(B):
        if exchange and run[b]:
            for i in range(N):
                j = carrying[b, i]
                dx, dy = pos[b, i, 0] - nest[0], pos[b, i, 1] - nest[1]
                if j >= 0 and dx * dx + dy * dy <= nest_r * nest_r:
                    state[b, j] = DELIVERED
                    items[b, j, 0], items[b, j, 1] = nest[0], nest[1]
                    carrying[b, i] = -1
                    delivered[b, i] = True
            for i in range(N):
                if carrying[b, i] >= 0 or delivered[b, i]:
                    continue
                best, best_d = -1, pickup_r
                for j in range(M):
                    if state[b, j] == FLOOR:
                        dx, dy = items[b, j, 0] - pos[b, i, 0], items[b, j, 1] - pos[b, i, 1]
                        d = math.sqrt(dx * dx + dy * dy)
                        if d <= best_d:
                            best, best_d = j, d
                if best >= 0:
                    state[b, best] = CARRIED
                    carrying[b, i] = best
                    picked[b, i] = True
        for i in range(N):
            j = carrying[b, i]
            if j >= 0:
                items[b, j, 0], items[b, j, 1] = pos[b, i, 0], pos[b, i, 1]
                target[b, i, 0], target[b, i, 1] = nest[0], nest[1]
                has[b, i] = True
                continue
            best, best_d = -1, sense_r
            for j in range(M):
                if state[b, j] == FLOOR:
                    dx, dy = items[b, j, 0] - pos[b, i, 0], items[b, j, 1] - pos[b, i, 1]
                    d = math.sqrt(dx * dx + dy * dy)
                    if d <= best_d:
                        best, best_d = j, d
            has[b, i] = best >= 0
            if best >= 0:
                target[b, i, 0], target[b, i, 1] = items[b, best, 0], items[b, best, 1]
