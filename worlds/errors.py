"""Errors raised for bad world files: what was wrong, where, and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a world file.

    ``key`` is the dotted key path inside the file (``robots[0].spawn.region``), empty
    for a problem with the whole file; ``line`` is 1-based, or ``None`` when unknown.
    """

    key: str
    reason: str
    line: int | None = None

    def describe(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


class SpecFileError(ValueError):
    """A specification file that cannot be used. ``str(err)`` is a message for a person."""

    def __init__(self, source: str | Path, problems: list[Problem]):
        self.source = str(source)
        self.problems = list(problems)
        lines = [p.describe(self.source) for p in self.problems]
        if len(lines) > 1:
            text = f"{self.source}: {len(lines)} problems\n  " + "\n  ".join(lines)
        else:
            text = lines[0] if lines else f"{self.source}: invalid file"
        super().__init__(text)


class WorldFileError(SpecFileError):
    """A world file that cannot be used."""


def key_path(loc: tuple[str | int, ...]) -> str:
    """Render a location tuple as ``robots[0].spawn.region``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
