"""Pacing a simulation against the wall clock at a real-time factor, in fixed steps.

A node asks ``due()`` on every timer tick and takes that many steps. When it has fallen far
behind (a machine too slow for the factor, a long pause), it catches up at most
``max_catch_up_s`` of simulated time in one go and lets simulated time slip for the rest, as
a simulator's real-time factor drops under load, instead of bursting through seconds of
simulated time while commands stand still. No ROS here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Pacer:
    """Steps of ``step_s`` simulated seconds at ``real_time_factor`` × wall time."""

    def __init__(
        self,
        step_s: float,
        real_time_factor: float,
        max_catch_up_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not (step_s > 0 and real_time_factor > 0):
            raise ValueError(f"need step_s > 0 and real_time_factor > 0; got {step_s}, {real_time_factor}")
        self.step_s = step_s
        self.real_time_factor = real_time_factor
        self.max_steps = max(1, round(max_catch_up_s / step_s))
        self.clock = clock
        self.restart()

    def restart(self) -> None:
        """Count from now: no step due yet."""
        self._steps = 0
        self._wall0 = self._wall_start = self.clock()

    def _due_total(self) -> int:
        return math.floor((self.clock() - self._wall0) * self.real_time_factor / self.step_s + 1e-9)

    def due(self) -> tuple[int, bool]:
        """Steps to take now, and whether simulated time slipped to keep that bounded.
        The caller takes them all (``took``)."""
        due = self._due_total() - self._steps
        slipped = due > self.max_steps
        if slipped:
            self._wall0 += (due - self.max_steps) * self.step_s / self.real_time_factor
            due = self.max_steps
        return max(0, due), slipped

    def block_due(self, steps: int) -> bool:
        """Whether a block of ``steps`` steps (a control period) is due now; a block that is
        late by more than another block is not caught up on (the wait was someone else's)."""
        due = self._due_total() - self._steps
        if due > 2 * steps:
            self._wall0 += (due - steps) * self.step_s / self.real_time_factor
            due = steps
        return due >= steps

    def clock_at(self, sim_s: float) -> float:
        """The pacing clock's reading for simulated time ``sim_s`` (after any slips): what a
        node stamps a state with, so stamps stay on the clock when simulated time slips."""
        return self._wall0 + sim_s / self.real_time_factor

    @property
    def slipped_s(self) -> float:
        """Simulated seconds let slip since the start (what a slow node tells its user)."""
        return (self._wall0 - self._wall_start) * self.real_time_factor

    def took(self, steps: int) -> None:
        self._steps += steps
