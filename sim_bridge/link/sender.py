"""The send path: messages from a local topic → frames to the other site (no ROS).

Each local message is offered with the wall-clock time it was taken (its send time on the
wire, kept when it is sent again). Messages are decimated to the configured rate; small
ones are packed (lz4 when chosen) and put at once on the caller's thread — the thread that
forwards commands; images go to their stream's ``LatestWorker``, which unpacks the pixels,
encodes them and, every ``profile_period_s``, measures every candidate encoding for the
MMCF, all off that thread. Best-effort copies go out spaced by ``COPY_SPACING_S``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lz4.block

from sim_bridge.link import codec, image_cdr, wire
from sim_bridge.link.faults import Faults
from sim_bridge.link.mmcf import IMAGE_ENCODINGS, StreamConfig, TopicClass
from sim_bridge.link.monitor import StreamTraffic
from sim_bridge.link.spec import TopicRule
from sim_bridge.link.workers import DelayedCalls, LatestWorker
from sim_bridge.safety import Throttle

COPY_SPACING_S = 0.003  # between redundant copies of a best-effort message


@dataclass
class OutStream:
    """A local topic sent to the other site."""

    topic: str
    type_name: str
    rule: TopicRule
    traffic: StreamTraffic = field(default_factory=StreamTraffic)
    config: StreamConfig | None = None
    publisher: object = None  # where frames go (a zenoh publisher)
    put_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held across a put on ``publisher``: a publisher the planner replaced is undeclared only
    once no put is using it (zenoh refuses to undeclare a publisher in use, and a put on an
    undeclared one fails)."""
    seq: int = 0
    next_due: float = -math.inf  # decimation: when (monotonic) the next message is due
    latest: bytes | None = None
    latest_time: float = math.nan  # wall clock, when the latest was taken
    size_bytes: float = 0.0
    compressed_bytes: float | None = None
    encodings: dict = field(default_factory=dict)
    profiled_at: float = -math.inf
    prediction: object = None
    delivered: tuple[int, int] = (0, 0)  # from the receiver's reports: (expected, received)
    native_rate_hz: float = 0.0  # the topic's rate as planned with (moves only on > 10 % change)
    remote_latency_ms: float = math.nan
    worker: LatestWorker | None = None

    @property
    def is_image(self) -> bool:
        return self.rule.topic_class == TopicClass.IMAGE


