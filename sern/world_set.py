"""``--world-set KEY=VALUE``: change a world file for one command (``sern train``, ``sern
eval``), checked like the file itself."""

from __future__ import annotations

import argparse

from sern.errors import UsageError
from worlds import WorldFileError, WorldSpec, load_world, with_changes


def add_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--world-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the world file for this run, e.g. --world-set task.params.reward.collision_penalty=20",
    )


def load(world: str, items: list[str]) -> WorldSpec:
    """The world ``world`` with the ``--world-set`` changes ``items``; UsageError naming what
    is wrong."""
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--world-set {item}: expected KEY=VALUE, e.g. task.params.reward.collision_penalty=20")
        changes[key] = parse_value(value)
    try:
        return with_changes(load_world(world), changes)
    except WorldFileError as err:
        raise UsageError(str(err)) from None


def parse_value(text: str):
    """A command-line value as int, float, bool or else the string itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
