"""Measuring the live link: round-trip time and loss from probes, loss and throughput from
the traffic itself (the receiver's reports), all smoothed.

Probes: each site sends a small best-effort probe at ``probe_rate_hz``; the other site
echoes it. RTT is the median of recent echoes; probe loss is what went unanswered over a
window (both ways: one-way loss p = 1 − √(1 − round-trip loss)). The receiving site also
reports, per stream, the sequence numbers it saw; gaps on best-effort streams tell the
loss of real traffic, weighted by the packets per message.

Threads: probes are answered and reports arrive on zenoh's threads, copies are sent from
a timer thread, while the node's executor estimates: ``StreamTraffic`` and ``LinkMonitor``
take a lock around every read and write of their state. ``SequenceTracker`` has one owner
(the receive path, which holds its own lock).
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass
class StreamTraffic:
    """Sender-side accounting of one stream (thread-safe)."""

    sent: int = 0
    bytes_sent: int = 0
    source_count: int = 0  # messages seen on the local topic
    source_bytes: int = 0
    window: deque = field(default_factory=lambda: deque(maxlen=400))  # (t, bytes sent)
    source_times: deque = field(default_factory=lambda: deque(maxlen=200))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def note_source(self, t: float, size: int) -> None:
        with self._lock:
            self.source_count += 1
            self.source_bytes += size
            self.source_times.append(t)

    def note_sent(self, t: float, size: int) -> None:
        with self._lock:
            self.sent += 1
            self.bytes_sent += size
            self.window.append((t, size))

    def rate_hz(self) -> float:
        """The local topic's publish rate (recent)."""
        with self._lock:
            if len(self.source_times) < 3:
                return 0.0
            span = self.source_times[-1] - self.source_times[0]
            count = len(self.source_times)
        return (count - 1) / span if span > 0 else 0.0

    def throughput_bps(self, now: float, horizon_s: float = 2.0) -> float:
        with self._lock:
            recent = sum(b for t, b in self.window if t >= now - horizon_s)
        return recent * 8 / horizon_s


@dataclass
class LinkEstimate:
    rtt_s: float
    loss: float
    up: bool
    probes_answered: int
    samples: int


class LinkMonitor:
    """RTT and loss of one direction pair, from probes and receiver reports (thread-safe)."""

    def __init__(self, window: int = 100, down_after_s: float = 2.0):
        self._lock = threading.Lock()
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
        with self._lock:
            pid = self._next_id
            self._next_id += 1
            self._sent[pid] = now
            # Probes older than 2 s count as lost.
            for old, t in list(self._sent.items()):
                if now - t > 2.0:
                    del self._sent[old]
                    self._outcomes.append(False)
        return pid

    def probe_answered(self, pid: int, now: float) -> bool:
        """An answer to probe ``pid``; False for one we did not send or already heard."""
        with self._lock:
            t = self._sent.pop(pid, None)
            if t is None:
                return False  # late, duplicate, or not ours
            self._rtts.append(now - t)
            self._outcomes.append(True)
            self._last_answer = now
            self.answered += 1
        return True

    # ---- receiver reports --------------------------------------------------------------
    def traffic_report(self, expected: int, received: int, packets_per_message: int, copies: int = 1) -> None:
        """A best-effort stream's messages expected (by sequence numbers) and received; a
        message sent ``copies`` times is lost only when every copy is."""
        if expected > 0:
            entry = (expected, min(received, expected), max(packets_per_message, 1), max(copies, 1))
            with self._lock:
                self._traffic_loss.append(entry)

    # ---- estimate ----------------------------------------------------------------------
    def estimate(self, now: float) -> LinkEstimate:
        with self._lock:
            rtts = list(self._rtts)
            outcomes = list(self._outcomes)
            traffic = list(self._traffic_loss)
            last_answer, answered = self._last_answer, self.answered
        rtt = statistics.median(rtts) if rtts else math.nan
        per_packet = []
        weights = []
        if len(outcomes) >= 10:
            round_trip_loss = 1.0 - sum(outcomes) / len(outcomes)
            per_packet.append(1.0 - math.sqrt(max(0.0, 1.0 - round_trip_loss)))
            weights.append(len(outcomes))
        for expected, received, packets, copies in traffic:
            one_copy_loss = (1.0 - received / expected) ** (1.0 / copies)
            per_packet.append(1.0 - (1.0 - one_copy_loss) ** (1.0 / packets))
            # a redundant stream's few losses say little: weight by copies' information
            weights.append(expected * packets / copies)
        loss = sum(p * w for p, w in zip(per_packet, weights, strict=True)) / sum(weights) if weights else 0.0
        up = now - last_answer <= self.down_after_s
        return LinkEstimate(rtt, loss, up, answered, int(sum(weights)))


