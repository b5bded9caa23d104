"""Where robots start: explicit poses, or samples from spawn regions under a seed."""

from __future__ import annotations

import math

import numpy as np

from worlds import geometry
from worlds.spec import WorldSpec

# Free space kept between robots at the start, beyond their footprints (m).
START_GAP_M = 0.2


class PlacementError(ValueError):
    """A region that cannot hold what an episode draws in it (robots' starts, goals, items,
    ...). ``key`` names the world-file key, ``reason`` says what did not fit."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


def sample_starts(world: WorldSpec, rng: np.random.Generator) -> np.ndarray:
    """Start poses (N, 3) as ``x, y, yaw`` (m, m, rad), robot_0 first."""
    entries = world.robot_entries()
    poses = np.zeros((len(entries), 3))
    placed = np.zeros((0, 2))
    placed_r: list[float] = []
    at = 0
    for g, group in enumerate(world.robots):
        model = entries[at].model
        spawn = group.spawn
        if spawn.poses is not None:
            for k, pose in enumerate(spawn.poses):
                poses[at + k] = (pose[0], pose[1], math.radians(pose[2]))
        else:
            # Separation against robots of earlier groups uses both radii; the sampler
            # takes one figure, so use the larger pair.
            sep = 2 * model.radius_m + START_GAP_M
            if placed_r:
                sep = max(sep, model.radius_m + max(placed_r) + START_GAP_M)
            points = geometry.sample_free_points(
                rng,
                spawn.region,
                group.count,
                world.arena,
                world.obstacles,
                radius_m=model.radius_m,
                min_separation_m=sep,
                avoid=placed,
            )
            if points is None:
                raise PlacementError(
                    f"robots[{g}].spawn.region",
                    f"cannot place {group.count} {model.name} robots (radius {model.radius_m:.2f} m)"
                    " clear of obstacles, walls and each other: enlarge the region",
                )
            if spawn.yaw_deg is None:
                yaws = rng.uniform(-math.pi, math.pi, size=group.count)
            else:
                yaws = np.full(group.count, math.radians(spawn.yaw_deg))
            poses[at : at + group.count, :2] = points
            poses[at : at + group.count, 2] = yaws
        placed = np.vstack([placed, poses[at : at + group.count, :2]])
        placed_r += [model.radius_m] * group.count
        at += group.count
    return poses
