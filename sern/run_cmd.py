"""``sern run WORLD``: the main job. Run a policy on a world headless for N episodes,
show progress, print a results table, write ``metrics.json`` and ``trajectories.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from worlds import WorldFileError, load_world
from worlds.layout import PlacementError
from worlds.loader import world_file_error
from worlds.ranges import MAX_SEED

MAX_EPISODES = 100_000  # a run keeps every episode's trajectory for its plot and metrics


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run a policy on a world headless and report its metrics",
        description=(
            "Run a policy on a world for N seeded episodes, headless. Prints a progress bar and a "
            "results table, and writes DIR/metrics.json and DIR/trajectories.png (top-down paths)."
        ),
        epilog="Example:  sern run worlds/navigation.yaml --episodes 5 --seed 0 --out runs/nav",
    )
    p.add_argument("world", metavar="WORLD", help="world file (worlds/*.yaml) or a shipped world's name")
    p.add_argument(
        "--policy",
        default=None,
        metavar="NAME|CHECKPOINT",
        help="'learned' (the shipped checkpoint: the default where one exists), 'scripted' (the baseline), "
        "'idle', or a checkpoint file",
    )
    p.add_argument(
        "--episodes",
        type=_episode_count,
        default=3,
        metavar="N",
        help=f"episodes to run (default 3, at most {MAX_EPISODES})",
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=None,
        metavar="S",
        help=f"seed of the first episode, 0-{MAX_SEED}; episode k uses S+k (default: the world's seed)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("runs/latest"), metavar="DIR", help="output folder (default runs/latest)"
    )
    p.add_argument("--backend", default=None, metavar="NAME", help="override the world's backend (e.g. pybullet)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _whole_number(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    if value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
    return value


def _episode_count(text: str) -> int:
    return _whole_number(text, 1, MAX_EPISODES)


def _seed(text: str) -> int:
    return _whole_number(text, 0, MAX_SEED)


def run(args: argparse.Namespace) -> int:
    from sern.errors import UsageError

    try:
        world = load_world(args.world)
    except WorldFileError as err:
        raise UsageError(str(err)) from None
    first = world.seed if args.seed is None else args.seed
    if first + args.episodes - 1 > MAX_SEED:
        raise UsageError(f"--seed {first} with --episodes {args.episodes} runs past the largest seed, {MAX_SEED}")
    # Heavy imports only once the arguments are known to be good.
    from policies.base import PolicyContext
    from policies.registry import PolicyError, make_policy
    from policies.rollout import EpisodeResult, run_episode, summarise
    from sern.errors import JobFailed
    from sim_bridge.env import make_env
    from sim_bridge.mlagents.world_env import UnityRunError, UnityWorldError

    try:
        env = make_env(world, backend=args.backend)
    except ValueError as err:
        raise UsageError(str(err)) from None
    except UnityRunError as err:
        raise JobFailed(str(err)) from None
    try:
        context = PolicyContext.from_task(env.task)
        if args.policy is None:
            from policies.registry import default_policy

            policy, passed_over = default_policy(context)
            args.policy = "scripted" if passed_over or policy.name == "scripted" else "learned"
            if passed_over:
                print(f"sern run: running the scripted baseline: {passed_over}", file=sys.stderr)
        else:
            try:
                policy = make_policy(args.policy, context)
            except PolicyError as err:
                raise UsageError(str(err)) from None
        out: Path = args.out
        try:  # before the episodes, not after them
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"--out {out}: cannot create the output folder: {err.strerror or err}") from None
        seeds = [first + k for k in range(args.episodes)]
        results: list[EpisodeResult] = []
        started = time.monotonic()
        interrupted = False
        bar = _progress(args, env)
        try:
            for seed in seeds:
                bar.set_description(f"episode seed {seed}")
                results.append(run_episode(env, policy, seed, on_step=lambda: _tick(bar, env)))
                bar.set_postfix_str(_postfix(results))
        except KeyboardInterrupt:
            interrupted = True  # keep and report what finished
        except PlacementError as err:  # a region that held the world's own seed's draw, not this one's
            raise UsageError(f"episode seed {seed}: {world_file_error(world, err.key, err.reason)}") from None
        except UnityRunError as err:
            raise JobFailed(f"episode seed {seed}: {err}") from None
        except UnityWorldError as err:  # what the Unity side presents, found at its first reset
            raise UsageError(str(err)) from None
        finally:
            bar.close()
        wall_s = time.monotonic() - started
        summary = summarise(results)
        report = _report(world, args, env, summary, results, wall_s, interrupted)
        (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        if results:
            from sern.plots import plot_trajectories

            plot_trajectories(world, results, out / "trajectories.png", title=f"{world.name}: policy {args.policy}")
        print(_table(report))
        print(f"wrote {out / 'metrics.json'}" + (f" and {out / 'trajectories.png'}" if results else ""))
        if interrupted:
            print(f"interrupted after {len(results)} of {len(seeds)} episodes", file=sys.stderr)
            return 130
        return 0
    finally:
        env.close()


class _NoBar:
    def update(self, n=1): ...
    def set_description(self, text): ...
    def set_postfix_str(self, text): ...
    def close(self): ...


def _progress(args, env):
    if args.quiet:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(
        total=args.episodes * env.max_steps,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def _tick(bar, env) -> None:
    bar.update(1)
    if not env.agents:  # the episode ended early: count the steps it did not need
        bar.update(env.max_steps - env.num_steps)


def _postfix(results) -> str:
    success = np.mean([r.metrics["success_rate"] for r in results])
    collisions = sum(r.metrics.get("collisions", 0) for r in results)
    return f"success {success:.0%}, collisions {collisions}"


def _robot_means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-robot rows of several episodes averaged: success, collisions (summed), and the
    task's own numeric fields where every row has them (SPL, time to goal, ...)."""
    out: dict[str, Any] = {
        "success_rate": float(np.mean([row["success"] for row in rows])),
        "collisions": int(sum(row.get("collisions", 0) for row in rows)),
    }
    for key in rows[0]:
        if key in ("robot", "success", "collisions"):
            continue
        values = [row.get(key) for row in rows]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers:
            out[key] = float(np.mean(numbers))
        elif all(v is None for v in values):
            out[key] = None
    return out


