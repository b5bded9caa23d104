"""``sern train WORLD``: train a MAPPO or IPPO policy on the vectorised engine, or a steering
choice by rollout policy iteration (``--algo rollouts``, ``policies.rollout_iteration``)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path

from sern import world_set
from sern.errors import JobFailed, UsageError
from sern.world_set import parse_value
from worlds import make_task


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a multi-robot policy (MAPPO/IPPO) on the vectorised engine",
        description=(
            "Train a shared-parameter multi-robot policy with MAPPO (centralised critic) or IPPO on the "
            "vectorised kinematic engine. Writes OUT.pt + OUT.json (state_dict and sidecar) and TensorBoard logs."
        ),
        epilog="Example:  sern train navigation --steps 8000000 --out runs/train/navigation",
    )
    p.add_argument("world", metavar="WORLD", help="world file or shipped world name")
    p.add_argument(
        "--algo",
        choices=["mappo", "ippo", "rollouts"],
        default="mappo",
        help="rollouts: learn a steering choice from counterfactual rollouts (policies/rollout_iteration.py)",
    )
    p.add_argument("--steps", type=int, default=None, help="robot-steps of experience (default 2e6; PPO)")
    p.add_argument("--worlds", type=int, default=None, help="worlds simulated side by side (default 64; PPO)")
    p.add_argument(
        "--backend",
        choices=["kinematic", "unity"],
        default="kinematic",
        help="unity: train on one world across ML-Agents' protocol (a Unity build, the Editor, or sern "
        "serve-mlagents; the world's unity block says where; needs --worlds 1; PPO)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="checkpoint path without suffix (default runs/train/WORLD)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any TrainConfig field, e.g. --set ent_coef=0.01 (with --algo rollouts: RolloutIterationConfig's)",
    )
    world_set.add_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    world = world_set.load(args.world, args.world_set)
    if args.algo == "rollouts":
        return _run_rollouts(args, world)
    from policies.mappo import TrainConfig, train

    overrides = {}
    names = {f.name: f.type for f in fields(TrainConfig)}
    for item in args.set:
        key, _, value = item.partition("=")
        if key.startswith("teacher."):  # one setting of the scripted teacher
            overrides.setdefault("teacher", {})[key.removeprefix("teacher.")] = parse_value(value)
            continue
        if key not in names:
            raise UsageError(f"--set {key}: not a training setting; choose from {', '.join(sorted(names))}")
        overrides[key] = parse_value(value)
    try:
        config = TrainConfig(
            algo=args.algo,
            total_agent_steps=2_000_000 if args.steps is None else args.steps,
            num_worlds=(1 if args.backend == "unity" else 64) if args.worlds is None else args.worlds,
            seed=args.seed,
            backend=args.backend,
            **overrides,
        )
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    if config.teacher:  # a typo in the teacher's tuning should not wait for the data collection
        from policies.base import PolicyContext, PolicyError
        from policies.scripted import make_scripted

        try:
            make_scripted(PolicyContext.from_task(make_task(world)), config.teacher)
        except (PolicyError, TypeError) as err:
            raise UsageError(f"--set teacher.*: {err}") from None
    if config.targets:  # target choices need a task whose observation lists landmarks
        from policies.base import PolicyContext
        from policies.targets import target_controller, target_settings

        try:
            target_controller(PolicyContext.from_task(make_task(world)), target_settings(config))
        except ValueError as err:
            raise UsageError(f"--set targets=true: {err}") from None
    if config.critic_state and not make_task(world).critic_state_size:
        raise UsageError(
            f"--set critic_state=true: the {world.task.name} task has no critic state (Task.critic_state); "
            "coverage has one"
        )
    if config.steer_search:  # steering needs a baseline that searches
        from policies.base import PolicyContext
        from policies.scripted import make_scripted
        from policies.steering import check_steerable

        try:
            check_steerable(make_scripted(PolicyContext.from_task(make_task(world))))
        except ValueError as err:
            raise UsageError(f"--set steer_search=true: {err}") from None
    out = args.out or Path("runs/train") / world.name
    from sim_bridge.mlagents.world_env import UnityRunError, UnityWorldError

    try:
        result = train(
            world, config, out=out, progress=not args.quiet, log_dir=out.parent / "tensorboard", command=_command()
        )
    except UnityWorldError as err:
        raise UsageError(str(err)) from None
    except UnityRunError as err:
        raise JobFailed(str(err)) from None
    last = result.history[-1] if result.history else {}
    print(f"wrote {result.checkpoint} (+ .json); {result.agent_steps} robot-steps in {result.seconds:.0f} s")
    print(
        json.dumps({k: v for k, v in last.items() if k in ("agent_steps", "return", "success_rate", "collision_rate")})
    )
    return 0


def _command() -> str:
    """The command line, for the sidecar (empty when not run as ``sern``)."""
    return "sern " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("sern") else ""


def _run_rollouts(args: argparse.Namespace, world) -> int:
    """``--algo rollouts``: rollout policy iteration of a steering choice."""
    from policies.rollout_iteration import RolloutIterationConfig, check_outcome, train

    if args.steps is not None or args.worlds is not None:
        raise UsageError("--steps and --worlds are PPO settings; --algo rollouts plays --set episodes=N per iteration")
    names = {f.name for f in fields(RolloutIterationConfig)}
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in names:
            raise UsageError(f"--set {key}: not a rollout iteration setting; choose from {', '.join(sorted(names))}")
        overrides[key] = parse_value(value)
    try:
        config = RolloutIterationConfig(seed=args.seed, **overrides)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    from policies.base import PolicyContext
    from policies.scripted import make_scripted
    from policies.steering import check_steerable

    try:
        check_steerable(make_scripted(PolicyContext.from_task(make_task(world))))
    except ValueError as err:
        raise UsageError(f"--algo rollouts: {err}") from None
    try:
        check_outcome(world, config.outcome)
    except ValueError as err:
        raise UsageError(f"--set outcome: {err}") from None
    out = args.out or Path("runs/train") / world.name
    result = train(world, config, out=out, command=_command(), log=(lambda *_: None) if args.quiet else print)
    last = result.history[-1] if result.history else {}
    print(f"wrote {result.checkpoint} (+ .json); {len(result.history)} rounds in {result.seconds:.0f} s")
    print(json.dumps({k: v for k, v in last.items() if k in ("episodes", "moments", config.outcome, "fit_agreement")}))
    return 0