class SendPath:
    """Turns offered messages into frames and hands them to ``put``."""

    def __init__(
        self,
        epoch: int,
        put: Callable[[OutStream, bytes, float], None],
        faults: Faults,
        warn: Callable[[str], None],
        max_command_age_s: float,
        wall: Callable[[], float] = time.time,
        profile_period_s: float = 30.0,
    ):
        self.epoch = epoch
        self._put = put
        self.faults = faults
        self._warn = warn
        self.max_command_age_s = max_command_age_s
        self.wall = wall
        self.profile_period_s = profile_period_s
        self.lock = threading.Lock()  # stream state shared with the planner and workers
        self._streams: list[OutStream] = []
        self._copies = DelayedCalls(on_error=self._failed)
        self._throttle = Throttle(5.0)

    def offer(self, stream: OutStream, data: bytes, now: float) -> None:
        """A message from the local topic (``now``: monotonic)."""
        taken = self.wall()
        with self.lock:
            stream.traffic.note_source(now, len(data))
            stream.size_bytes = len(data) if stream.size_bytes == 0 else 0.9 * stream.size_bytes + 0.1 * len(data)
            stream.latest, stream.latest_time = data, taken
            cfg = stream.config
            if not self._due(stream, cfg.rate_hz, now):
                return  # decimated
        if stream.is_image and cfg.encoding is not None:
            if stream.worker is None:
                stream.worker = LatestWorker(
                    f"encode {stream.topic}",
                    lambda item, s=stream: self._send_image(s, *item),
                    lambda: self.faults.record("images_superseded", quiet=True),
                    self._failed,
                )
            stream.worker.submit((data, taken, cfg.encoding))
        else:
            self.send(stream, data, taken)

    @staticmethod
    def _due(stream: OutStream, rate_hz: float, now: float) -> bool:
        """Decimation to ``rate_hz`` on a fixed schedule: a message is sent when the next
        slot is (nearly) due, so a source's timing jitter does not drop messages of a stream
        sent at its full rate (a "time since the last one" rule dropped every message that
        came a little early after a late one). At (nearly) the source's own rate: all pass."""
        native = stream.native_rate_hz or stream.traffic.rate_hz()
        if rate_hz <= 0 or (native > 0 and rate_hz >= 0.95 * native):
            return True
        period = 1.0 / rate_hz
        if now < stream.next_due - 0.25 * period:
            return False
        stream.next_due = max(stream.next_due, now - 0.25 * period) + period
        return True

    def send(self, stream: OutStream, data: bytes, send_time: float) -> None:
        """Pack and put a non-image message (``send_time``: wall clock, when it was taken)."""
        cfg = stream.config
        if cfg.compress:
            payload, kind = lz4.block.compress(data, store_size=True), wire.Codec.CDR_LZ4
        else:
            payload, kind = data, wire.Codec.CDR
            if not stream.is_image:  # what lz4 would save, for the MMCF
                c = len(lz4.block.compress(data, store_size=True))
                stream.compressed_bytes = (
                    c if stream.compressed_bytes is None else 0.9 * stream.compressed_bytes + 0.1 * c
                )
        self._frames(stream, payload, kind, send_time)

    def _send_image(self, stream: OutStream, data: bytes, send_time: float, enc: codec.ImageEncoding) -> None:
        """On the stream's worker: encode the newest frame (and now and then profile)."""
        try:
            header, frame = image_cdr.parse_image(data)
            now = time.monotonic()
            if now - stream.profiled_at > self.profile_period_s:
                stream.encodings = codec.profile_encodings(frame, IMAGE_ENCODINGS)
                stream.profiled_at = now
            meta = wire.ImageMeta(header.stamp_sec, header.stamp_nanosec, header.width, header.height, header.frame_id)
            payload, kind = wire.pack_image(meta, codec.encode(frame, enc)), enc.codec
        except ValueError as err:  # an encoding the codecs do not take: the message as it is
            if self._throttle.ready(stream.topic, time.monotonic()):
                self._warn(f"{stream.topic}: cannot encode ({err}); sending it raw")
            payload, kind = data, wire.Codec.CDR
        self._frames(stream, payload, kind, send_time)

    def _frames(self, stream: OutStream, payload: bytes, kind: wire.Codec, send_time: float) -> None:
        with self.lock:
            seq = stream.seq
            stream.seq += 1
            copies = stream.config.copies
        now = time.monotonic()
        for copy in range(copies):
            packed = wire.pack(
                wire.Envelope(stream.type_name, seq, send_time, kind, payload, copy=copy, epoch=self.epoch)
            )
            if copy == 0:
                self._put(stream, packed, now)
            else:
                # Spread the copies out so one burst of loss (or one batch) cannot take all.
                self._copies.schedule(COPY_SPACING_S * copy, self._put, stream, packed, now)

    def resend_latest(self) -> None:
        """After an outage, the latest value of each control and state topic goes first,
        with the time it was taken: a safety-critical one only while still fresh."""
        for stream in list(self._streams):
            with self.lock:
                data, taken = stream.latest, stream.latest_time
            if data is None or not (stream.rule.keeps_latest or stream.rule.latched):
                continue
            if stream.rule.is_safety_critical and self.wall() - taken > self.max_command_age_s:
                continue  # the other site would drop it
            if stream.is_image:
                continue
            self.send(stream, data, taken)

    def track(self, stream: OutStream) -> None:
        """Include ``stream`` in ``resend_latest``."""
        self._streams = [*self._streams, stream]  # replaced, not appended: others iterate it

    def _failed(self, err: Exception) -> None:
        self._warn(f"sending failed: {type(err).__name__}: {err}")

    def stop(self) -> None:
        self._copies.stop()
        for stream in self._streams:
            if stream.worker is not None:
                stream.worker.stop()
