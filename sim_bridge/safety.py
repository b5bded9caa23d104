"""Command safety shared by every node that drives robots: refuse non-finite commands,
clamp out-of-limit ones, and stop a robot whose commands have gone stale (watchdog).

Pure Python: the ROS nodes feed it messages and a clock, and log what it reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from worlds.robots import Limits


class Verdict(Enum):
    """What happened to a command."""

    ACCEPTED = "accepted"
    CLAMPED = "clamped"  # out of limits: clipped to them
    REJECTED = "rejected"  # NaN or inf: ignored, the previous command stands


@dataclass
class GateResult:
    verdict: Verdict
    command: tuple[float, float]
    reason: str = ""


class CommandGate:
    """Checks one robot's (v, ω) commands and times them out.

    ``submit`` takes a command with its arrival time; ``current`` gives the command to
    apply at a time: the last good one, or zero once it is older than ``timeout_s``.
    """

    def __init__(self, limits: Limits, timeout_s: float = 0.5):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.limits = limits
        self.timeout_s = timeout_s
        self._command = (0.0, 0.0)
        self._stamp: float | None = None
        self.stopped_by_watchdog = False

    def submit(self, v: float, w: float, now_s: float) -> GateResult:
        if not (math.isfinite(v) and math.isfinite(w)):
            return GateResult(Verdict.REJECTED, self._command, f"non-finite command (v={v}, ω={w}) ignored")
        lim = self.limits
        cv = min(max(v, lim.min_linear_speed_mps), lim.max_linear_speed_mps)
        cw = min(max(w, -lim.max_angular_speed_radps), lim.max_angular_speed_radps)
        self._command = (cv, cw)
        self._stamp = now_s
        self.stopped_by_watchdog = False
        if (cv, cw) != (v, w):
            return GateResult(
                Verdict.CLAMPED,
                self._command,
                f"command (v={v:g}, ω={w:g}) beyond limits "
                f"(v in [{lim.min_linear_speed_mps:g}, {lim.max_linear_speed_mps:g}] m/s, "
                f"|ω| <= {lim.max_angular_speed_radps:g} rad/s): clamped to (v={cv:g}, ω={cw:g})",
            )
        return GateResult(Verdict.ACCEPTED, self._command)

    def current(self, now_s: float) -> tuple[float, float]:
        """The command to apply now; zero when none arrived within ``timeout_s``."""
        if self._stamp is None or now_s - self._stamp > self.timeout_s:
            if self._stamp is not None and not self.stopped_by_watchdog and self._command != (0.0, 0.0):
                self.stopped_by_watchdog = True
            return (0.0, 0.0)
        return self._command

    def age_s(self, now_s: float) -> float:
        """Seconds since the last good command (inf if none)."""
        return math.inf if self._stamp is None else now_s - self._stamp


class Throttle:
    """Lets a message through at most once per ``period_s`` per key (for warnings)."""

    def __init__(self, period_s: float = 2.0):
        self.period_s = period_s
        self._last: dict[str, float] = {}

    def ready(self, key: str, now_s: float) -> bool:
        last = self._last.get(key)
        if last is None or now_s - last >= self.period_s:
            self._last[key] = now_s
            return True
        return False
