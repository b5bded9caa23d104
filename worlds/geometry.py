"""Planar geometry of a world: clearances to obstacles and walls, free-space sampling,
and shortest collision-free path lengths (for SPL). Pure numpy/scipy, no engine.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from worlds.spec import Arena, BoxObstacle, CylinderObstacle, Obstacle, Region

MAX_GRID_CELLS = 160_000  # bounds the path-length grid's memory and Dijkstra time (40 m square at 0.1 m)


def obstacle_distance(obstacle: Obstacle, points: np.ndarray) -> np.ndarray:
    """Signed distance (m) from each point (…, 2) to an obstacle's footprint; < 0 inside."""
    points = np.asarray(points, dtype=float)
    centre = np.asarray(obstacle.position, dtype=float)
    if isinstance(obstacle, CylinderObstacle):
        return np.linalg.norm(points - centre, axis=-1) - obstacle.radius_m
    yaw = math.radians(obstacle.yaw_deg)
    c, s = math.cos(yaw), math.sin(yaw)
    d = points - centre
    local = np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)
    q = np.abs(local) - 0.5 * np.asarray(obstacle.size_m)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(np.max(q, axis=-1), 0.0)
    return outside + inside


def wall_distance(arena: Arena, points: np.ndarray) -> np.ndarray:
    """Distance (m) from each point to the nearest arena boundary; < 0 outside the arena."""
    points = np.asarray(points, dtype=float)
    hx, hy = arena.half_extents
    return np.minimum(hx - np.abs(points[..., 0]), hy - np.abs(points[..., 1]))


def clearance(arena: Arena, obstacles: list[Obstacle], points: np.ndarray) -> np.ndarray:
    """Distance (m) from each point to the nearest obstacle or wall."""
    d = wall_distance(arena, points)
    for obstacle in obstacles:
        d = np.minimum(d, obstacle_distance(obstacle, points))
    return d


def obstacle_footprint_extent(obstacle: Obstacle) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds (min, max) of an obstacle's footprint."""
    centre = np.asarray(obstacle.position, dtype=float)
    if isinstance(obstacle, CylinderObstacle):
        r = obstacle.radius_m
        return centre - r, centre + r
    assert isinstance(obstacle, BoxObstacle)
    yaw = math.radians(obstacle.yaw_deg)
    hx, hy = 0.5 * obstacle.size_m[0], 0.5 * obstacle.size_m[1]
    ex = abs(hx * math.cos(yaw)) + abs(hy * math.sin(yaw))
    ey = abs(hx * math.sin(yaw)) + abs(hy * math.cos(yaw))
    return centre - (ex, ey), centre + (ex, ey)


