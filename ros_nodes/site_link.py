"""``site_link``: carries ROS topics between two sites over Zenoh, adapted by the MMCF.

One runs at each site (``site`` names it, ``config`` is the shared link file). DDS stays
local to each site; topics matching the config whose ``from`` is this site are read here,
serialized, and sent over the Zenoh session; topics arriving from the other site are
published here under the same names and types. Per outgoing topic the Multi-Metric Cost
Function (``sim_bridge.link.mmcf``) chooses rate, reliability and redundancy, priority,
congestion control and, for images, codec, quality and scale, from what the link monitor
measures (probe RTT and loss, the receiver's reports). ``adaptive: false`` pins the
"plain ROS" configuration instead (everything reliable, raw, full rate) for comparison.

Visibility: ``/diagnostics`` (per link and per topic: the configuration, each cost term,
the predicted and measured figures) and a log line on every change. ``sern link status``
prints them live. When the link comes back after an outage, the latest value of every
control and state topic is sent again at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import lz4.block
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from ros_nodes import conversions as conv
from ros_nodes.common import DIAGNOSTICS_QOS
from ros_nodes.msg_definitions import DefinitionError, message_class
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, positive
from ros_nodes.runtime import main_for
from sim_bridge.link import codec as imgcodec
from sim_bridge.link import wire
from sim_bridge.link.mmcf import (
    IMAGE_ENCODINGS,
    LinkState,
    Stream,
    StreamConfig,
    TopicClass,
    optimise,
    predict,
    static_plain_ros,
)
from sim_bridge.link.monitor import LinkMonitor, SequenceTracker, StreamTraffic
from sim_bridge.link.spec import LinkConfigError, TopicRule, load_link_config
from sim_bridge.link.transport import SessionSettings, TransportError, open_session, security_problems

PARAMS = [
    Param("site", "", "this site's name (one of the config's sites)"),
    Param("config", "", "site-link configuration file (topics, budget, profile)"),
    Param("mode", "peer", "zenoh mode: peer, client or router"),
    Param("listen", [""], "endpoints to listen on, e.g. [tcp/0.0.0.0:7447, udp/0.0.0.0:7448]"),
    Param("connect", [""], "endpoints of the other site, e.g. [tcp/10.0.0.1:7447, udp/10.0.0.1:7448]"),
    Param("user", "", "user name for zenoh user/password authentication"),
    Param("password_file", "", "file holding this site's password (first line)"),
    Param("credentials_file", "", "'user:password' lines of the peers this site accepts"),
    Param("tls_root_ca", "", "CA certificate for tls/ endpoints"),
    Param("tls_certificate", "", "this site's certificate (tls/ listen)"),
    Param("tls_private_key", "", "this site's private key (tls/ listen)"),
    Param("mtls", False, "mutual TLS: demand client certificates signed by tls_root_ca, present ours"),
    Param("tls_client_certificate", "", "this site's client certificate (tls/quic connect, mtls)"),
    Param("tls_client_private_key", "", "this site's client private key (tls/quic connect, mtls)"),
    Param("insecure", False, "true: run without authentication/encryption on a network on purpose"),
    Param("adaptive", True, "true: the MMCF adapts each topic; false: plain ROS configuration"),
    Param("profile", "", "mission profile (empty: the config's): nominal, contested, bandwidth_starved"),
    Param("budget_mbps", 0.0, "bandwidth budget (0: the config's)", non_negative),
    Param("plan_period_s", 1.0, "how often the MMCF re-plans", positive),
    Param("probe_rate_hz", 10.0, "link probes per second", positive),
    Param("discovery_period_s", 1.0, "how often to look for new local topics", positive),
]

PROBE_KEY = "sern/probe"
COPY_SPACING_S = 0.003  # between redundant copies of a best-effort message
REPORT_KEY = "sern/report"


@dataclass
class OutStream:
    """A local topic sent to the other site."""

    topic: str
    type_name: str
    rule: TopicRule
    traffic: StreamTraffic = field(default_factory=StreamTraffic)
    config: StreamConfig | None = None
    publisher: object = None
    seq: int = 0
    last_sent: float = -math.inf
    latest: bytes | None = None
    size_bytes: float = 0.0
    compressed_bytes: float | None = None
    encodings: dict = field(default_factory=dict)
    profiled_at: float = -math.inf
    prediction: object = None
    delivered: tuple[int, int] = (0, 0)  # from the receiver's reports: (expected, received)
    native_rate_hz: float = 0.0  # the topic's rate as planned with (moves only on > 10 % change)
    remote_latency_ms: float = math.nan


@dataclass
class InStream:
    """A topic arriving from the other site."""

    topic: str
    type_name: str
    publisher: object
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    epoch: int = -1
    latencies: list[float] = field(default_factory=list)
    packets: int = 1
    latest: bytes | None = None
    keep_latest: bool = False  # control/state: hand the latest value to late subscribers
    unheard: bool = False  # the latest value was published with nobody subscribed


def _qos(latched: bool, reliable: bool = True) -> QoSProfile:
    if latched:
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=50,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


class SiteLink(Node):
    def __init__(self):
        super().__init__("site_link")
        p = declare_params(self, PARAMS)
        self.p = p
        problems = []
        if not p.site:
            problems.append("'site': give this site's name")
        if not p.config:
            problems.append("'config': give the site-link configuration file")
        if problems:
            raise ParameterError(self.get_name(), problems)
        try:
            self.link_config = load_link_config(p.config)
            self.other = self.link_config.other(p.site)
        except LinkConfigError as err:
            raise ParameterError(self.get_name(), [f"'config': {err}"]) from None
        except ValueError as err:
            raise ParameterError(self.get_name(), [f"'site': {err}"]) from None
        password = ""
        if p.password_file:
            try:
                password = Path(p.password_file).read_text().splitlines()[0].strip()
            except (OSError, IndexError) as err:
                raise ParameterError(self.get_name(), [f"'password_file': cannot read it ({err})"]) from None
        self.settings = SessionSettings(
            mode=p.mode,
            listen=[e for e in p.listen if e],
            connect=[e for e in p.connect if e],
            user=p.user,
            password=password,
            credentials_file=p.credentials_file,
            tls_root_ca=p.tls_root_ca,
            tls_certificate=p.tls_certificate,
            tls_private_key=p.tls_private_key,
            mtls=p.mtls,
            tls_client_certificate=p.tls_client_certificate,
            tls_client_private_key=p.tls_client_private_key,
            insecure=p.insecure,
        )
        try:
            self.session = open_session(self.settings)
        except TransportError as err:
            raise ParameterError(self.get_name(), err.problems) from None
        for problem in security_problems(self.settings):  # only what insecure:=true let through
            self.get_logger().warning(f"INSECURE (insecure:=true): {problem}")
        import zenoh

        self.zenoh = zenoh
        self.weights = self.link_config.weights_for(p.profile or None)
        self.budget_bps = (p.budget_mbps or self.link_config.budget_mbps) * 1e6
        self.epoch = random.randint(0, 0xFFFF)
        self.lock = threading.Lock()
        self.out: dict[str, OutStream] = {}
        self.incoming: dict[str, InStream] = {}
        self.monitor = LinkMonitor()
        self._copies = DelayedCalls()
        self.link_up = False
        self._probe_pub = self.session.declare_publisher(
            f"{PROBE_KEY}/{p.site}/ping",
            reliability=zenoh.Reliability.BEST_EFFORT,
            priority=zenoh.Priority.REAL_TIME,
            congestion_control=zenoh.CongestionControl.DROP,
            express=True,
        )
        self._pong_pub = self.session.declare_publisher(
            f"{PROBE_KEY}/{p.site}/pong",
            reliability=zenoh.Reliability.BEST_EFFORT,
            priority=zenoh.Priority.REAL_TIME,
            congestion_control=zenoh.CongestionControl.DROP,
            express=True,
        )
        self._report_pub = self.session.declare_publisher(
            f"{REPORT_KEY}/{p.site}", reliability=zenoh.Reliability.RELIABLE, priority=zenoh.Priority.DATA_HIGH
        )
        self._subs = [
            self.session.declare_subscriber(f"{PROBE_KEY}/{self.other}/ping", self._on_ping),
            self.session.declare_subscriber(f"{PROBE_KEY}/{self.other}/pong", self._on_pong),
            self.session.declare_subscriber(f"{REPORT_KEY}/{self.other}", self._on_report),
            self.session.declare_subscriber(f"{wire.KEY_PREFIX}/{self.other}/**", self._on_remote),
        ]
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_timer(1.0 / p.probe_rate_hz, self._probe)
        self.create_timer(p.discovery_period_s, self._discover)
        self.create_timer(p.plan_period_s, self._plan)
        self.create_timer(1.0, self._report_and_diagnose)
        self.create_timer(0.1, self._deliver_unheard)
        self._discover()
        mode = f"adaptive (MMCF, profile {p.profile or self.link_config.profile})" if p.adaptive else "static plain ROS"
        self.get_logger().info(
            f"site {p.site} ↔ {self.other}: {mode}, budget {self.budget_bps / 1e6:g} Mbit/s, "
            f"listen {self.settings.listen or '-'}, connect {self.settings.connect or '-'}"
        )

    # ---- local topics → the other site -------------------------------------------------
    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.out or topic in self.incoming or len(types) != 1:
                continue
            rule = self.link_config.rule_for(topic, types[0])
            if rule is None or rule.from_ != self.p.site:
                continue
            try:
                msg_class = message_class(types[0])
            except DefinitionError as err:
                self.get_logger().warning(f"cannot carry {topic}: {err}")
                continue
            stream = OutStream(topic, types[0], rule)
            stream.config = self._initial_config(stream)
            stream.publisher = self._zenoh_publisher(stream)
            self.out[topic] = stream
            self.create_subscription(msg_class, topic, self._on_local(stream), _qos(rule.latched, False), raw=True)
            self.get_logger().info(f"carrying {topic} ({types[0]}, {rule.cls}) to {self.other}")

    def _initial_config(self, stream: OutStream) -> StreamConfig:
        s = self._stream_model(stream)
        if not self.p.adaptive:
            return static_plain_ros(s)
        cls = stream.rule.topic_class
        small = cls in (TopicClass.CONTROL, TopicClass.STATE)
        # Until the link is measured: reliable for the small, cheap JPEG for images.
        enc = imgcodec.ImageEncoding(wire.Codec.JPEG, 50, 0.5) if cls == TopicClass.IMAGE else None
        return StreamConfig(1e6, True, 1, 1 if cls == TopicClass.CONTROL else (2 if small else 6), small, enc)

    def _zenoh_publisher(self, stream: OutStream):
        z = self.zenoh
        cfg = stream.config
        return self.session.declare_publisher(
            wire.topic_key(self.p.site, stream.topic),
            reliability=z.Reliability.RELIABLE if cfg.reliable else z.Reliability.BEST_EFFORT,
            congestion_control=z.CongestionControl.BLOCK if cfg.block else z.CongestionControl.DROP,
            priority=_priority(z, cfg.priority),
            express=stream.rule.topic_class in (TopicClass.CONTROL, TopicClass.STATE),
        )

    def _on_local(self, stream: OutStream):
        def callback(data: bytes) -> None:
            now = time.monotonic()
            with self.lock:
                stream.traffic.note_source(now, len(data))
                stream.size_bytes = len(data) if stream.size_bytes == 0 else 0.9 * stream.size_bytes + 0.1 * len(data)
                stream.latest = data
                cfg = stream.config
                period = 1.0 / cfg.rate_hz if cfg.rate_hz > 0 else 0.0
                if now - stream.last_sent < period * 0.9:
                    return  # decimated
                stream.last_sent = now
            self._send(stream, data, now)

        return callback

    def _send(self, stream: OutStream, data: bytes, now: float) -> None:
        cfg = stream.config
        cls = stream.rule.topic_class
        try:
            if cls == TopicClass.IMAGE and cfg.encoding is not None:
                payload, kind = self._encode_image(stream, data, cfg.encoding)
            elif cfg.compress:
                payload, kind = lz4.block.compress(data, store_size=True), wire.Codec.CDR_LZ4
            else:
                payload, kind = data, wire.Codec.CDR
        except (ValueError, TypeError) as err:
            self.get_logger().warning(f"{stream.topic}: cannot encode ({err}); sending it raw")
            payload, kind = data, wire.Codec.CDR
        if cls != TopicClass.IMAGE and kind == wire.Codec.CDR:
            c = len(lz4.block.compress(data, store_size=True))
            stream.compressed_bytes = c if stream.compressed_bytes is None else 0.9 * stream.compressed_bytes + 0.1 * c
        with self.lock:
            seq = stream.seq
            stream.seq += 1
            publisher = stream.publisher
        for copy in range(cfg.copies):
            env = wire.Envelope(stream.type_name, seq, time.time(), kind, payload, copy=copy, epoch=self.epoch)
            packed = wire.pack(env)
            if copy == 0:
                self._put(stream, publisher, packed, now)
            else:
                # Spread the copies out so one burst of loss (or one batch) cannot take all.
                self._copies.schedule(COPY_SPACING_S * copy, self._put, stream, publisher, packed, now)

    def _put(self, stream: OutStream, publisher, packed: bytes, now: float) -> None:
        try:
            publisher.put(packed)
        except self.zenoh.ZError as err:
            self.get_logger().warning(f"{stream.topic}: send failed: {err}", throttle_duration_sec=5.0)
            return
        stream.traffic.note_sent(now, len(packed))

    def _encode_image(self, stream: OutStream, data: bytes, enc) -> tuple[bytes, wire.Codec]:
        msg = deserialize_message(data, Image)
        frame = image_array(msg)
        now = time.monotonic()
        if now - stream.profiled_at > 30.0:
            stream.encodings = imgcodec.profile_encodings(frame, IMAGE_ENCODINGS)
            stream.profiled_at = now
        meta = wire.ImageMeta(
            msg.header.stamp.sec, msg.header.stamp.nanosec, msg.width, msg.height, msg.header.frame_id
        )
        return wire.pack_image(meta, imgcodec.encode(frame, enc)), enc.codec

    # ---- the other site's topics → here --------------------------------------------------
    def _on_remote(self, sample) -> None:
        key = str(sample.key_expr)
        try:
            env = wire.unpack(sample.payload.to_bytes())
        except wire.WireError as err:
            self.get_logger().warning(f"{key}: {err}", throttle_duration_sec=5.0)
            return
        _, topic = wire.key_topic(key)
        stream = self.incoming.get(topic)
        if stream is None:
            stream = self._incoming_stream(topic, env.type_name)
            if stream is None:
                return
        with self.lock:
            if env.epoch != stream.epoch:
                stream.tracker.reset()
                stream.epoch = env.epoch
            if not stream.tracker.accept(env.seq):
                return
            stream.latencies.append((time.time() - env.send_time) * 1000.0)
            stream.packets = max(1, math.ceil(len(env.payload) / 1400))
        try:
            data = self._decode(env)
        except (ValueError, lz4.block.LZ4BlockError) as err:
            self.get_logger().warning(f"{topic}: cannot decode ({err})", throttle_duration_sec=5.0)
            return
        stream.latest = data
        stream.unheard = stream.keep_latest and stream.publisher.get_subscription_count() == 0
        stream.publisher.publish(data)

    def _incoming_stream(self, topic: str, type_name: str) -> InStream | None:
        rule = self.link_config.rule_for(topic, type_name)
        if rule is None or rule.from_ != self.other:
            self.get_logger().warning(f"{topic} ({type_name}) arrived but the config does not carry it", once=True)
            return None
        try:
            msg_class = message_class(type_name)
        except DefinitionError as err:
            self.get_logger().warning(f"cannot publish {topic}: {err}", once=True)
            return None
        with self.lock:
            if topic in self.incoming:
                return self.incoming[topic]
            publisher = self.create_publisher(msg_class, topic, _qos(rule.latched, True))
            stream = InStream(topic, type_name, publisher)
            stream.keep_latest = rule.topic_class in (TopicClass.CONTROL, TopicClass.STATE)
            self.incoming[topic] = stream
        self.get_logger().info(f"publishing {topic} ({type_name}) from {self.other}")
        return stream

    def _decode(self, env: wire.Envelope) -> bytes:
        if env.codec == wire.Codec.CDR:
            return env.payload
        if env.codec == wire.Codec.CDR_LZ4:
            return lz4.block.decompress(env.payload)
        meta, encoded = wire.unpack_image(env.payload)
        frame = imgcodec.decode(encoded, env.codec)
        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = meta.stamp_sec, meta.stamp_nanosec
        msg.header.frame_id = meta.frame_id
        msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
        msg.encoding = "mono8" if frame.ndim == 2 else "rgb8"
        msg.step = msg.width * (1 if frame.ndim == 2 else 3)
        msg.data = np.ascontiguousarray(frame).tobytes()
        return serialize_message(msg)

    def _deliver_unheard(self) -> None:
        """A control value that arrived before anyone here subscribed is not lost: it is
        published again as soon as a subscriber appears."""
        for stream in list(self.incoming.values()):
            if stream.unheard and stream.latest is not None and stream.publisher.get_subscription_count() > 0:
                stream.unheard = False
                stream.publisher.publish(stream.latest)

    # ---- link monitoring -----------------------------------------------------------------
    def _probe(self) -> None:
        pid = self.monitor.probe_sent(time.monotonic())
        self._probe_pub.put(json.dumps({"id": pid}).encode())
        estimate = self.monitor.estimate(time.monotonic())
        if estimate.up and not self.link_up:
            self.link_up = True
            self.get_logger().info(f"link to {self.other} up (RTT {estimate.rtt_s * 1000:.1f} ms)")
            self._resend_latest()
        elif not estimate.up and self.link_up:
            self.link_up = False
            self.get_logger().warning(
                f"link to {self.other} down: no probe answered for {self.monitor.down_after_s:g} s"
            )

    def _on_ping(self, sample) -> None:
        self._pong_pub.put(sample.payload.to_bytes())

    def _on_pong(self, sample) -> None:
        try:
            pid = json.loads(sample.payload.to_bytes())["id"]
        except (ValueError, KeyError):
            return
        self.monitor.probe_answered(pid, time.monotonic())

    def _resend_latest(self) -> None:
        """After an outage, the latest value of each control and state topic goes first."""
        for stream in list(self.out.values()):
            if stream.latest is not None and (
                stream.rule.topic_class in (TopicClass.CONTROL, TopicClass.STATE) or stream.rule.latched
            ):
                self._send(stream, stream.latest, time.monotonic())

    def _on_report(self, sample) -> None:
        try:
            report = json.loads(sample.payload.to_bytes())
        except ValueError:
            return
        for topic, r in report.items():
            stream = self.out.get(topic)
            if stream is None:
                continue
            stream.delivered = (stream.delivered[0] + r["expected"], stream.delivered[1] + r["received"])
            stream.remote_latency_ms = r.get("latency_ms_median", math.nan)
            small = stream.rule.topic_class in (TopicClass.CONTROL, TopicClass.STATE)
            # Images are left out: their drops at our own queue under load are not link loss.
            # So are redundant streams: a loss seen through several copies says little of p.
            if small and stream.config is not None and not stream.config.reliable and stream.config.copies == 1:
                self.monitor.traffic_report(r["expected"], r["received"], r.get("packets", 1), stream.config.copies)

    def _report_and_diagnose(self) -> None:
        report = {}
        with self.lock:
            for topic, stream in self.incoming.items():
                expected, received = stream.tracker.take_window()
                lat = stream.latencies
                report[topic] = {
                    "expected": expected,
                    "received": received,
                    "packets": stream.packets,
                    "latency_ms_median": float(np.median(lat)) if lat else None,
                }
                stream.latencies = []
        if report:
            self._report_pub.put(json.dumps(report).encode())
        self.diag_pub.publish(self._diagnostics())

    # ---- the MMCF --------------------------------------------------------------------------
    def _stream_model(self, stream: OutStream) -> Stream:
        rule = stream.rule
        measured = stream.traffic.rate_hz() or max(rule.min_rate_hz, 1.0)
        if not stream.native_rate_hz or abs(measured - stream.native_rate_hz) > 0.1 * stream.native_rate_hz:
            stream.native_rate_hz = round(measured, 1)
        rate = stream.native_rate_hz
        return Stream(
            stream.topic,
            rule.topic_class,
            native_rate_hz=rate,
            message_bytes=stream.size_bytes or 100.0,
            min_rate_hz=min(rule.min_rate_hz, rate),
            min_delivery=rule.required_delivery,
            encodings=dict(stream.encodings),
            compressed_bytes=stream.compressed_bytes,
        )

    def link_state(self) -> LinkState:
        est = self.monitor.estimate(time.monotonic())
        rtt = est.rtt_s if math.isfinite(est.rtt_s) else 0.001
        bound = LinkState.upper_bound(est.loss, est.samples)
        return LinkState(rtt, est.loss, self.budget_bps, self.settings.has_best_effort_link(), bound)

    def _plan(self) -> None:
        streams = [s for s in self.out.values() if s.traffic.source_count >= 3]
        if not streams:
            return
        models = [self._stream_model(s) for s in streams]
        link = self.link_state()
        if self.p.adaptive:
            current = {s.topic: s.config for s in streams if s.config is not None}
            plan = optimise(models, link, self.weights, current)
            chosen = {name: c.config for name, c in plan.choices.items()}
            predictions = {name: c.prediction for name, c in plan.choices.items()}
        else:
            chosen = {m.name: static_plain_ros(m) for m in models}
            predictions = {
                m.name: predict(m, chosen[m.name], link, _load(models, chosen, m.name), self.weights) for m in models
            }
        for stream in streams:
            cfg = chosen[stream.topic]
            stream.prediction = predictions[stream.topic]
            if cfg != stream.config:
                old = stream.config
                with self.lock:
                    reopen = old is None or (cfg.reliable, cfg.block, cfg.priority) != (
                        old.reliable,
                        old.block,
                        old.priority,
                    )
                    stream.config = cfg
                    if reopen:
                        stream.publisher.undeclare()
                        stream.publisher = self._zenoh_publisher(stream)
                self.get_logger().info(
                    f"{stream.topic}: {cfg.label()} (RTT {link.rtt_s * 1000:.0f} ms, loss {link.loss:.1%}, "
                    f"J {stream.prediction.cost:.3f})"
                )

    # ---- diagnostics ---------------------------------------------------------------------
    def _diagnostics(self) -> DiagnosticArray:
        now = time.monotonic()
        est = self.monitor.estimate(now)
        msg = DiagnosticArray()
        msg.header.stamp = conv.time_msg(time.time())
        link = DiagnosticStatus()
        link.name = f"site_link {self.p.site}: link to {self.other}"
        link.hardware_id = self.p.site
        peers = len(list(self.session.info.peers_zid())) + len(list(self.session.info.routers_zid()))
        if peers == 0:
            link.level, link.message = (
                DiagnosticStatus.ERROR,
                "no session with the other site (wrong endpoint, credentials, or peer down)",
            )
        elif not est.up:
            link.level, link.message = DiagnosticStatus.WARN, "session open but probes unanswered: link down"
        else:
            link.level, link.message = DiagnosticStatus.OK, "link up"
        total_bps = sum(s.traffic.throughput_bps(now) for s in self.out.values())
        values = {
            "rtt_ms": est.rtt_s * 1000.0,
            "loss_pct": est.loss * 100.0,
            "up": est.up,
            "peers": peers,
            "sent_mbps": total_bps / 1e6,
            "budget_mbps": self.budget_bps / 1e6,
            "within_budget": total_bps <= self.budget_bps,
            "adaptive": self.p.adaptive,
            "profile": self.p.profile or self.link_config.profile,
        }
        link.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
        msg.status.append(link)
        for stream in self.out.values():
            st = DiagnosticStatus()
            st.name = f"site_link {self.p.site}: {stream.topic}"
            st.hardware_id = self.p.site
            st.level = DiagnosticStatus.OK
            st.message = stream.config.label() if stream.config else "waiting"
            pred = stream.prediction
            expected, received = stream.delivered
            vals = {
                "class": stream.rule.cls,
                "source_rate_hz": stream.traffic.rate_hz(),
                "sent_kbps": stream.traffic.throughput_bps(now) / 1e3,
                "delivered": received / expected if expected else math.nan,
                "delivered_expected": expected,
                "delivered_received": received,
                "remote_latency_ms": stream.remote_latency_ms,
            }
            if pred is not None:
                vals.update(
                    {
                        "predicted_latency_ms": pred.latency_s * 1000.0,
                        "predicted_delivery": pred.delivery,
                        "predicted_cpu": pred.cpu,
                        "predicted_kbps": pred.bandwidth_bps / 1e3,
                        "cost": pred.cost,
                        **{f"cost_{k}": v for k, v in pred.terms.items()},
                    }
                )
                if not pred.feasible:
                    st.level, st.message = DiagnosticStatus.WARN, f"{st.message}: {pred.why}"
            st.values = [KeyValue(key=k, value=_fmt(v)) for k, v in vals.items()]
            msg.status.append(st)
        return msg

    def on_shutdown(self) -> None:
        self._copies.stop()
        with contextlib.suppress(Exception):
            self.session.close()


class DelayedCalls:
    """A thread that runs calls at given delays (redundant copies), in time order."""

    def __init__(self):
        import heapq

        self._heapq = heapq
        self._queue: list = []
        self._cond = threading.Condition()
        self._stop = False
        self._n = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="site_link_copies")
        self._thread.start()

    def schedule(self, delay_s: float, fn, *args) -> None:
        with self._cond:
            self._n += 1
            self._heapq.heappush(self._queue, (time.monotonic() + delay_s, self._n, fn, args))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = None if not self._queue else max(0.0, self._queue[0][0] - time.monotonic())
                    self._cond.wait(timeout=wait)
                if self._stop:
                    return
                _, _, fn, args = self._heapq.heappop(self._queue)
            fn(*args)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()


def image_array(msg: Image) -> np.ndarray:
    """A sensor_msgs/Image as an RGB (or mono) array; other encodings are refused."""
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.encoding in ("rgb8", "bgr8"):
        frame = data.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
        return frame[..., ::-1].copy() if msg.encoding == "bgr8" else frame
    if msg.encoding == "mono8":
        return data.reshape(msg.height, msg.step)[:, : msg.width]
    raise ValueError(f"image encoding {msg.encoding!r} is not rgb8, bgr8 or mono8")


def _priority(z, value: int):
    return {
        1: z.Priority.REAL_TIME,
        2: z.Priority.INTERACTIVE_HIGH,
        3: z.Priority.INTERACTIVE_LOW,
        4: z.Priority.DATA_HIGH,
        5: z.Priority.DATA,
        6: z.Priority.DATA_LOW,
        7: z.Priority.BACKGROUND,
    }[value]


def _load(models, chosen, name):
    from sim_bridge.link.mmcf import Load, bandwidth_bps

    load = Load()
    for m in models:
        if m.name != name:
            cfg = chosen[m.name]
            load.add(cfg.priority, bandwidth_bps(m, cfg), cfg.reliable)
    return load


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


main = main_for(SiteLink, "site_link")
