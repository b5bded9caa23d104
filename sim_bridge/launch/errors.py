"""The one error a launch file can cause: ``LaunchError``, a usage error (exit code 2)."""

from __future__ import annotations

from pathlib import Path


class LaunchError(ValueError):
    """A launch file that cannot be run as written: what is wrong, and where (FILE:LINE)."""

    def __init__(self, message: str, *, located: bool = False):
        super().__init__(message)
        self.located = located


def located(err: LaunchError, path: Path | str, line: int | None) -> LaunchError:
    """``err`` prefixed with ``FILE:LINE`` unless it already names where it happened."""
    if err.located:
        return err
    where = f"{path}:{line}" if line else str(path)
    return LaunchError(f"{where}: {err}", located=True)
