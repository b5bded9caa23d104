"""One site of a site link, without ROS: the zenoh side of everything.

``LinkSite`` owns the zenoh session's publishers and subscribers, the link monitor and
clock offset, the send and receive paths, and the MMCF glue. The ROS node
(``ros_nodes/site_link.py``) hands it local messages (``offer``), calls its periodic jobs
from timers (``probe``, ``plan``, ``report``, ``deliver_unheard``) and publishes what it
delivers through a ``RosPort``.

Threads: ``offer`` and the periodic jobs run on the node's executor; frames, probes and
reports arrive on zenoh's threads; images are encoded and decoded on one worker thread per
stream. Small messages go straight through on the thread they arrive on (no hop through a
queue: that is the fast path for commands); everything shared is behind a lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sim_bridge.link import planner, probes, wire
from sim_bridge.link.clock import ClockOffset
from sim_bridge.link.faults import Faults
from sim_bridge.link.mmcf import TopicClass, Weights
from sim_bridge.link.monitor import LinkMonitor
from sim_bridge.link.receiver import Arrival, ReceivePath
from sim_bridge.link.sender import OutStream, SendPath
from sim_bridge.link.spec import LinkConfig, TopicRule
from sim_bridge.link.status import LinkFigures, Status, link_status, stream_status
from sim_bridge.link.workers import LatestWorker
from sim_bridge.safety import Throttle

PROBE_KEY = "sern/probe"
REPORT_KEY = "sern/report"
_PRIORITIES = ("REAL_TIME", "INTERACTIVE_HIGH", "INTERACTIVE_LOW", "DATA_HIGH", "DATA", "DATA_LOW", "BACKGROUND")


class RosPort(Protocol):
    """What the site needs from the ROS side."""

    def publish(self, topic: str, type_name: str, data: bytes, latched: bool) -> bool:
        """Publish serialized ``data``; True when someone here is subscribed."""

    def has_subscribers(self, topic: str) -> bool: ...

    def publish_stop(self, topic: str) -> None:
        """Publish the all-zero message of ``topic``'s type on it (a zero Twist: stop)."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...


@dataclass
class LinkOptions:
    adaptive: bool
    weights: Weights
    budget_bps: float
    profile: str
    best_effort_transport: bool
    max_command_age_s: float = 0.3
    max_message_bytes: int = 8 * 1024 * 1024
    clock_offset_s: float = 0.0  # added to this site's wall clock (to emulate sites whose clocks differ)