class Verdict:
    """What ``SequenceTracker.accept`` decided."""

    NEW = "new"  # deliver it
    DUPLICATE = "duplicate"  # a copy or replay of one already delivered
    OUT_OF_WINDOW = "out_of_window"  # far from the stream: garbage, until others confirm it


class SequenceTracker:
    """Receiver side of one stream: duplicates dropped, gaps counted.

    A sequence number far from the stream (more than ``behind`` below the highest seen, or
    more than ``ahead`` above it) is not believed at once: alone it is garbage (one such
    frame must not capture the stream, nor make every later message look old or lost).
    When ``confirm`` such numbers in a row follow on from each other, the stream really did
    move there (a long outage, or a sender that restarted without a new epoch) and the
    tracker re-bases onto them, counting the jump as neither loss nor delivery.
    """

    def __init__(self, behind: int = 400, ahead: int = 1000, confirm: int = 2):
        self.behind, self.ahead, self.confirm = behind, ahead, confirm
        self.highest = -1
        self.received = 0
        self.duplicates = 0
        self.out_of_window = 0
        self.rebased = 0
        self._recent: deque[int] = deque(maxlen=512)
        self._seen: set[int] = set()
        self._suspects: list[int] = []
        self._window_start = 0
        self._window_received = 0
        self._expected_before = 0  # of this report window, before a re-base
        self._received_before = 0

    def accept(self, seq: int) -> str:
        """A ``Verdict`` for message ``seq``: only ``Verdict.NEW`` is delivered."""
        if self.highest >= 0 and not self.highest - self.behind <= seq <= self.highest + self.ahead:
            return self._far(seq)
        self._suspects.clear()
        if seq in self._seen:
            self.duplicates += 1
            return Verdict.DUPLICATE
        if self.highest < 0:
            self._window_start = seq
        self._note(seq)
        return Verdict.NEW

    def _note(self, seq: int) -> None:
        self._seen.add(seq)
        self._recent.append(seq)
        if len(self._recent) == self._recent.maxlen:
            self._seen.discard(self._recent[0])
        self.highest = max(self.highest, seq)
        self.received += 1
        if seq >= self._window_start:
            self._window_received += 1

    def _far(self, seq: int) -> str:
        last = self._suspects[-1] if self._suspects else None
        if last is not None and 0 < seq - last <= self.ahead:
            self._suspects.append(seq)
        else:
            self._suspects = [seq]
        if len(self._suspects) < self.confirm:
            self.out_of_window += 1
            return Verdict.OUT_OF_WINDOW
        # Confirmed: close this stretch of the report window and start again from here.
        self._expected_before += self.highest - self._window_start + 1
        self._received_before += self._window_received
        suspects = self._suspects
        self._seen.clear()
        self._recent.clear()
        self._suspects = []
        self.highest = -1
        self._window_start = suspects[0]
        self._window_received = 0
        for s in suspects:
            self._note(s)
        self.rebased += 1
        return Verdict.NEW

    def take_window(self) -> tuple[int, int]:
        """(expected, received) since the last call, by sequence numbers."""
        if self.highest < 0:
            return 0, 0
        expected = self._expected_before + self.highest - self._window_start + 1
        received = min(self._received_before + self._window_received, expected)
        self._window_start = self.highest + 1
        self._window_received = 0
        self._expected_before = self._received_before = 0
        return expected, received

    def reset(self) -> None:
        self.__init__(self.behind, self.ahead, self.confirm)
