"""``sern eval CHECKPOINT WORLD``: a policy's episode metrics on a world (any backend)."""

from __future__ import annotations

import argparse
import json

from sern import world_set
from sern.errors import JobFailed, UsageError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint (or a named policy) on a world",
        description="Run a checkpoint (or 'scripted', 'idle', 'learned') for N seeded episodes and print its metrics; "
        "the last line is one JSON object (success_rate, collision_rate and the task's own metrics).",
        epilog="Example:  sern eval policies/checkpoints/navigation.pt navigation --backend pybullet --episodes 20",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint .pt (or a policy name)")
    p.add_argument("world", metavar="WORLD", help="world file or shipped world name")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=1000, help="first seed (held out from training's seeds)")
    p.add_argument("--backend", default=None, help="override the world's backend (kinematic, pybullet)")
    world_set.add_argument(p)
    p.add_argument(
        "--act",
        choices=["mode", "sample"],
        default=None,
        help="a checkpoint's action: its most likely one (mode) or one drawn from it, seeded per episode "
        "(sample); default: the checkpoint's own choice (its sidecar's act, else mode)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="also store the metrics (and this command) in the checkpoint's sidecar, under eval.<backend>; "
        "with --act, that becomes the checkpoint's own choice",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    world = world_set.load(args.world, args.world_set)
    if args.episodes < 1:
        raise UsageError("--episodes must be at least 1")
    from policies.evaluation import evaluate
    from policies.registry import PolicyError
    from sim_bridge.mlagents.world_env import UnityRunError

    try:
        summary = evaluate(args.checkpoint, world, args.episodes, args.seed, args.backend, act=args.act)
    except (PolicyError, ValueError) as err:
        raise UsageError(str(err)) from None
    except UnityRunError as err:
        raise JobFailed(str(err)) from None
    print(
        f"{summary['policy']} on {world.name} ({summary['backend']}), {summary['episodes']} episodes: "
        f"success {summary['success_rate']:.1%}, collisions {summary['collision_rate']:.1%}"
    )
    metrics = {k: v for k, v in summary.items() if not isinstance(v, list | dict)}
    if args.record:
        _record(args, metrics)
    print(json.dumps(metrics))
    return 0


def _record(args: argparse.Namespace, metrics: dict) -> None:
    """Add ``metrics`` to the checkpoint's sidecar (``eval.<backend>``), with the command."""
    import shlex
    import sys
    from pathlib import Path

    from policies.checkpoint import sidecar_path

    side = sidecar_path(Path(args.checkpoint))
    if not side.is_file():
        raise UsageError(f"--record needs a checkpoint with a sidecar; {side} does not exist")
    meta = json.loads(side.read_text())
    argv = ["sern", *sys.argv[1:]] if sys.argv[0].endswith("sern") else ["sern", "eval", args.checkpoint, args.world]
    entry = {
        "command": " ".join(shlex.quote(a) for a in argv),
        "seeds": [args.seed, args.seed + args.episodes - 1],
        "metrics": metrics,
    }
    meta.setdefault("eval", {})[metrics["backend"]] = entry
    if args.act:
        meta["act"] = args.act
    side.write_text(json.dumps(meta, indent=2, default=str) + "\n")
