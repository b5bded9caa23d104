"""``sern``: the command line. Each sub-command lives in its own module under ``sern/``.

Exit codes: 0 success, 1 the job ran and failed, 2 usage error (bad arguments, a bad
world file, an unknown policy), 130 interrupted (``sern.errors``).
"""

from __future__ import annotations

import argparse
import sys

from sern import check_cmd, demo_cmd, eval_cmd, launch_cmd, link_cmd, run_cmd, serve_mlagents_cmd, train_cmd
from sern.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, JobFailed, UsageError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

COMMANDS = (run_cmd, demo_cmd, train_cmd, eval_cmd, launch_cmd, link_cmd, check_cmd, serve_mlagents_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sern",
        description=(
            "sern: physical robots and their virtual twins side by side. Run multi-robot worlds "
            "headless, check world files, and (with ROS 2) launch the twin bridge."
        ),
        epilog="Start with:  sern run worlds/navigation.yaml      Help on a command:  sern COMMAND --help",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or EXIT_OK)
    except UsageError as err:
        print(f"sern {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except JobFailed as err:
        print(f"sern {args.command}: failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\nsern {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
