"""``sern launch [PKG] FILE [name:=value ...]``: run a ``*_launch.yaml`` file.

Where the ``ros2`` CLI exists it defers to ``ros2 launch``; otherwise (a pip-only install)
it runs the file itself with the meaning ros2 launch gives it (``sim_bridge.launch``): one
process per node or executable, namespaces, parameters, remaps, arguments with choices,
substitutions, groups and includes with ros2 launch's scoping, respawn, output routing and
per-process shutdown timeouts. Every problem in the file is an error naming FILE:LINE and
exits with code 2 before anything starts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

_DESCRIPTION = """\
Run a *_launch.yaml file (the ROS 2 launch YAML format). FILE is a path, or a launch file
of PKG (default sern), e.g. 'sern launch sim_launch.yaml policy:=none'. Arguments are
name:=value; record:=FILE.mcap records every topic (the shipped launch files take it).
Where the ros2 CLI exists this defers to 'ros2 launch'; otherwise sern runs the file itself,
as ros2 launch would:

  actions      arg (default, description, choice), let, set_env, unset_env, append_env,
               reset_env, reset, group (scoped, forwarding, keep), include (arg),
               push_ros_namespace, set_parameter, set_parameters_from_file, set_remap,
               log, node, executable; if/unless on every action
  node         pkg + exec (exec must be in <prefix>/lib/<pkg>, or be a pip-installed
               package's own console script), name, namespace, exec_name, args, ros_args,
               param (name/value, nested param, from: FILE, allow_substs), remap
  processes    cmd, cwd, env, shell, emulate_tty, launch-prefix, on_exit: shutdown,
               output: screen | log (default: stderr on screen, all in launch.log) | both |
               own_log | full, respawn (after any exit) + respawn_delay + respawn_max_retries,
               sigterm_timeout + sigkill_timeout (stop: SIGINT, then SIGTERM, then SIGKILL)
  substitutions var env find-pkg-share find-pkg-prefix exec-in-pkg find-exec file-content
               eval not and or all any if equals not-equals anon dirname filename
  scoping      include is not a scope (its args and lets stay visible after it); a group
               is, unless scoped: false; forwarding: false starts from its keep list only;
               a relative include path is relative to the working directory
  parameters   set_parameter first, then param items in the order written (later wins);
               an inline value is read as YAML only when it holds a substitution
  $(eval)      literals, arithmetic, comparisons, and/or/not, x if c else y, indexing,
               math functions, abs int float str bool len min max round; bounded size and
               time; any evaluation error is an error in the file (exit 2)

Stricter than ros2 launch: undeclared arguments, a missing from: file or cwd, quoted
booleans in scoped/forwarding/shell, and actions sern does not implement (timer, shutdown,
composable nodes) are errors. A process that dies with an error and has no respawn stops
the launch (exit 1). Log folder: $ROS_LOG_DIR, else $ROS_HOME/log, else ~/.ros/log.
Exit codes: 0 finished (or SIGTERM), 1 a process failed, 2 a usage error, 130 Ctrl-C.
The comparison with ros2 launch, case by case: docs/launch.md."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "launch",
        help="run a launch file (defers to 'ros2 launch' where it exists)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def _show_arguments(path: Path, description) -> None:
    print(f"Arguments of {path} (pass as name:=value):")
    for a in description.declared_arguments():
        default = f" (default: {a['default']!r})" if "default" in a else " (required)"
        choices = f" [choices: {', '.join(repr(c) if c == '' else c for c in a['choices'])}]" if "choices" in a else ""
        print(f"  {a['name']}{default}{choices}: {a.get('description', '')}")


def run(args: argparse.Namespace) -> int:
    from sern.errors import UsageError
    from sim_bridge.launch import LaunchDescription, LaunchError, LaunchRunner
    from sim_bridge.launch.output import base_log_dir, make_run_log_dir

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
            _show_arguments(path, description)
            return 0
        env = dict(os.environ)
        prefix = sys.prefix
        ament = env.get("AMENT_PREFIX_PATH", "")
        if prefix not in ament.split(os.pathsep):
            env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (ament, prefix) if p)
        processes = description.processes(arguments, env)
    except LaunchError as err:
        raise UsageError(str(err)) from None
    for message in description.messages:
        print(f"[launch] {message}", flush=True)
    if not processes:
        print("[launch] nothing to start", flush=True)
        return 0
    base = base_log_dir()
    try:
        log_dir = make_run_log_dir(base)
    except OSError as err:
        raise UsageError(
            f"cannot create the launch log folder under {base} ({err.strerror}); set ROS_LOG_DIR"
        ) from None
    return LaunchRunner(processes, log_dir=log_dir).run()
