"""Batched maths the tasks share, over whole batches of worlds: compiled (numba) kernels and
the numpy helpers around them (lengths, frames, walls, the nearest points in view, and
pushing task-owned discs out of obstacles)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from worlds.compiled import build_for, serial_and_parallel
from worlds.spec import BoxObstacle, WorldSpec


def _neighbour_features(poses, twists, k, radius, out):
    """out (B, N, 5k): for each robot the k nearest others within ``radius``, in its own
    frame: x, y, vx, vy, 1; zeros pad. Twists are body-frame (vx, vy, wz)."""
    B, N = poses.shape[0], poses.shape[1]
    for b in prange(B):
        for i in range(N):
            for q in range(5 * k):
                out[b, i, q] = 0.0
            ci, si = math.cos(poses[b, i, 2]), math.sin(poses[b, i, 2])
            d = np.empty(N)
            for j in range(N):
                if j == i:
                    d[j] = np.inf
                else:
                    dx = poses[b, j, 0] - poses[b, i, 0]
                    dy = poses[b, j, 1] - poses[b, i, 1]
                    d[j] = math.sqrt(dx * dx + dy * dy)
            order = np.argsort(d)
            for slot in range(min(k, N - 1)):
                j = order[slot]
                if d[j] > radius:
                    break
                dx = poses[b, j, 0] - poses[b, i, 0]
                dy = poses[b, j, 1] - poses[b, i, 1]
                cj, sj = math.cos(poses[b, j, 2]), math.sin(poses[b, j, 2])
                vx = cj * twists[b, j, 0] - sj * twists[b, j, 1]  # map frame
                vy = sj * twists[b, j, 0] + cj * twists[b, j, 1]
                base = 5 * slot
                out[b, i, base] = ci * dx + si * dy
                out[b, i, base + 1] = -si * dx + ci * dy
                out[b, i, base + 2] = ci * vx + si * vy
                out[b, i, base + 3] = -si * vx + ci * vy
                out[b, i, base + 4] = 1.0


neighbour_features_serial, neighbour_features_parallel = serial_and_parallel(_neighbour_features)


def neighbour_features(poses, twists, k, radius, out) -> None:
    """``_neighbour_features`` by the build that suits the batch (see ``worlds.compiled``)."""
    build_for(poses.shape[0], neighbour_features_serial, neighbour_features_parallel)(poses, twists, k, radius, out)


def length(vectors: np.ndarray) -> np.ndarray:
    """Euclidean length of (…, 2) vectors (cheaper than ``np.linalg.norm`` on small axes)."""
    return np.hypot(vectors[..., 0], vectors[..., 1])


def map_velocities(poses: np.ndarray, twists: np.ndarray) -> np.ndarray:
    """(…, 2) map-frame velocities of robots from body-frame twists (vx, vy, wz)."""
    c, s = np.cos(poses[..., 2]), np.sin(poses[..., 2])
    vx, vy = twists[..., 0], twists[..., 1]
    return np.stack([c * vx - s * vy, s * vx + c * vy], axis=-1)


def wall_distances(poses: np.ndarray, half_extents: tuple[float, float], max_m: float) -> np.ndarray:
    """(…, 4): distance from each robot's centre to the arena boundary along its body
    +x, +y, -x, -y axes (a ray cast against the four walls), clipped at ``max_m``."""
    hx, hy = half_extents
    x, y, yaw = poses[..., 0], poses[..., 1], poses[..., 2]
    c, s = np.cos(yaw), np.sin(yaw)
    out = []
    for dx, dy in ((c, s), (-s, c), (-c, -s), (s, -c)):
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(dx > 1e-9, (hx - x) / dx, np.where(dx < -1e-9, (-hx - x) / dx, np.inf))
            ty = np.where(dy > 1e-9, (hy - y) / dy, np.where(dy < -1e-9, (-hy - y) / dy, np.inf))
        out.append(np.minimum(tx, ty))
    return np.clip(np.stack(out, axis=-1), 0.0, max_m)


def neighbour_rows(poses: np.ndarray, twists: np.ndarray, k: int, radius_m: float) -> np.ndarray:
    """(B, N, 5k): the k nearest other robots within ``radius_m``, in each robot's frame:
    position x, y, velocity x, y, present flag; zeros pad. The same features as
    ``worlds.tasks.navigation.neighbour_features``, from a serial kernel: for swarm-sized
    teams the threaded one spends more on waking threads than on the work."""
    B, N = poses.shape[:2]
    valid = np.ones((B, N), dtype=bool)
    return nearest_rows(poses, poses[..., :2], map_velocities(poses, twists), valid, k, radius_m, exclude_self=True)


def nearest_rows(
    poses: np.ndarray,
    points: np.ndarray,
    velocities: np.ndarray | None,
    valid: np.ndarray,
    k: int,
    radius_m: float,
    exclude_self: bool = False,
) -> np.ndarray:
    """(B, N, 5k): for each robot the k nearest ``valid`` points (B, M, 2) within
    ``radius_m``: x, y and velocity x, y (map-frame ``velocities`` (B, M, 2), or zeros) in
    the robot's frame, then 1; zeros pad. ``exclude_self`` skips point i for robot i."""
    B, N = poses.shape[:2]
    out = np.zeros((B, N, 5 * k))
    if k == 0 or points.shape[1] == 0:
        return out
    vel = np.zeros_like(points) if velocities is None else velocities
    _nearest_rows(
        np.ascontiguousarray(poses, dtype=float),
        np.ascontiguousarray(points, dtype=float),
        np.ascontiguousarray(vel, dtype=float),
        np.ascontiguousarray(valid, dtype=np.bool_),
        exclude_self,
        float(radius_m),
        k,
        out,
    )
    return out


