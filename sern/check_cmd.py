"""``sern check WORLD...``: validate world files without running them."""

from __future__ import annotations

import argparse
import sys

from worlds import WorldFileError, load_world


def add_parser(sub) -> None:
    p = sub.add_parser(
        "check",
        help="validate world files",
        description="Validate world files: types, ranges, unknown keys, placements. Exit 2 on any problem.",
    )
    p.add_argument("worlds", nargs="+", metavar="WORLD", help="world file path, or the name of a shipped world")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    bad = 0
    for name in args.worlds:
        try:
            world = load_world(name)
        except WorldFileError as err:
            print(f"error: {err}", file=sys.stderr)
            bad += 1
            continue
        print(
            f"{name}: ok ({world.num_robots} robots, task {world.task.name}, backend {world.backend}, "
            f"{world.physics_rate_hz} Hz physics / {world.control_rate_hz} Hz control)"
        )
    return 2 if bad else 0