def _report(world, args, env, summary, results, wall_s, interrupted) -> dict[str, Any]:
    sim_s = sum(r.metrics.get("episode_s", 0.0) for r in results)
    per_robot = []
    for i, name in enumerate(env.possible_agents):
        rows = [r.metrics["robots"][i] for r in results if i < len(r.metrics.get("robots", []))]
        if not rows:
            continue
        per_robot.append({"robot": name, **_robot_means(rows)})
    return {
        "world": world.name,
        "world_file": world.source,
        "task": world.task.name,
        "backend": args.backend or world.backend,
        "policy": args.policy,
        "seeds": [r.seed for r in results],
        "interrupted": interrupted,
        **{k: v for k, v in summary.items() if k != "per_episode"},
        "robots": per_robot,
        "per_episode": summary.get("per_episode", []),
        "sim_time_s": round(sim_s, 3),
        "wall_time_s": round(wall_s, 3),
        "real_time_factor": round(sim_s / wall_s, 2) if wall_s > 0 else None,
    }


def _table(report: dict[str, Any]) -> str:
    def fmt(value, spec=".2f"):
        return "-" if value is None else format(value, spec)

    head = f"{'seed':>6} {'success':>8} {'collisions':>10} {'SPL':>6} {'path m':>8} {'to goal s':>9} {'episode s':>9}"
    lines = [
        f"{report['world']} ({report['backend']}), policy {report['policy']}: {report['episodes']} episode(s)",
        head,
        "-" * len(head),
    ]
    for ep in report["per_episode"]:
        lines.append(
            f"{ep['seed']:>6} {ep['success_rate']:>8.0%} {ep.get('collisions', 0):>10d} {fmt(ep.get('spl')):>6} "
            f"{fmt(ep.get('path_length_m')):>8} {fmt(ep.get('time_to_goal_s')):>9} {fmt(ep.get('episode_s')):>9}"
        )
    if report["episodes"]:
        lines.append("-" * len(head))
        lines.append(
            f"{'all':>6} {report['success_rate']:>8.0%} {report['collisions']:>10d} {fmt(report.get('spl')):>6} "
            f"{fmt(report.get('path_length_m')):>8} {fmt(report.get('time_to_goal_s')):>9} "
            f"{fmt(report.get('episode_s')):>9}"
        )
        lines.append(
            f"success rate {report['success_rate']:.0%}, collision rate {report['collision_rate']:.0%}, "
            f"SPL {fmt(report.get('spl'))}; real-time factor {fmt(report.get('real_time_factor'), '.1f')}x"
        )
    return "\n".join(lines)
