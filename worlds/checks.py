"""Checks that need the whole world: a backend that can run its robots, things inside the
arena, starts clear of obstacles and of each other, rates that divide. Each returns
``Problem``s naming the key path.
"""

from __future__ import annotations

import math

import numpy as np

from worlds import geometry
from worlds.errors import Problem
from worlds.ranges import MAX_ROBOTS
from worlds.robots import robot_model
from worlds.spec import BACKEND_MODELS, BACKENDS, WorldSpec


def check_world(world: WorldSpec) -> list[Problem]:
    """Every whole-world problem with ``world`` (task parameters are checked by the task)."""
    too_many = _check_robot_total(world)
    if too_many:  # the per-robot checks below would only repeat it, at length
        return [*check_backend(world), *_check_rates(world), *too_many]
    return [*check_backend(world), *_check_rates(world), *_check_obstacles(world), *_check_spawns(world)]


def _check_robot_total(world: WorldSpec) -> list[Problem]:
    total = sum(group.count for group in world.robots)
    if total > MAX_ROBOTS:
        return [Problem("robots", f"a world holds at most {MAX_ROBOTS} robots; these groups add up to {total}")]
    return []


def check_backend(world: WorldSpec, backend: str | None = None) -> list[Problem]:
    """Problems running ``world`` on ``backend`` (default: its own ``backend`` key): a
    backend this build cannot run, or a robot model the backend cannot simulate."""
    name = backend or world.backend
    available = ", ".join(sorted(BACKEND_MODELS))
    if name not in BACKEND_MODELS:
        if name in BACKENDS:
            return [Problem("backend", f"backend {name!r} is not available in this build; available: {available}")]
        return [Problem("backend", f"unknown backend {name!r}; available: {available}")]
    if name == "unity" and not mlagents_installed():
        return [
            Problem("backend", "backend 'unity' needs mlagents-envs, which is not installed (make setup installs it)")
        ]
    problems = []
    for g, group in enumerate(world.robots):
        if group.model not in BACKEND_MODELS[name]:
            able = [b for b in sorted(BACKEND_MODELS) if group.model in BACKEND_MODELS[b]]
            problems.append(
                Problem(
                    f"robots[{g}].model",
                    f"the {name} backend cannot simulate model {group.model!r}; "
                    f"backends that can: {', '.join(able) or 'none'}",
                )
            )
    return problems


def mlagents_installed() -> bool:
    """Whether mlagents-envs, the unity backend's client, is installed (found, not imported)."""
    import importlib.util

    return importlib.util.find_spec("mlagents_envs") is not None


def _check_rates(world: WorldSpec) -> list[Problem]:
    if world.physics_rate_hz % world.control_rate_hz:
        return [
            Problem(
                "control_rate_hz",
                f"must divide physics_rate_hz ({world.physics_rate_hz}); got {world.control_rate_hz}"
                f" (try one of {_divisors(world.physics_rate_hz)})",
            )
        ]
    return []


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0 and d >= 5)


def _check_obstacles(world: WorldSpec) -> list[Problem]:
    problems = []
    hx, hy = world.arena.half_extents
    for i, obstacle in enumerate(world.obstacles):
        lo, hi = geometry.obstacle_footprint_extent(obstacle)
        if lo[0] < -hx or lo[1] < -hy or hi[0] > hx or hi[1] > hy:
            problems.append(
                Problem(
                    f"obstacles[{i}]",
                    f"reaches outside the arena (x in [{-hx:g}, {hx:g}], y in [{-hy:g}, {hy:g}])",
                )
            )
    return problems


def _check_spawns(world: WorldSpec) -> list[Problem]:
    problems: list[Problem] = []
    hx, hy = world.arena.half_extents
    placed: list[tuple[str, np.ndarray, float]] = []  # (key, xy, radius) of explicit starts
    for g, group in enumerate(world.robots):
        model = robot_model(group.model)
        r = model.radius_m
        spawn = group.spawn
        if spawn.region is not None:
            reg = spawn.region
            if reg.min[0] < -hx or reg.max[0] > hx or reg.min[1] < -hy or reg.max[1] > hy:
                problems.append(
                    Problem(
                        f"robots[{g}].spawn.region",
                        f"region {[list(reg.min), list(reg.max)]} reaches outside the arena "
                        f"(x in [{-hx:g}, {hx:g}], y in [{-hy:g}, {hy:g}])",
                    )
                )
            continue
        if len(spawn.poses) != group.count:
            problems.append(
                Problem(
                    f"robots[{g}].spawn.poses",
                    f"count is {group.count} but {len(spawn.poses)} poses are given",
                )
            )
        for k, pose in enumerate(spawn.poses):
            key = f"robots[{g}].spawn.poses[{k}]"
            if len(pose) != 3:
                problems.append(Problem(key, f"a start pose is [x, y, yaw_deg]; got {list(pose)}"))
                continue
            xy = np.array(pose[:2], dtype=float)
            if not all(math.isfinite(v) for v in pose):
                problems.append(Problem(key, f"pose must be finite numbers; got {list(pose)}"))
                continue
            if abs(pose[2]) > 360:
                problems.append(Problem(key, f"yaw_deg must be in [-360, 360]; got {pose[2]:g}"))
                continue
            if abs(xy[0]) > hx or abs(xy[1]) > hy:
                problems.append(
                    Problem(
                        key,
                        f"start {list(pose[:2])} is outside the arena (x in [{-hx:g}, {hx:g}], y in [{-hy:g}, {hy:g}])",
                    )
                )
                continue
            wall = float(geometry.wall_distance(world.arena, xy))
            inside = [
                i for i, obstacle in enumerate(world.obstacles) if float(geometry.obstacle_distance(obstacle, xy)) < r
            ]
            if inside:
                problems.append(
                    Problem(
                        key,
                        f"start {list(pose[:2])} puts the {model.name} (radius {r:.2f} m) inside "
                        f"obstacles[{inside[0]}]",
                    )
                )
            elif world.arena.walls and wall < r:
                problems.append(
                    Problem(
                        key,
                        f"start {list(pose[:2])} puts the {model.name} (radius {r:.2f} m) into the "
                        f"arena wall ({wall:.2f} m away)",
                    )
                )
            for other_key, other_xy, other_r in placed:
                gap = float(np.linalg.norm(xy - other_xy))
                if gap < r + other_r:
                    problems.append(
                        Problem(
                            key,
                            f"start overlaps {other_key} ({gap:.2f} m apart, needs {r + other_r:.2f} m)",
                        )
                    )
            placed.append((key, xy, r))
    return problems
