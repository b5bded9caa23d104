"""Shipped learned policies against their scripted baselines, on held-out seeds.

For every task with a shipped checkpoint (policies/checkpoints/<task>.pt) both policies run
the same seeded episodes (seeds 1000.., never used in training, which draws from its own
seed streams) on the world's backend, each checkpoint acting as its sidecar says (``act``:
its most likely action unless ``sample``; see ``policies.learned``). Each task ranks policies by
its ``headline_metric`` (worlds/tasks/*.py): success rate, or a time for tasks the baseline
always solves; a time counts an episode that never got there as the time limit, so a
policy cannot win on time by failing. The learned policy beats the baseline when its
success rate is no lower and its headline metric is better.

    .venv/bin/python benchmarks/learned_vs_scripted.py [--episodes 20] [--tasks flocking ...]

Prints a table and ends with one JSON line {task: {"metric", "learned", "scripted",
"learned_success", "scripted_success", "learned_collision_rate", "scripted_collision_rate",
"beats"}}.
"""

from __future__ import annotations

import argparse
import json

from policies.evaluation import compare_with_baseline as compare
from policies.registry import SCRIPTED, shipped_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    swarm = [t for t in SCRIPTED if t != "navigation" and shipped_checkpoint(t)]
    parser.add_argument("--tasks", nargs="*", default=swarm, help="tasks (default: the swarm tasks)")
    args = parser.parse_args()
    rows = {t: compare(t, args.episodes, args.seed) for t in args.tasks}
    print(f"{args.episodes} episodes per policy, seeds {args.seed}..{args.seed + args.episodes - 1}")
    head = f"{'task':<11} {'metric':<24} {'learned':>9} {'scripted':>9}  {'success L/S':>11}  {'collisions L/S':>14}  beats"
    print(head)
    print("-" * len(head))
    for task, r in rows.items():
        arrow = "↑" if r["better"] == "max" else "↓"
        print(
            f"{task:<11} {r['metric'] + ' ' + arrow:<24} {r['learned']:>9.3f} {r['scripted']:>9.3f}  "
            f"{r['learned_success']:>5.0%}/{r['scripted_success']:<5.0%}  "
            f"{r['learned_collision_rate']:>6.1%}/{r['scripted_collision_rate']:<7.1%}  {'yes' if r['beats'] else 'NO'}"
        )
    print(json.dumps({t: {k: v for k, v in r.items() if k != "better"} for t, r in rows.items()}))


if __name__ == "__main__":
    main()
