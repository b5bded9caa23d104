"""Shipped learned policies against their scripted baselines, on held-out seeds.

For every swarm task with a shipped checkpoint (policies/checkpoints/<task>.pt) both policies
play the same seeded episodes on the kinematic engine (seeds 1000..1099 by default: never
drawn in training, which takes its episodes from its own random streams), each checkpoint
acting as its sidecar says (``act``; see ``policies.learned``). Each task ranks policies by
its ``headline_metric`` (worlds/tasks/*.py): success rate, or a time for tasks the baseline
always solves; a time counts an episode that never got there as the time limit, so a policy
cannot win on time by failing.

The rule (``policies.evaluation.compare_with_baseline``): per seed, the difference in the
headline metric, oriented so that positive means the learned policy did better; the learned
policy *beats* the baseline when the 95 % paired bootstrap confidence interval of the mean
difference (10 000 resamples, seeded) lies above zero and its success rate is no lower. A
task that does not beat its baseline is reported as *not worse* when the interval's high end
is at or above zero (a tie) with success no lower, else as *worse*.

    .venv/bin/python benchmarks/learned_vs_scripted.py [--episodes 100] [--seed 1000] \
        [--tasks flocking ...] [--workers 2]

Prints a table and ends with one JSON line {task: {"beats", "not_worse", "diff_ci95",
"diff_mean", "episodes", "seeds", "metric", "learned", "scripted", "learned_success",
"scripted_success", "learned_collision_rate", "scripted_collision_rate", "seconds"}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from policies.evaluation import HELD_OUT_SEED, compare_with_baseline
from policies.registry import shipped_checkpoint
from policies.scripted import SCRIPTED


def verdict(row: dict) -> str:
    if row["beats"]:
        return "beats"
    if row["not_worse"]:
        return "not worse (tie)"
    return "WORSE (success lower)" if row["learned_success"] < row["scripted_success"] else "WORSE"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="held-out episodes per policy (default 100)")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="first seed (default 1000)")
    swarm = [t for t in SCRIPTED if t != "navigation" and shipped_checkpoint(t)]
    parser.add_argument("--tasks", nargs="*", default=swarm, help="tasks (default: the swarm tasks)")
    parser.add_argument("--workers", type=int, default=1, help="processes per task (default 1)")
    args = parser.parse_args()
    if args.episodes < 2:
        parser.error("--episodes must be at least 2 (a confidence interval needs pairs)")
    unknown = [t for t in args.tasks if not shipped_checkpoint(t) or t not in SCRIPTED]
    if unknown:
        parser.error(
            f"no shipped checkpoint and baseline for {', '.join(unknown)}; tasks with both: {', '.join(swarm)}"
        )
    rows = {}
    for task in args.tasks:
        started = time.monotonic()
        rows[task] = compare_with_baseline(task, args.episodes, args.seed, workers=args.workers)
        rows[task]["seconds"] = round(time.monotonic() - started, 1)
        print(f"{task}: {verdict(rows[task])} ({rows[task]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    print(
        f"{args.episodes} episodes per policy, seeds {args.seed}..{args.seed + args.episodes - 1}, kinematic engine; "
        "difference: positive = learned better, 95 % paired bootstrap CI"
    )
    head = (
        f"{'task':<10} {'metric':<24} {'learned':>8} {'scripted':>8}  {'diff [95 % CI]':<26} "
        f"{'success L/S':>11}  {'collisions L/S':>14}  verdict"
    )
    print(head)
    print("-" * len(head))
    for task, r in rows.items():
        arrow = "↑" if r["better"] == "max" else "↓"
        low, high = r["diff_ci95"]
        print(
            f"{task:<10} {r['metric'] + ' ' + arrow:<24} {r['learned']:>8.3f} {r['scripted']:>8.3f}  "
            f"{r['diff_mean']:+.3f} [{low:+.3f}, {high:+.3f}]{'':<4} "
            f"{r['learned_success']:>5.0%}/{r['scripted_success']:<5.0%}  "
            f"{r['learned_collision_rate']:>6.1%}/{r['scripted_collision_rate']:<7.1%}  {verdict(r)}"
        )
    print(json.dumps({t: {k: v for k, v in r.items() if k != "better"} for t, r in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
