"""``sern launch [PKG] FILE [name:=value ...]``: run a ``*_launch.yaml`` file.

Where the ``ros2`` CLI exists it defers to ``ros2 launch``; otherwise (a pip-only install)
it runs the file itself: one process per node, namespaces, parameters, remaps, arguments
and substitutions, every child stopped cleanly on Ctrl-C or SIGTERM, a dying node
reported and the rest stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "launch",
        help="run a launch file (defers to 'ros2 launch' where it exists)",
        description=(
            "Run a *_launch.yaml file: FILE is a path, or a launch file of PKG (default sern), e.g. "
            "'sern launch sim_launch.yaml policy:=none'. Arguments are name:=value. "
            "record:=FILE.mcap records every topic (the shipped launch files take it)."
        ),
        epilog="Examples:  sern launch sim_launch.yaml robots:=4   sern launch sern twin_launch.yaml record:=t.mcap",
    )
    p.add_argument("target", nargs="+", metavar="[PKG] FILE [name:=value]", help="launch file and its arguments")
    p.add_argument("--record", metavar="FILE.mcap", help="same as record:=FILE.mcap")
    p.add_argument("--no-ros2", action="store_true", help="run the file with sern's own launcher even if ros2 exists")
    p.add_argument("--show-args", action="store_true", help="list the file's arguments and exit")
    p.set_defaults(handler=run)


def split_target(target: list[str]) -> tuple[str | None, str, dict[str, str]]:
    """(package, file, arguments) from the positional words."""
    from sern.errors import UsageError

    words = [w for w in target if ":=" not in w]
    args = [w for w in target if ":=" in w]
    if not words or len(words) > 2:
        raise UsageError("give a launch file (or a package and a launch file), then name:=value arguments")
    package, file = (None, words[0]) if len(words) == 1 else (words[0], words[1])
    arguments = {}
    for a in args:
        name, _, value = a.partition(":=")
        if not name:
            raise UsageError(f"malformed launch argument {a!r}; expected name:=value")
        arguments[name] = value
    return package, file, arguments


def resolve_file(package: str | None, file: str) -> Path:
    from sern.errors import UsageError
    from sim_bridge.launch import LaunchError
    from sim_bridge.launch.packages import find_package_share

    path = Path(file)
    if package is None and path.exists():
        return path
    try:
        share = find_package_share(package or "sern")
    except LaunchError as err:
        raise UsageError(str(err)) from None
    for candidate in (share / "launch" / file, share / file):
        if candidate.is_file():
            return candidate
    shipped = sorted(p.name for p in (share / "launch").glob("*_launch.yaml"))
    raise UsageError(f"no launch file {file!r} (package {package or 'sern'} has: {', '.join(shipped) or 'none'})")


def run(args: argparse.Namespace) -> int:
    from sern.errors import UsageError
    from sim_bridge.launch import LaunchDescription, LaunchError, LaunchRunner

    package, file, arguments = split_target(args.target)
    if args.record:
        arguments["record"] = str(Path(args.record).resolve())
    elif arguments.get("record"):
        arguments["record"] = str(Path(arguments["record"]).resolve())
    ros2 = shutil.which("ros2")
    if ros2 and not args.no_ros2 and not args.show_args:
        cmd = [ros2, "launch", *([package] if package else []), file, *(f"{k}:={v}" for k, v in arguments.items())]
        print(f"[sern] deferring to: {' '.join(cmd)}", flush=True)
        os.execv(ros2, cmd)
    path = resolve_file(package, file)
    try:
        description = LaunchDescription(path)
        if args.show_args:
            print(f"Arguments of {path} (pass as name:=value):")
            for a in description.declared_arguments():
                default = f" (default: {a['default']!r})" if "default" in a else " (required)"
                print(f"  {a['name']}{default}: {a.get('description', '')}")
            return 0
        env = dict(os.environ)
        prefix = sys.prefix
        ament = env.get("AMENT_PREFIX_PATH", "")
        if prefix not in ament.split(os.pathsep):
            env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (ament, prefix) if p)
        processes = description.processes(arguments, env)
    except LaunchError as err:
        raise UsageError(str(err)) from None
    if not processes:
        print("[launch] nothing to start", flush=True)
        return 0
    return LaunchRunner(processes).run()
