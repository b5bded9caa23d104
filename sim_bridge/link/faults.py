"""Counting what the link refused, and saying so without flooding the log.

Every refusal on the receive path (a malformed frame, a stale command, a bad report, ...),
and every stop published for a command stream gone silent, is counted under a name that
``/diagnostics`` shows, and logged at most once per ``log_period_s`` per name, with the
count so far. Called from zenoh's threads, worker
threads and the executor alike: thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# What /diagnostics shows, in this order (all start at 0).
FAULTS = (
    "malformed_frames",  # not a site-link envelope, or a payload that does not decode
    "oversized_frames",  # a frame, or what its header asks for, beyond max_message_bytes
    "out_of_window_frames",  # a sequence number far from its stream (garbage, until confirmed)
    "stale_dropped",  # a safety-critical message older than max_command_age_s
    "unknown_topics",  # a frame for a topic the configuration does not carry from there
    "malformed_reports",  # the other site's traffic report did not parse
    "malformed_probes",  # a probe or probe answer did not parse
    "images_superseded",  # a frame replaced by a newer one before it was encoded/decoded
    "silence_stops",  # a stop published because a command topic went silent (stop_after_silent_s)
)


class Faults:
    """Thread-safe counters with throttled log lines."""

    def __init__(self, log: Callable[[str], None], log_period_s: float = 5.0, clock=time.monotonic):
        self._log = log
        self._period = log_period_s
        self._clock = clock
        self._counts = dict.fromkeys(FAULTS, 0)
        self._logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, name: str, why: str = "", quiet: bool = False) -> None:
        """Count one ``name``; log ``why`` unless one was logged under it recently."""
        now = self._clock()
        with self._lock:
            self._counts[name] += 1
            count = self._counts[name]
            last = self._logged.get(name)
            speak = not quiet and (last is None or now - last >= self._period)
            if speak:
                self._logged[name] = now
        if speak:
            self._log(f"{why} [{name}: {count} so far]")

    def count(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