@njit(cache=True, fastmath=True, nogil=True)
def _nearest_rows(poses, points, vel, valid, exclude_self, radius, k, out):
    B, N, M = poses.shape[0], poses.shape[1], points.shape[1]
    d = np.empty(M)
    for b in range(B):
        for i in range(N):
            c, s = math.cos(poses[b, i, 2]), math.sin(poses[b, i, 2])
            for j in range(M):
                d[j] = np.inf
                if valid[b, j] and not (exclude_self and j == i):
                    dx, dy = points[b, j, 0] - poses[b, i, 0], points[b, j, 1] - poses[b, i, 1]
                    dist = math.sqrt(dx * dx + dy * dy)
                    if dist <= radius:
                        d[j] = dist
            for slot in range(k):  # selection: k is small
                best, best_d = -1, np.inf
                for j in range(M):
                    if d[j] < best_d:
                        best, best_d = j, d[j]
                if best < 0:
                    break
                d[best] = np.inf
                dx, dy = points[b, best, 0] - poses[b, i, 0], points[b, best, 1] - poses[b, i, 1]
                vx, vy = vel[b, best, 0], vel[b, best, 1]
                q = 5 * slot
                out[b, i, q] = c * dx + s * dy
                out[b, i, q + 1] = -s * dx + c * dy
                out[b, i, q + 2] = c * vx + s * vy
                out[b, i, q + 3] = -s * vx + c * vy
                out[b, i, q + 4] = 1.0


class ObstacleShapes:
    """A world's obstacles as arrays, to push task-owned discs (evaders, a pushed object)
    out of them and out of the walls, like the engine does for robots."""

    def __init__(self, world: WorldSpec):
        cyl, box = [], []
        for o in world.obstacles:
            if isinstance(o, BoxObstacle):
                yaw = math.radians(o.yaw_deg)
                box.append((*o.position, math.cos(yaw), math.sin(yaw), o.size_m[0] / 2, o.size_m[1] / 2))
            else:
                cyl.append((*o.position, o.radius_m))
        self.cylinders = np.array(cyl, dtype=float).reshape(-1, 3)
        self.boxes = np.array(box, dtype=float).reshape(-1, 6)
        self.hx, self.hy = world.arena.half_extents
        self.walls = world.arena.walls

    def resolve(self, points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """``points`` (…, 2) moved out of obstacles and walls (disc of ``radius``), and
        whether each was touching one."""
        p = np.array(points, dtype=float)
        hit = np.zeros(p.shape[:-1], dtype=bool)
        for cx, cy, r in self.cylinders:
            d = p - (cx, cy)
            dist = length(d)
            gap = dist - r - radius
            inside = gap < 0
            safe = np.where(dist > 1e-9, dist, 1.0)
            unit = np.where((dist > 1e-9)[..., None], d / safe[..., None], (1.0, 0.0))
            p = np.where(inside[..., None], p - gap[..., None] * unit, p)
            hit |= inside
        for bx, by, c, s, ex, ey in self.boxes:
            lx = c * (p[..., 0] - bx) + s * (p[..., 1] - by)
            ly = -s * (p[..., 0] - bx) + c * (p[..., 1] - by)
            qx, qy = np.clip(lx, -ex, ex), np.clip(ly, -ey, ey)
            dx, dy = lx - qx, ly - qy
            d = np.hypot(dx, dy)
            inside = d < radius
            outside = d > 1e-9
            safe = np.where(outside, d, 1.0)
            fx, fy = ex - np.abs(lx), ey - np.abs(ly)
            # Centre outside the box: along the normal; inside: out by the nearest face.
            nx = np.where(outside, dx / safe, np.where(fx < fy, np.sign(lx) + (lx == 0), 0.0))
            ny = np.where(outside, dy / safe, np.where(fx < fy, 0.0, np.sign(ly) + (ly == 0)))
            push = np.where(outside, radius - d, np.where(fx < fy, fx, fy) + radius)
            lx = np.where(inside, lx + nx * push, lx)
            ly = np.where(inside, ly + ny * push, ly)
            p = np.stack([bx + c * lx - s * ly, by + s * lx + c * ly], axis=-1)
            hit |= inside
        if self.walls:
            lo = np.array([-self.hx + radius, -self.hy + radius])
            clipped = np.clip(p, lo, -lo)
            hit |= np.any(clipped != p, axis=-1)
            p = clipped
        return p, hit