class LinkSite:
    """A site's end of the link; see the module docstring."""

    def __init__(self, session, config: LinkConfig, site: str, options: LinkOptions, port: RosPort):
        import zenoh

        self.z = zenoh
        self.session = session
        self.config = config
        self.site = site
        self.other = config.other(site)
        self.options = options
        self.port = port
        self.wall: Callable[[], float] = lambda: time.time() + options.clock_offset_s
        self.monitor = LinkMonitor()
        self.clock = ClockOffset()
        self.faults = Faults(port.warning)
        self.receiver = ReceivePath(
            config, self.other, self.clock, self.faults, options.max_message_bytes, options.max_command_age_s, self.wall
        )
        self.sender = SendPath(
            random.randint(0, 0xFFFF), self._put, self.faults, port.warning, options.max_command_age_s, self.wall
        )
        self.out: dict[str, OutStream] = {}
        self.link_up = False
        self._decoders: dict[str, LatestWorker] = {}
        self._decoders_lock = threading.Lock()
        self._replaced: list[tuple[OutStream, object]] = []  # publishers plan replaced, to undeclare
        self._throttle = Throttle(5.0)
        fast = {"reliability": zenoh.Reliability.BEST_EFFORT, "priority": zenoh.Priority.REAL_TIME}
        fast |= {"congestion_control": zenoh.CongestionControl.DROP, "express": True}
        self._ping_pub = session.declare_publisher(f"{PROBE_KEY}/{site}/ping", **fast)
        self._pong_pub = session.declare_publisher(f"{PROBE_KEY}/{site}/pong", **fast)
        self._report_pub = session.declare_publisher(
            f"{REPORT_KEY}/{site}", reliability=zenoh.Reliability.RELIABLE, priority=zenoh.Priority.DATA_HIGH
        )
        self._subs = [
            session.declare_subscriber(f"{PROBE_KEY}/{self.other}/ping", self._guarded(self._on_ping)),
            session.declare_subscriber(f"{PROBE_KEY}/{self.other}/pong", self._guarded(self._on_pong)),
            session.declare_subscriber(f"{REPORT_KEY}/{self.other}", self._guarded(self._on_report)),
            session.declare_subscriber(f"{wire.KEY_PREFIX}/{self.other}/**", self._guarded(self._on_remote)),
        ]

    def _guarded(self, callback: Callable) -> Callable:
        """A zenoh callback that cannot raise: bad input is handled inside; anything else
        is a bug, said once per 5 s rather than as a traceback per frame."""

        def guarded(sample) -> None:
            try:
                callback(sample)
            except Exception as err:
                if self._throttle.ready(f"error in {callback.__name__}", time.monotonic()):
                    self.port.warning(f"{callback.__name__}: unexpected {type(err).__name__}: {err}")

        return guarded

    # ---- local topics → the other site ------------------------------------------------------
    def add_outgoing(self, topic: str, type_name: str, rule: TopicRule) -> OutStream:
        stream = OutStream(topic, type_name, rule)
        stream.config = planner.initial_config(stream, self.options.adaptive)
        stream.publisher = self._publisher(stream)
        self.out[topic] = stream
        self.sender.track(stream)
        return stream

    def offer(self, stream: OutStream, data: bytes) -> None:
        """A message from the local topic (on the executor)."""
        self.sender.offer(stream, data, time.monotonic())

    def _publisher(self, stream: OutStream):
        z, cfg = self.z, stream.config
        return self.session.declare_publisher(
            wire.topic_key(self.site, stream.topic),
            reliability=z.Reliability.RELIABLE if cfg.reliable else z.Reliability.BEST_EFFORT,
            congestion_control=z.CongestionControl.BLOCK if cfg.block else z.CongestionControl.DROP,
            priority=getattr(z.Priority, _PRIORITIES[cfg.priority - 1]),
            express=stream.rule.topic_class in (TopicClass.CONTROL, TopicClass.STATE),
        )

    def _put(self, stream: OutStream, packed: bytes, now: float) -> None:
        try:
            with stream.put_lock:
                stream.publisher.put(packed)
        except self.z.ZError as err:
            if self._throttle.ready(stream.topic, now):
                self.port.warning(f"{stream.topic}: send failed: {err}")
            return
        stream.traffic.note_sent(now, len(packed))

    # ---- the other site's topics → here ------------------------------------------------------
    def _on_remote(self, sample) -> None:
        """A frame from the other site (on a zenoh thread)."""
        arrival = self.receiver.accept(str(sample.key_expr), sample.payload.to_bytes())
        if arrival is None:
            return
        if not arrival.is_image:
            self._deliver(arrival)  # at once, on this thread: the path commands take
            return
        topic = arrival.stream.topic
        with self._decoders_lock:
            worker = self._decoders.get(topic)
            if worker is None:
                worker = self._decoders[topic] = LatestWorker(
                    f"decode {topic}",
                    self._deliver,
                    lambda: self.faults.record("images_superseded", quiet=True),
                    lambda err: self.port.warning(f"{topic}: {type(err).__name__}: {err}"),
                )
        worker.submit(arrival)

    def _deliver(self, arrival: Arrival) -> None:
        data = self.receiver.decode(arrival)
        if data is None or not self.receiver.fresh(arrival):  # fresh again: decoding took time
            return
        stream = arrival.stream
        heard = self.port.publish(stream.topic, stream.type_name, data, stream.rule.latched)
        self.receiver.delivered(arrival, data, heard)

    def deliver_unheard(self) -> None:
        """A control value that arrived before anyone here subscribed is not lost: it is
        published again as soon as a subscriber appears (while still fresh)."""
        for stream, data in self.receiver.unheard_due(self.port.has_subscribers):
            self.port.publish(stream.topic, stream.type_name, data, stream.rule.latched)

    def stop_silent(self) -> None:
        """Publish a stop on each command topic that went silent (``stop_after_silent_s``),
        so the robot stops before its own watchdog would."""
        for stream in self.receiver.silent_streams():
            self.port.publish_stop(stream.topic)
            silent = stream.rule.stop_after_silent_s
            self.faults.record("silence_stops", f"{stream.topic}: nothing for {silent:g} s: published a stop")

    # ---- probes and reports -------------------------------------------------------------------
    def probe(self) -> None:
        """Send a probe; log the link going up or down (the latest values go first on up)."""
        now = time.monotonic()
        self._ping_pub.put(probes.ping(self.monitor.probe_sent(now), self.wall()))
        estimate = self.monitor.estimate(now)
        if estimate.up and not self.link_up:
            self.link_up = True
            self.port.info(f"link to {self.other} up (RTT {estimate.rtt_s * 1000:.1f} ms)")
            self.sender.resend_latest()
        elif not estimate.up and self.link_up:
            self.link_up = False
            self.port.warning(f"link to {self.other} down: no probe answered for {self.monitor.down_after_s:g} s")

    def _on_ping(self, sample) -> None:
        t2 = self.wall()
        try:
            probe_id, t1 = probes.parse_ping(sample.payload.to_bytes())
        except probes.ProbeError as err:
            self.faults.record("malformed_probes", f"probe from {self.other}: {err}")
            return
        self._pong_pub.put(probes.pong(probe_id, t1, t2, self.wall()))

    def _on_pong(self, sample) -> None:
        now, t4 = time.monotonic(), self.wall()
        try:
            answer = probes.parse_pong(sample.payload.to_bytes())
        except probes.ProbeError as err:
            self.faults.record("malformed_probes", f"probe answer from {self.other}: {err}")
            return
        if self.monitor.probe_answered(answer.probe_id, now):
            self.clock.add(answer.t1, answer.t2, answer.t3, t4)

    def _on_report(self, sample) -> None:
        try:
            report = probes.parse_report(sample.payload.to_bytes())
        except probes.ReportError as err:
            self.faults.record("malformed_reports", f"report from {self.other}: {err}")
            return
        for topic, r in report.items():
            stream = self.out.get(topic)
            if stream is None:
                continue
            with self.sender.lock:
                stream.delivered = (stream.delivered[0] + r.expected, stream.delivered[1] + r.received)
                stream.remote_latency_ms = r.latency_ms_median
                cfg = stream.config
            # Images are left out: their drops at our own queue under load are not link loss.
            # So are redundant streams: a loss seen through several copies says little of p.
            small = stream.rule.topic_class in (TopicClass.CONTROL, TopicClass.STATE)
            if small and cfg is not None and not cfg.reliable and cfg.copies == 1:
                self.monitor.traffic_report(r.expected, r.received, r.packets, cfg.copies)

    def report(self) -> None:
        """Tell the other site what arrived from it since the last report."""
        topics = self.receiver.take_report()
        if topics:
            self._report_pub.put(probes.report(topics))

    # ---- the MMCF ----------------------------------------------------------------------------
    def plan(self) -> None:
        self._undeclare_replaced()
        # Images wait for their first profile: without it the MMCF knows no encoding.
        streams = [s for s in self.out.values() if s.traffic.source_count >= 3 and (s.encodings or not s.is_image)]
        if not streams:
            return
        link = planner.link_state(
            self.monitor.estimate(time.monotonic()), self.options.budget_bps, self.options.best_effort_transport
        )
        decisions = planner.plan(streams, link, self.options.weights, self.options.adaptive)
        for stream in streams:
            decision = decisions[stream.topic]
            stream.prediction = decision.prediction
            if decision.config == stream.config:
                continue
            with self.sender.lock:
                old, stream.config = stream.config, decision.config
                if planner.needs_new_publisher(old, decision.config):
                    self._replaced.append((stream, stream.publisher))
                    stream.publisher = self._publisher(stream)
            self.port.info(
                f"{stream.topic}: {decision.config.label()} (RTT {link.rtt_s * 1000:.0f} ms, loss {link.loss:.1%}, "
                f"J {decision.prediction.cost:.3f})"
            )

    def _undeclare_replaced(self) -> None:
        """Undeclare the publishers ``plan`` replaced that no put is using any more (one in
        use, a put blocked on a congested link, waits for the next plan; never the executor)."""
        waiting = []
        for stream, publisher in self._replaced:
            if not stream.put_lock.acquire(blocking=False):
                waiting.append((stream, publisher))
                continue
            try:
                publisher.undeclare()
            finally:
                stream.put_lock.release()
        self._replaced = waiting

    # ---- diagnostics ---------------------------------------------------------------------------
    def statuses(self) -> list[Status]:
        now = time.monotonic()
        peers = len(list(self.session.info.peers_zid())) + len(list(self.session.info.routers_zid()))
        figures = LinkFigures(
            self.site,
            self.other,
            peers,
            self.monitor.estimate(now),
            sum(s.traffic.throughput_bps(now) for s in self.out.values()),
            self.options.budget_bps,
            self.options.adaptive,
            self.options.profile,
            self.clock.offset_s(),
            self.clock.uncertainty_s(),
            self.options.max_command_age_s,
            self.faults.snapshot(),
        )
        return [link_status(figures), *(stream_status(self.site, s, now) for s in list(self.out.values()))]

    def close(self) -> None:
        self.sender.stop()
        with self._decoders_lock:
            workers = list(self._decoders.values())
        for worker in workers:
            worker.stop()
