"""sern's vectorised engine against VMAS (the vectorised torch multi-agent simulator), side
by side in one run, on the CPU: agent-steps per second at batch 1, 64 and 1024.

navigation: sern's worlds/navigation.yaml (4 Huskies, 7 obstacles, walls) with its lidar
set to 12 beams, against VMAS "navigation" with 4 agents (12-ray lidar, no obstacles).
flocking: sern's worlds/flocking.yaml against VMAS "flocking" with the same number of
agents. Both sides compute everything a training loop needs per step (dynamics,
collisions, lidar, observations, rewards, episode bookkeeping) with zero actions, and use
the machine's threads as they choose (torch and numba default to all cores).

    .venv/bin/python benchmarks/engine_vs_vmas.py

Ends with one JSON line: {"ratio_b1", "ratio_b64", "ratio_b1024", "flocking_ratio_b1024"}.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sim_bridge.batched_env import BatchedEnv
from worlds import load_world, load_world_data

BATCHES = (1, 64, 1024)


def sern_navigation_world():
    data = load_world("navigation").to_data()
    data["sensors"]["lidar"]["beams"] = 12
    data["task"]["params"]["lidar_obs_beams"] = 12
    data["task"]["params"]["max_episode_s"] = 600.0  # no resets while timing, as in VMAS
    return load_world_data(data, "navigation.yaml with a 12-beam lidar")


def sern_flocking_world():
    data = load_world("flocking").to_data()
    data["task"]["params"]["max_episode_s"] = 600.0
    return load_world_data(data, "flocking.yaml")


def time_sern(world, batch: int, seconds: float) -> float:
    env = BatchedEnv(world, batch, seed=0)
    env.reset()
    actions = np.zeros((batch, env.num_agents, 2), dtype=np.float32)
    for _ in range(3):
        env.step(actions)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions)
        steps += 1
    return steps * batch * env.num_agents / (time.perf_counter() - start)


def time_vmas(scenario: str, batch: int, agents: int, seconds: float) -> float:
    import torch
    import vmas

    env = vmas.make_env(scenario, num_envs=batch, device="cpu", continuous_actions=True, n_agents=agents, seed=0)
    env.reset()
    actions = [torch.zeros(batch, 2) for _ in range(agents)]
    for _ in range(3):
        env.step(actions)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions)
        steps += 1
    return steps * batch * agents / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per measurement (default 4)")
    args = parser.parse_args()
    nav, flock = sern_navigation_world(), sern_flocking_world()
    flock_agents = flock.num_robots
    rows = []
    for name, world, scenario, agents, batches in (
        ("navigation", nav, "navigation", 4, BATCHES),
        ("flocking", flock, "flocking", flock_agents, BATCHES),
    ):
        for b in batches:
            ours = time_sern(world, b, args.seconds)
            theirs = time_vmas(scenario, b, agents, args.seconds)
            rows.append((name, b, ours, theirs))
    print(f"{'task':11} {'batch':>6} {'sern agent-steps/s':>19} {'VMAS agent-steps/s':>19} {'ratio':>7}")
    for name, b, ours, theirs in rows:
        print(f"{name:11} {b:>6} {ours:>19,.0f} {theirs:>19,.0f} {ours / theirs:>6.1f}x")
    ratio = {(n, b): o / t for n, b, o, t in rows}
    print(
        json.dumps(
            {
                "ratio_b1": round(ratio[("navigation", 1)], 2),
                "ratio_b64": round(ratio[("navigation", 64)], 2),
                "ratio_b1024": round(ratio[("navigation", 1024)], 2),
                "flocking_ratio_b1024": round(ratio[("flocking", 1024)], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
