"""Measuring the live link: round-trip time and loss from probes, loss and throughput from
the traffic itself (the receiver's reports), all smoothed.

Probes: each site sends a small best-effort probe at ``probe_rate_hz``; the other site
echoes it. RTT is the median of recent echoes; probe loss is what went unanswered over a
window (both ways: one-way loss p = 1 − √(1 − round-trip loss)). The receiving site also
reports, per stream, the sequence numbers it saw; gaps on best-effort streams tell the
loss of real traffic, weighted by the packets per message.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field


@dataclass
class StreamTraffic:
    """Sender-side accounting of one stream."""

    sent: int = 0
    bytes_sent: int = 0
    source_count: int = 0  # messages seen on the local topic
    source_bytes: int = 0
    window: deque = field(default_factory=lambda: deque(maxlen=400))  # (t, bytes sent)
    source_times: deque = field(default_factory=lambda: deque(maxlen=200))

    def note_source(self, t: float, size: int) -> None:
        self.source_count += 1
        self.source_bytes += size
        self.source_times.append(t)

    def note_sent(self, t: float, size: int) -> None:
        self.sent += 1
        self.bytes_sent += size
        self.window.append((t, size))

    def rate_hz(self) -> float:
        """The local topic's publish rate (recent)."""
        times = self.source_times
        if len(times) < 3:
            return 0.0
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else 0.0

    def throughput_bps(self, now: float, horizon_s: float = 2.0) -> float:
        recent = [b for t, b in self.window if t >= now - horizon_s]
        return sum(recent) * 8 / horizon_s


@dataclass
class LinkEstimate:
    rtt_s: float
    loss: float
    up: bool
    probes_answered: int
    samples: int


class LinkMonitor:
    """RTT and loss of one direction pair, from probes and receiver reports."""

    def __init__(self, window: int = 100, down_after_s: float = 2.0):
        self.window = window
        self.down_after_s = down_after_s
        self._sent: dict[int, float] = {}
        self._outcomes: deque[bool] = deque(maxlen=window)  # probe answered?
        self._rtts: deque[float] = deque(maxlen=30)
        self._last_answer = -math.inf
        self._next_id = 0
        self._traffic_loss: deque[tuple[int, int, int, int]] = deque(maxlen=20)  # expected, received, packets, copies
        self.answered = 0

    # ---- probes ------------------------------------------------------------------------
    def probe_sent(self, now: float) -> int:
        """Register a probe going out; returns its id."""
        pid = self._next_id
        self._next_id += 1
        self._sent[pid] = now
        # Probes older than 2 s count as lost.
        for old, t in list(self._sent.items()):
            if now - t > 2.0:
                del self._sent[old]
                self._outcomes.append(False)
        return pid

    def probe_answered(self, pid: int, now: float) -> None:
        t = self._sent.pop(pid, None)
        if t is None:
            return  # late or duplicate echo
        self._rtts.append(now - t)
        self._outcomes.append(True)
        self._last_answer = now
        self.answered += 1

    # ---- receiver reports --------------------------------------------------------------
    def traffic_report(self, expected: int, received: int, packets_per_message: int, copies: int = 1) -> None:
        """A best-effort stream's messages expected (by sequence numbers) and received; a
        message sent ``copies`` times is lost only when every copy is."""
        if expected > 0:
            self._traffic_loss.append((expected, min(received, expected), max(packets_per_message, 1), max(copies, 1)))

    # ---- estimate ----------------------------------------------------------------------
    def estimate(self, now: float) -> LinkEstimate:
        rtt = statistics.median(self._rtts) if self._rtts else math.nan
        outcomes = list(self._outcomes)
        per_packet = []
        weights = []
        if len(outcomes) >= 10:
            round_trip_loss = 1.0 - sum(outcomes) / len(outcomes)
            per_packet.append(1.0 - math.sqrt(max(0.0, 1.0 - round_trip_loss)))
            weights.append(len(outcomes))
        for expected, received, packets, copies in self._traffic_loss:
            one_copy_loss = (1.0 - received / expected) ** (1.0 / copies)
            per_packet.append(1.0 - (1.0 - one_copy_loss) ** (1.0 / packets))
            # a redundant stream's few losses say little: weight by copies' information
            weights.append(expected * packets / copies)
        loss = sum(p * w for p, w in zip(per_packet, weights, strict=True)) / sum(weights) if weights else 0.0
        up = now - self._last_answer <= self.down_after_s
        return LinkEstimate(rtt, loss, up, self.answered, int(sum(weights)))


class SequenceTracker:
    """Receiver side of one stream: duplicates dropped, gaps counted."""

    def __init__(self):
        self.highest = -1
        self.received = 0
        self.duplicates = 0
        self._recent: deque[int] = deque(maxlen=512)
        self._seen: set[int] = set()
        self._window_start = 0
        self._window_received = 0

    def accept(self, seq: int) -> bool:
        """True for a message not seen before (copies and replays are refused)."""
        if seq in self._seen:
            self.duplicates += 1
            return False
        if self.highest >= 0 and seq < self.highest - 400:
            return False  # far too old: a restarted sender's stream is handled by reset
        self._seen.add(seq)
        self._recent.append(seq)
        if len(self._recent) == self._recent.maxlen:
            self._seen.discard(self._recent[0])
        if self.highest < 0:
            self._window_start = seq
        self.highest = max(self.highest, seq)
        self.received += 1
        self._window_received += 1
        return True

    def take_window(self) -> tuple[int, int]:
        """(expected, received) since the last call, by sequence numbers."""
        if self.highest < 0:
            return 0, 0
        expected = self.highest - self._window_start + 1
        received = self._window_received
        self._window_start = self.highest + 1
        self._window_received = 0
        return expected, received

    def reset(self) -> None:
        self.__init__()
