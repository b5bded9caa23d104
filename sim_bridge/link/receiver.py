"""The receive path: frames from the other site → messages to publish here (no ROS).

For each frame, in order: the envelope is parsed (``wire``); its topic must be one the
configuration carries from the other site; the sender's epoch and sequence number drop
copies and replays and count gaps (``SequenceTracker``); a safety-critical message older
than ``max_command_age_s`` — judged by the sender's send time and the measured clock
offset between the sites (``ClockOffset``) — is dropped (and a safety-critical stream
that goes silent for its ``stop_after_silent_s`` is due a stop); the payload is decoded
(lz4 and image headers checked against ``max_message_bytes`` before anything is
allocated) into serialized CDR bytes to publish. Every refusal is counted and logged (``Faults``), none
raises.

Thread-safe: frames arrive on zenoh's threads, images are decoded on their own worker,
reports and diagnostics are read on the executor.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lz4.block
import numpy as np

from sim_bridge.link import codec, image_cdr, wire
from sim_bridge.link.clock import ClockOffset
from sim_bridge.link.faults import Faults
from sim_bridge.link.monitor import SequenceTracker, Verdict
from sim_bridge.link.probes import TopicReport
from sim_bridge.link.spec import LinkConfig, TopicRule

IMAGE_CODECS = (wire.Codec.JPEG, wire.Codec.PNG, wire.Codec.WEBP, wire.Codec.RAW_SCALED)
ENVELOPE_OVERHEAD = 512  # header, type name and image header, on top of the message itself


@dataclass
class Incoming:
    """A topic arriving from the other site."""

    topic: str
    type_name: str
    rule: TopicRule
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    epoch: int = -1
    latencies_ms: list[float] = field(default_factory=list)
    packets: int = 1
    latest: bytes | None = None  # the last message published (control/state: kept for late subscribers)
    latest_send_time: float = math.nan
    unheard: bool = False  # published while nobody here subscribed
    last_published: float = -math.inf  # our wall clock
    stop_due: bool = False  # published since the last stop: a stop is due if it goes silent

    @property
    def keep_latest(self) -> bool:
        return self.rule.keeps_latest


@dataclass
class Arrival:
    """A frame accepted for delivery, still to be decoded."""

    stream: Incoming
    envelope: wire.Envelope

    @property
    def is_image(self) -> bool:
        return self.envelope.codec in IMAGE_CODECS


class ReceivePath:
    """Accepts and decodes the other site's frames; see the module docstring."""

    def __init__(
        self,
        config: LinkConfig,
        other_site: str,
        clock: ClockOffset,
        faults: Faults,
        max_message_bytes: int,
        max_command_age_s: float,
        wall: Callable[[], float] = time.time,
    ):
        self.config = config
        self.other = other_site
        self.clock = clock
        self.faults = faults
        self.max_message_bytes = max_message_bytes
        self.max_command_age_s = max_command_age_s
        self.wall = wall
        self.streams: dict[str, Incoming] = {}
        self._lock = threading.Lock()

    # ---- acceptance -----------------------------------------------------------------------
    def accept(self, key: str, frame: bytes) -> Arrival | None:
        """The frame's message if it is to be delivered, else None (counted)."""
        if len(frame) > self.max_message_bytes + ENVELOPE_OVERHEAD:
            self.faults.record("oversized_frames", f"{key}: a frame of {len(frame)} bytes refused")
            return None
        try:
            env = wire.unpack(frame)
        except wire.WireError as err:
            self.faults.record("malformed_frames", f"{key}: {err}")
            return None
        site, topic = wire.key_topic(key)
        stream = self._stream(site, topic, env.type_name)
        if stream is None:
            self.faults.record(
                "unknown_topics", f"{topic} ({env.type_name}) arrived but the configuration does not carry it"
            )
            return None
        with self._lock:
            if env.epoch != stream.epoch:  # the sender restarted: its sequence starts anew
                stream.tracker.reset()
                stream.epoch = env.epoch
            verdict = stream.tracker.accept(env.seq)
            if verdict == Verdict.NEW:
                offset = self.clock.offset_s() or 0.0
                stream.latencies_ms.append((self.wall() - (env.send_time - offset)) * 1000.0)
                stream.packets = max(1, math.ceil(len(env.payload) / 1400))
        if verdict == Verdict.OUT_OF_WINDOW:
            self.faults.record("out_of_window_frames", f"{topic}: sequence number {env.seq} far from the stream")
            return None
        if verdict != Verdict.NEW:
            return None  # a redundant copy: expected, not a fault
        arrival = Arrival(stream, env)
        return arrival if self.fresh(arrival) else None

    def _stream(self, site: str, topic: str, type_name: str) -> Incoming | None:
        with self._lock:
            stream = self.streams.get(topic)
            if stream is not None:
                return stream if stream.type_name == type_name and site == self.other else None
            rule = self.config.rule_for(topic, type_name)
            if rule is None or rule.from_ != self.other or site != self.other:
                return None
            stream = self.streams[topic] = Incoming(topic, type_name, rule)
            return stream

    def age_s(self, send_time: float) -> float | None:
        """How long ago (s, our clock) the other site sent at ``send_time`` (its clock);
        None while the clock offset is unmeasured."""
        offset = self.clock.offset_s()
        return None if offset is None else self.wall() - (send_time - offset)

    def fresh(self, arrival: Arrival) -> bool:
        """False (and counted) for a safety-critical message too old to act on, or one whose
        age cannot be judged yet. The age is judged with the measured clock offset, which
        assumes the link as fast one way as the other (as NTP does); adding the offset's whole
        uncertainty (half the best round trip) instead would refuse every command on a link
        whose one-way delay is half ``max_command_age_s`` (150 ms for 0.3 s). The uncertainty
        is in ``/diagnostics`` beside the offset."""
        if not arrival.stream.rule.is_safety_critical:
            return True
        why = self._not_actionable(arrival.stream.topic, arrival.envelope.send_time)
        if why is None:
            return True
        self.faults.record("stale_dropped", why)
        return False

    def _not_actionable(self, topic: str, send_time: float) -> str | None:
        """Why a safety-critical message sent at ``send_time`` must not be acted on now
        (too old, from the future, or of unjudgeable age), or None."""
        age = self.age_s(send_time)
        if age is None:
            return f"{topic}: dropped: the clock offset to {self.other} is not measured yet"
        if age > self.max_command_age_s:
            return f"{topic}: dropped a message {age:.2f} s old (max_command_age_s {self.max_command_age_s:g})"
        if age < -self.max_command_age_s:
            return f"{topic}: dropped a message from {-age:.2f} s in the future (the sites' clocks disagree)"
        return None

    # ---- decoding -------------------------------------------------------------------------
    def decode(self, arrival: Arrival) -> bytes | None:
        """The serialized message to publish, or None (counted)."""
        env, topic = arrival.envelope, arrival.stream.topic
        try:
            if env.codec == wire.Codec.CDR:
                return env.payload
            if env.codec == wire.Codec.CDR_LZ4:
                return self._decompress(env.payload)
            if arrival.stream.type_name != "sensor_msgs/msg/Image":
                raise ValueError(f"an image codec ({env.codec.name}) on a {arrival.stream.type_name} topic")
            meta, encoded = wire.unpack_image(env.payload)
            frame = codec.decode(encoded, env.codec, self.max_message_bytes)
            return image_cdr.image_bytes(meta.stamp_sec, meta.stamp_nanosec, meta.frame_id, frame)
        except (codec.ImageTooLarge, _TooLarge) as err:
            self.faults.record("oversized_frames", f"{topic}: {err}")
        except (ValueError, lz4.block.LZ4BlockError) as err:  # WireError is a ValueError
            self.faults.record("malformed_frames", f"{topic}: cannot decode ({err})")
        return None

    def _decompress(self, payload: bytes) -> bytes:
        if len(payload) < 4:
            raise ValueError("lz4 payload without its size")
        size = int.from_bytes(payload[:4], "little", signed=True)
        if size < 0 or size > self.max_message_bytes:
            raise _TooLarge(f"lz4 payload asks for {size} bytes (max_message_bytes {self.max_message_bytes})")
        data = lz4.block.decompress(payload[4:], uncompressed_size=size)
        if len(data) != size:
            raise ValueError(f"lz4 payload gave {len(data)} bytes, its header says {size}")
        return data

    # ---- after publishing -----------------------------------------------------------------
    def delivered(self, arrival: Arrival, data: bytes, heard: bool) -> None:
        """Note what was published, and whether anyone here was subscribed."""
        stream = arrival.stream
        with self._lock:
            if stream.keep_latest:
                stream.latest, stream.latest_send_time = data, arrival.envelope.send_time
                stream.unheard = not heard
            if stream.rule.stop_after_silent_s is not None:
                stream.last_published, stream.stop_due = self.wall(), True

    def silent_streams(self) -> list[Incoming]:
        """Safety-critical streams silent for their ``stop_after_silent_s`` since the last
        message published here: each is due one stop (and no late hand-off of its last
        command), then not again until a message arrives."""
        now = self.wall()
        due = []
        with self._lock:
            for stream in self.streams.values():
                limit = stream.rule.stop_after_silent_s
                if limit is not None and stream.stop_due and now - stream.last_published > limit:
                    stream.stop_due = stream.unheard = False
                    due.append(stream)
        return due

    def unheard_due(self, has_subscribers: Callable[[str], bool]) -> list[tuple[Incoming, bytes]]:
        """Latest values that arrived before anyone here subscribed and now have a
        subscriber: publish them (safety-critical ones only while still fresh)."""
        due = []
        with self._lock:
            waiting = [s for s in self.streams.values() if s.unheard and s.latest is not None]
        for stream in waiting:
            if not has_subscribers(stream.topic):
                continue
            with self._lock:
                stream.unheard = False
                data, send_time = stream.latest, stream.latest_send_time
            if stream.rule.is_safety_critical:
                why = self._not_actionable(stream.topic, send_time)
                if why is not None:
                    self.faults.record("stale_dropped", f"{why}: not handed to a late subscriber")
                    continue
            due.append((stream, data))
        return due

    # ---- reports ----------------------------------------------------------------------------
    def take_report(self) -> dict[str, TopicReport]:
        """Per topic, what arrived since the last call (for the other site's MMCF)."""
        out = {}
        with self._lock:
            for topic, stream in self.streams.items():
                expected, received = stream.tracker.take_window()
                lat = stream.latencies_ms
                median = float(np.median(lat)) if lat else math.nan
                out[topic] = TopicReport(expected, received, stream.packets, median)
                stream.latencies_ms = []
        return out


class _TooLarge(ValueError):
    pass
