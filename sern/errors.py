"""What every ``sern`` sub-command shares: its exit codes and the error that means "this
cannot be done as asked" (exit code 2). Kept apart from ``sern.cli`` so sub-commands need not
import the module that imports them.

Exit codes: 0 success, 1 the job ran and failed, 2 usage error (bad arguments, a bad world
file, an unknown policy), 130 interrupted.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Something the user asked for that cannot be done as asked (exit code 2)."""


class JobFailed(Exception):
    """The job started and could not finish, e.g. a peer died (exit code 1)."""
