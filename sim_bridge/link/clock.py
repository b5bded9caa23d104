"""The other site's clock against ours, measured NTP-style from the link's probes.

A probe leaves here at ``t1`` (our clock), reaches the other site at ``t2`` and its answer
leaves there at ``t3`` (their clock), and arrives back here at ``t4`` (ours). Then

    offset θ = ((t2 − t1) + (t3 − t4)) / 2      (their clock minus ours)
    delay  δ = (t4 − t1) − (t3 − t2)            (the round trip, less their turnaround)

and the true offset lies within ±δ/2 of θ whatever the two directions' delays are. The
estimate is θ of the exchange with the smallest δ among the recent ones (the tightest
bound), as NTP's clock filter does. When a new exchange's bound no longer overlaps the
estimate's, one of the clocks has stepped: the older exchanges are forgotten.

With it the receiver judges a message's age by the sender's send time:
``age = now − (send_time − θ)``.
"""

from __future__ import annotations

import math
import threading
from collections import deque


class ClockOffset:
    """Offset of the other site's clock from ours (s), from probe timestamps. Thread-safe."""

    def __init__(self, window: int = 64):
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)  # (delay, offset)
        self._lock = threading.Lock()

    def add(self, t1: float, t2: float, t3: float, t4: float) -> None:
        """One probe exchange: sent ``t1`` and answered ``t4`` here, received ``t2`` and
        answered ``t3`` there. Exchanges that are not causal (δ < 0, or the other site
        answering before it received) are ignored."""
        delay = (t4 - t1) - (t3 - t2)
        if not all(math.isfinite(t) for t in (t1, t2, t3, t4)) or delay < 0 or t3 < t2 or t4 < t1:
            return
        offset = ((t2 - t1) + (t3 - t4)) / 2.0
        with self._lock:
            best = min(self._samples, default=None)
            if best is not None and abs(offset - best[1]) > (delay + best[0]) / 2.0 + 1e-3:
                self._samples.clear()  # the bounds disagree: a clock stepped
            self._samples.append((delay, offset))

    def offset_s(self) -> float | None:
        """Their clock minus ours, or None before the first exchange."""
        with self._lock:
            best = min(self._samples, default=None)
        return None if best is None else best[1]

    def uncertainty_s(self) -> float:
        """How far the true offset may be from ``offset_s`` (half the best round trip)."""
        with self._lock:
            best = min(self._samples, default=None)
        return math.inf if best is None else best[0] / 2.0
