"""Why the coverage baseline loses an episode: who ever saw the landmark left uncovered.

Runs the greedy baseline (policies/scripted_coverage.py) on seeded episodes and, for every
landmark still uncovered at the end of a lost episode, replays what the robots saw: was it ever
among the landmarks in a robot's view (the 4 nearest within 5 m, as the task shows them), by a
robot that was searching at the time or only by robots busy with a landmark of their own, and
was a searching robot within ``--near`` metres of such a robot while it saw it (so that a
message could have reached it)?

    .venv/bin/python benchmarks/coverage_failures.py [--episodes 100] [--seed 0] [--relay 5]

``--relay R`` runs the world with messages (task.params.relay_radius_m = R). Ends with one JSON
line of the counts.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from policies.base import PolicyContext
from policies.rollout import run_episode
from policies.scripted_coverage import CoveragePolicy
from sim_bridge.env import MultiRobotEnv
from worlds import load_world, load_world_data
from worlds.tasks.coverage import landmarks_in_view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--relay", type=float, default=0.0, help="message range (m); 0: no messages")
    parser.add_argument("--near", type=float, default=5.0, help="searcher-to-seer distance that counts (m)")
    args = parser.parse_args()
    data = load_world("coverage").to_data()
    data["task"]["params"]["relay_radius_m"] = args.relay
    env = MultiRobotEnv(load_world_data(data, f"coverage.yaml with relay_radius_m {args.relay:g}"))
    params = env.task.params
    policy = CoveragePolicy(PolicyContext.from_task(env.task))
    trace: list[tuple[np.ndarray, np.ndarray]] = []  # per step: positions (N, 2), searching (N,)
    act = policy.act

    def traced(observations):
        commands = act(observations)
        searching = np.array([policy.searching(a) for a in env.possible_agents])
        trace.append((env.snapshot.poses[0, :, :2].copy(), searching))
        return commands

    policy.act = traced
    counts = {"episodes": args.episodes, "lost": 0, "missed_landmarks": 0, "never_seen": 0}
    counts |= {"seen_only_by_busy_robots": 0, "seen_while_searching": 0, "busy_seer_near_a_searcher": 0}
    try:
        for seed in range(args.seed, args.seed + args.episodes):
            trace.clear()
            if run_episode(env, policy, seed).metrics["success_rate"] == 1.0:
                continue
            counts["lost"] += 1
            landmarks = env.task.landmarks[0]
            pos = np.array([p for p, _ in trace])  # (T, N, 2)
            searching = np.array([s for _, s in trace])  # (T, N)
            d = np.linalg.norm(pos[:, :, None, :] - landmarks[None, None], axis=-1)  # (T, N, L)
            in_view = landmarks_in_view(d, params)
            apart = np.linalg.norm(pos[:, :, None, :] - pos[:, None, :, :], axis=-1)  # (T, N, N)
            for lm in np.flatnonzero(~env.task.covered[0]):
                counts["missed_landmarks"] += 1
                seen = in_view[:, :, lm]
                if not seen.any():
                    counts["never_seen"] += 1
                    continue
                if (seen & searching).any():
                    counts["seen_while_searching"] += 1
                    continue
                counts["seen_only_by_busy_robots"] += 1
                near = (apart <= args.near) & seen[:, :, None] & searching[:, None, :]
                counts["busy_seer_near_a_searcher"] += int(near.any())
    finally:
        env.close()
    relay = f", messages {args.relay:g} m" if args.relay else ""
    print(f"greedy coverage baseline{relay}, seeds {args.seed}..{args.seed + args.episodes - 1}:")
    print(f"  lost {counts['lost']} of {args.episodes} episodes, {counts['missed_landmarks']} landmarks left uncovered")
    print(f"  never in anyone's view:                 {counts['never_seen']}")
    print(f"  in view of a searching robot:           {counts['seen_while_searching']}")
    print(f"  in view only of robots busy elsewhere:  {counts['seen_only_by_busy_robots']}")
    print(f"    ... with a searcher within {args.near:g} m then: {counts['busy_seer_near_a_searcher']}")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