def sample_free_points(
    rng: np.random.Generator,
    region: Region,
    count: int,
    arena: Arena,
    obstacles: list[Obstacle],
    radius_m: float | np.ndarray,
    min_separation_m: float | np.ndarray,
    avoid: np.ndarray | None = None,
    attempts: int = 2000,
) -> np.ndarray | None:
    """Draw ``count`` points in ``region`` with ``radius_m`` clearance from obstacles and
    walls and ``min_separation_m`` between each other (and from ``avoid``).

    Radii and separations may be per point. Returns (count, 2) or ``None`` when the
    region cannot hold them.
    """
    radii = np.broadcast_to(np.asarray(radius_m, dtype=float), (count,))
    seps = np.broadcast_to(np.asarray(min_separation_m, dtype=float), (count,))
    lo, hi = np.asarray(region.min), np.asarray(region.max)
    chosen: list[np.ndarray] = []
    taken = np.zeros((0, 2)) if avoid is None else np.asarray(avoid, dtype=float).reshape(-1, 2)
    for i in range(count):
        # Candidates in batches: far cheaper than one at a time in Python.
        for _ in range(max(1, attempts // 64)):
            cand = rng.uniform(lo, hi, size=(64, 2))
            ok = clearance(arena, obstacles, cand) >= radii[i]
            if len(taken):
                gaps = np.linalg.norm(cand[:, None, :] - taken[None, :, :], axis=-1)
                ok &= np.all(gaps >= seps[i], axis=1)
            hits = np.flatnonzero(ok)
            if len(hits):
                point = cand[hits[0]]
                chosen.append(point)
                taken = np.vstack([taken, point])
                break
        else:
            return None
    return np.array(chosen)


def _shifted_pairs(idx: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (cell, neighbour at +dx, +dy) for every cell whose neighbour exists."""
    nx, ny = idx.shape
    ia, ib = slice(0, nx - dx), slice(dx, nx)
    if dy >= 0:
        ja, jb = slice(0, ny - dy), slice(dy, ny)
    else:
        ja, jb = slice(-dy, ny), slice(0, ny + dy)
    return idx[ia, ja], idx[ib, jb]


class OccupancyGrid:
    """Free space of a world on a square grid, inflated by a robot radius.

    Cells are ``cell_m`` wide, widened on large arenas so the grid never exceeds
    ``MAX_GRID_CELLS`` (a 1 km field gets 2.5 m cells, not 10⁸ of 0.1 m). The grid and its
    graph are built on first use: most paths are straight lines that need neither."""

    def __init__(self, arena: Arena, obstacles: list[Obstacle], inflate_m: float, cell_m: float = 0.1):
        hx, hy = arena.half_extents
        self.cell_m = max(cell_m, math.sqrt(4 * hx * hy / MAX_GRID_CELLS))
        self.origin = np.array([-hx, -hy])
        self.nx = max(1, math.ceil(2 * hx / self.cell_m))
        self.ny = max(1, math.ceil(2 * hy / self.cell_m))
        self._arena, self._obstacles, self._inflate = arena, obstacles, inflate_m

    @functools.cached_property
    def centres(self) -> np.ndarray:
        """(nx, ny, 2) map-frame centre of each cell."""
        xs = self.origin[0] + (np.arange(self.nx) + 0.5) * self.cell_m
        ys = self.origin[1] + (np.arange(self.ny) + 0.5) * self.cell_m
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        return np.stack([gx, gy], axis=-1)

    @functools.cached_property
    def free(self) -> np.ndarray:
        """(nx, ny) bool: the cell's centre keeps the inflation clearance."""
        return clearance(self._arena, self._obstacles, self.centres) >= self._inflate

    @functools.cached_property
    def _graph(self):
        idx = np.arange(self.nx * self.ny).reshape(self.nx, self.ny)
        rows, cols, weights = [], [], []
        for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
            a, b = _shifted_pairs(idx, dx, dy)
            fa = self.free.ravel()[a.ravel()]
            fb = self.free.ravel()[b.ravel()]
            keep = fa & fb
            rows.append(a.ravel()[keep])
            cols.append(b.ravel()[keep])
            weights.append(np.full(keep.sum(), math.hypot(dx, dy) * self.cell_m))
        n = self.nx * self.ny
        r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
        return coo_matrix((w, (r, c)), shape=(n, n)).tocsr()

    def cell_of(self, point: np.ndarray) -> int:
        i = int(np.clip((point[0] - self.origin[0]) // self.cell_m, 0, self.nx - 1))
        j = int(np.clip((point[1] - self.origin[1]) // self.cell_m, 0, self.ny - 1))
        return i * self.ny + j

    def _free_cell_near(self, point: np.ndarray) -> int | None:
        """The point's cell, or the free cell whose centre is nearest when it is blocked (on a
        coarse grid a free point near an obstacle can sit in a blocked cell)."""
        cell = self.cell_of(point)
        free = self.free.ravel()
        if free[cell]:
            return cell
        candidates = np.flatnonzero(free)
        if not len(candidates):
            return None
        gaps = np.linalg.norm(self.centres.reshape(-1, 2)[candidates] - point, axis=1)
        return int(candidates[np.argmin(gaps)])

    def segment_is_free(self, a: np.ndarray, b: np.ndarray) -> bool:
        """True when the straight segment a→b keeps the inflation clearance everywhere."""
        length = float(np.linalg.norm(np.asarray(b) - np.asarray(a)))
        n = max(2, int(length / (0.25 * self.cell_m)) + 1)
        pts = np.linspace(a, b, n)
        return bool(np.all(clearance(self._arena, self._obstacles, pts) >= self._inflate))

    def path_length(self, start: np.ndarray, goal: np.ndarray) -> float:
        """Shortest collision-free path length (m) from start to goal.

        A straight line when it is clear; otherwise Dijkstra on the 8-connected grid
        (which overestimates a true shortest path by at most ~8 %). ``inf`` if no path.
        """
        start, goal = np.asarray(start, float), np.asarray(goal, float)
        if self.segment_is_free(start, goal):
            return float(np.linalg.norm(goal - start))
        s, g = self._free_cell_near(start), self._free_cell_near(goal)
        if s is None or g is None:
            return math.inf
        dist = dijkstra(self._graph, directed=False, indices=s)
        d = float(dist[g])
        if not math.isfinite(d):
            return math.inf
        # Add the legs from the exact points to their cell centres.
        cs, cg = self.centres.reshape(-1, 2)[s], self.centres.reshape(-1, 2)[g]
        return d + float(np.linalg.norm(start - cs) + np.linalg.norm(goal - cg))
