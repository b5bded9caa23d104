"""What limits coverage: the scripted baseline under wider views, and with an oracle's search.

Coverage robots see their 4 nearest landmarks within 5 m (worlds/coverage.yaml). This runs the
greedy baseline (policies/scripted_coverage.py) on the same seeded episodes with:
  shipped         the world as shipped;
  6 slots         every landmark within 5 m in view (landmark_obs 6);
  20 m            the 4 nearest landmarks at any range (landmark_radius_m 20);
  full view       every landmark at any range (both);
  oracle search   the shipped view, but each robot's first search of an episode starts toward
                  the nearest uncovered landmark (knowledge no robot has): an upper bound on
                  what choosing search directions can gain;
  messages 3 m,   the shipped view, and the robots talk (task.params.relay_radius_m 3 or 5):
  messages 5 m    each reports a free landmark it sees and is not taking, and a robot with
                  nothing to do drives toward the nearest report it hears.
The gap between "shipped" and the others is what a policy with the same local view has to
find by searching; see the README (Learning) for what learned policies reached.

    .venv/bin/python benchmarks/coverage_view.py [--episodes 100] [--seed 2000]

Ends with one JSON line {variant: success rate}.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from policies.base import PolicyContext
from policies.rollout import run_episodes
from policies.scripted_coverage import CoveragePolicy
from sim_bridge.env import MultiRobotEnv
from worlds import load_world, load_world_data


def coverage_world(
    landmark_obs: int | None = None, landmark_radius_m: float | None = None, relay_radius_m: float = 0.0
):
    data = load_world("coverage").to_data()
    params = data["task"]["params"]
    params["relay_radius_m"] = relay_radius_m
    if landmark_obs is not None:
        params["landmark_obs"] = landmark_obs
    if landmark_radius_m is not None:
        params["landmark_radius_m"] = landmark_radius_m
    return load_world_data(
        data,
        f"coverage.yaml with landmark_obs {params['landmark_obs']}, landmark_radius_m {params['landmark_radius_m']}, "
        f"relay_radius_m {relay_radius_m:g}",
    )


class OracleSearchCoverage(CoveragePolicy):
    """The greedy baseline whose first search in an episode, per robot, starts toward the
    nearest landmark nobody covers, read from the simulator (an oracle, not a policy)."""

    name = "oracle-search"

    def __init__(self, context: PolicyContext, env: MultiRobotEnv):
        super().__init__(context)
        self.env = env
        self._told: set[str] = set()

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._told = set()

    def _explore_direction(self, agent, nb, lm, walls):
        direction = super()._explore_direction(agent, nb, lm, walls)
        task = self.env.task
        free = task.landmarks[0][~task.covered[0]]
        if agent in self._told or not len(free):
            return direction
        self._told.add(agent)
        x, y, yaw = self.env.snapshot.poses[0, self.env.possible_agents.index(agent)]
        rel = free - np.array([x, y])
        goal = rel[np.argmin(np.linalg.norm(rel, axis=1))]
        c, s = np.cos(yaw), np.sin(yaw)
        body = np.array([c * goal[0] + s * goal[1], -s * goal[0] + c * goal[1]])
        self._explore[agent] = body / np.linalg.norm(body)
        return self._explore[agent]


def success(world, make_policy, seeds) -> tuple[float, float]:
    env = MultiRobotEnv(world)
    try:
        policy = make_policy(PolicyContext.from_task(env.task), env)
        results = run_episodes(env, policy, seeds)
    finally:
        env.close()
    return (
        float(np.mean([r.metrics["success_rate"] for r in results])),
        float(np.mean([r.metrics["collision_rate"] for r in results])),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2000)
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.episodes)

    def baseline(context, env):
        return CoveragePolicy(context)

    variants = {
        "shipped": (coverage_world(), baseline),
        "6 slots": (coverage_world(landmark_obs=6), baseline),
        "20 m": (coverage_world(landmark_radius_m=20.0), baseline),
        "full view": (coverage_world(landmark_obs=6, landmark_radius_m=20.0), baseline),
        "oracle search": (coverage_world(), OracleSearchCoverage),
        "messages 3 m": (coverage_world(relay_radius_m=3.0), baseline),
        "messages 5 m": (coverage_world(relay_radius_m=5.0), baseline),
    }
    rows = {name: success(world, make, seeds) for name, (world, make) in variants.items()}
    print(f"greedy coverage baseline, {args.episodes} episodes, seeds {seeds.start}..{seeds.stop - 1}")
    print(f"{'variant':<14} {'success':>8} {'collision rate':>15}")
    for name, (rate, collisions) in rows.items():
        print(f"{name:<14} {rate:>8.0%} {collisions:>15.1%}")
    print(json.dumps({name: rate for name, (rate, _) in rows.items()}))


if __name__ == "__main__":
    main()
