"""What the two site links say to each other besides the traffic: probes and reports.

Probe (``sern/probe/<site>/ping``): an id and the sender's wall-clock send time ``t1``.
Answer (``sern/probe/<site>/pong``): the id and ``t1`` echoed, with ``t2`` (ping received)
and ``t3`` (answer sent) on the answering site's clock. The round trip times the link; the
four times give the clock offset (``sim_bridge.link.clock``).

Report (``sern/report/<site>``, JSON, once a second): per topic received from the other
site, the messages expected (by sequence numbers) and received since the last report, the
packets per message and the median latency. The sender's MMCF reads loss from them.

Parsing trusts nothing: a malformed probe is a ``ProbeError``, a malformed report a
``ReportError``, each saying what is wrong.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

_PING = struct.Struct("<4sId")
_PONG = struct.Struct("<4sIddd")
PING_MAGIC, PONG_MAGIC = b"SLP1", b"SLA1"
MAX_REPORT_BYTES = 256 * 1024  # a report names each carried topic once: far below this
MAX_COUNT = 10**9  # messages per report window: anything above is not a count


class ProbeError(ValueError):
    """Bytes that are not a probe or probe answer."""


class ReportError(ValueError):
    """Bytes that are not a traffic report."""


@dataclass(frozen=True)
class Pong:
    probe_id: int
    t1: float  # ping sent (the pinging site's clock)
    t2: float  # ping received (the answering site's clock)
    t3: float  # answer sent (the answering site's clock)


def ping(probe_id: int, t1: float) -> bytes:
    return _PING.pack(PING_MAGIC, probe_id & 0xFFFFFFFF, t1)


def parse_ping(data: bytes) -> tuple[int, float]:
    """(probe id, t1) of a ping."""
    if len(data) != _PING.size or data[:4] != PING_MAGIC:
        raise ProbeError(f"not a probe ({len(data)} bytes)")
    _, probe_id, t1 = _PING.unpack(data)
    if not math.isfinite(t1):
        raise ProbeError("probe send time is not a time")
    return probe_id, t1


def pong(probe_id: int, t1: float, t2: float, t3: float) -> bytes:
    return _PONG.pack(PONG_MAGIC, probe_id & 0xFFFFFFFF, t1, t2, t3)


def parse_pong(data: bytes) -> Pong:
    if len(data) != _PONG.size or data[:4] != PONG_MAGIC:
        raise ProbeError(f"not a probe answer ({len(data)} bytes)")
    _, probe_id, t1, t2, t3 = _PONG.unpack(data)
    if not all(math.isfinite(t) for t in (t1, t2, t3)):
        raise ProbeError("probe answer times are not times")
    return Pong(probe_id, t1, t2, t3)


@dataclass(frozen=True)
class TopicReport:
    """What the other site saw of one of our topics since its last report."""

    expected: int
    received: int
    packets: int = 1
    latency_ms_median: float = math.nan


def report(topics: dict[str, TopicReport]) -> bytes:
    return json.dumps(
        {
            topic: {
                "expected": r.expected,
                "received": r.received,
                "packets": r.packets,
                "latency_ms_median": None if math.isnan(r.latency_ms_median) else r.latency_ms_median,
            }
            for topic, r in topics.items()
        }
    ).encode()


def parse_report(data: bytes) -> dict[str, TopicReport]:
    """The per-topic reports in ``data``."""
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"a report of {len(data)} bytes (at most {MAX_REPORT_BYTES})")
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise ReportError(f"not JSON ({type(err).__name__})") from None
    if not isinstance(raw, dict):
        raise ReportError(f"a report is an object of topics, got {type(raw).__name__}")
    out = {}
    for topic, entry in raw.items():
        if not topic.startswith("/"):
            raise ReportError(f"{topic[:60]!r} is not a topic name")
        if not isinstance(entry, dict):
            raise ReportError(f"{topic}: expected an object, got {type(entry).__name__}")
        counts = {}
        for key, low in (("expected", 0), ("received", 0), ("packets", 1)):
            value = entry.get(key, 1 if key == "packets" else None)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_COUNT:
                raise ReportError(f"{topic}: {key!r} must be a whole number in [{low}, {MAX_COUNT}], got {value!r}")
            counts[key] = value
        if counts["received"] > counts["expected"]:
            raise ReportError(f"{topic}: received {counts['received']} of {counts['expected']} expected")
        latency = entry.get("latency_ms_median")
        if latency is None:
            latency = math.nan
        elif isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(latency):
            raise ReportError(f"{topic}: 'latency_ms_median' must be a number or null, got {latency!r}")
        out[topic] = TopicReport(counts["expected"], counts["received"], counts["packets"], float(latency))
    return out
