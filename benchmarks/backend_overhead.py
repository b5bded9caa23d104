"""PyBullet backend overhead against a raw pybullet loop with the same robots, and the
real-time factor with 4 and 16 Huskies at 240 Hz.

Both loops build the same scene (plane, walls, obstacles of worlds/navigation.yaml, the
same Husky URDF with the same tyre friction), apply the same seeded (v, ω) commands at
the 20 Hz control rate, step physics at 240 Hz and read every robot's pose and twist once
per control period. The raw loop is what a careful user would write by hand; ours adds
command checking, acceleration ramps and contact tracking. Lidar and cameras are not in
either loop (they cost the same in both). Rounds alternate raw / ours and the median of
each is kept.

    .venv/bin/python benchmarks/backend_overhead.py [--sim-seconds 10] [--rounds 3]

Ends with one JSON line: {"overhead_pct": …, "rtf_4": …, "rtf_16": …}
(overhead_pct is the worse of the 4- and 16-robot cases; positive = we are slower).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

from sim_bridge.backends import make_backend
from sim_bridge.backends.pybullet_backend import ASSETS, _quiet_c_output
from worlds import load_world, load_world_data
from worlds.layout import sample_starts
from worlds.spec import BoxObstacle

WORLD = Path(__file__).resolve().parents[1] / "worlds" / "navigation.yaml"


def world_with(n_robots: int):
    data = load_world(WORLD).to_data()
    data["robots"][0]["count"] = n_robots
    data["robots"][0]["spawn"] = {"region": {"min": [-8.0, -5.0], "max": [8.0, 5.0]}}
    return load_world_data(data, source=f"{WORLD.name} with {n_robots} robots")


def commands(n_robots: int, periods: int, seed: int = 0) -> np.ndarray:
    """(periods, N, 2) commands: a new random (v, ω) per robot every second."""
    rng = np.random.default_rng(seed)
    per_second = np.column_stack([rng.uniform(0.2, 1.0, n_robots * 100), rng.uniform(-1.0, 1.0, n_robots * 100)])
    per_second = per_second.reshape(100, n_robots, 2)
    return np.repeat(per_second, 20, axis=0)[:periods]


def run_ours(world, starts, cmds) -> float:
    """Physics steps per second through the sern backend."""
    with make_backend(world) as backend:
        backend.reset(0, starts[None])
        dt = world.control_dt
        t0 = time.perf_counter()
        for cmd in cmds:
            backend.apply(cmd[None])
            backend.step(dt)
            backend.states()
        elapsed = time.perf_counter() - t0
    return len(cmds) * world.physics_steps_per_control / elapsed


def run_raw(world, starts, cmds) -> float:
    """Physics steps per second of a hand-written pybullet loop over the same scene."""
    with _quiet_c_output():
        import pybullet as p
        import pybullet_data

        cid = p.connect(p.DIRECT)
    try:
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setTimeStep(1.0 / world.physics_rate_hz, physicsClientId=cid)
        with _quiet_c_output():
            p.loadURDF("plane.urdf", physicsClientId=cid)
            _raw_scene(p, cid, world)
            asset = ASSETS["husky"]
            robots = []
            for x, y, yaw in starts:
                uid = p.loadURDF(asset.urdf, [x, y, 0.005], p.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=cid)
                wheels = [2, 4, 3, 5]  # front-left, rear-left, front-right, rear-right
                for j in wheels:
                    p.changeDynamics(uid, j, lateralFriction=1.0, anisotropicFriction=[1, 0.3, 1], physicsClientId=cid)
                robots.append((uid, wheels))
        radius, track = 0.17775, 0.5708 * asset.track_multiplier
        substeps = world.physics_steps_per_control
        t0 = time.perf_counter()
        for cmd in cmds:
            for (uid, wheels), (v, w) in zip(robots, cmd, strict=True):
                left, right = (v - w * track / 2) / radius, (v + w * track / 2) / radius
                p.setJointMotorControlArray(
                    uid,
                    wheels,
                    p.VELOCITY_CONTROL,
                    targetVelocities=[left, left, right, right],
                    forces=[asset.max_wheel_torque_nm] * 4,
                    physicsClientId=cid,
                )
            for _ in range(substeps):
                p.stepSimulation(physicsClientId=cid)
            for uid, _ in robots:
                p.getBasePositionAndOrientation(uid, physicsClientId=cid)
                p.getBaseVelocity(uid, physicsClientId=cid)
        elapsed = time.perf_counter() - t0
    finally:
        p.disconnect(physicsClientId=cid)
    return len(cmds) * substeps / elapsed


def _raw_scene(p, cid, world) -> None:
    hx, hy = world.arena.half_extents
    t, h = world.arena.wall_thickness_m, world.arena.wall_height_m
    boxes = [
        ((0, hy + t / 2), (hx + t, t / 2), 0.0),
        ((0, -hy - t / 2), (hx + t, t / 2), 0.0),
        ((hx + t / 2, 0), (t / 2, hy + t), 0.0),
        ((-hx - t / 2, 0), (t / 2, hy + t), 0.0),
    ]
    for o in world.obstacles:
        if isinstance(o, BoxObstacle):
            boxes.append((o.position, (o.size_m[0] / 2, o.size_m[1] / 2), math.radians(o.yaw_deg)))
        else:
            col = p.createCollisionShape(p.GEOM_CYLINDER, radius=o.radius_m, height=o.height_m, physicsClientId=cid)
            p.createMultiBody(0, col, -1, [*o.position, o.height_m / 2], physicsClientId=cid)
    for (x, y), (ex, ey), yaw in boxes:
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[ex, ey, h / 2], physicsClientId=cid)
        orn = p.getQuaternionFromEuler([0, 0, yaw])
        p.createMultiBody(0, col, -1, [x, y, h / 2], orn, physicsClientId=cid)


def measure(n_robots: int, sim_seconds: float, rounds: int) -> dict:
    world = world_with(n_robots)
    starts = sample_starts(world, np.random.default_rng(0))
    cmds = commands(n_robots, int(sim_seconds * world.control_rate_hz))
    raw, ours = [], []
    for _ in range(rounds):
        raw.append(run_raw(world, starts, cmds))
        ours.append(run_ours(world, starts, cmds))
    raw_sps, ours_sps = statistics.median(raw), statistics.median(ours)
    return {
        "robots": n_robots,
        "raw_steps_per_s": raw_sps,
        "ours_steps_per_s": ours_sps,
        "overhead_pct": 100.0 * (raw_sps / ours_sps - 1.0),
        "rtf": ours_sps / world.physics_rate_hz,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sim-seconds", type=float, default=10.0, help="simulated seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/ours rounds (default 3)")
    args = parser.parse_args()
    rows = [measure(n, args.sim_seconds, args.rounds) for n in (4, 16)]
    print(f"{'robots':>6} {'raw steps/s':>12} {'sern steps/s':>13} {'overhead':>9} {'real-time factor':>17}")
    for r in rows:
        print(
            f"{r['robots']:>6} {r['raw_steps_per_s']:>12.0f} {r['ours_steps_per_s']:>13.0f} "
            f"{r['overhead_pct']:>8.1f}% {r['rtf']:>16.2f}x"
        )
    print("(physics at 240 Hz, control at 20 Hz; real-time factor = simulated / wall-clock seconds)")
    result = {
        "overhead_pct": round(max(r["overhead_pct"] for r in rows), 2),
        "rtf_4": round(rows[0]["rtf"], 2),
        "rtf_16": round(rows[1]["rtf"], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
