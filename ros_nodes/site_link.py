"""``site_link``: carries ROS topics between two sites over Zenoh, adapted by the MMCF.

One runs at each site (``site`` names it, ``config`` is the shared link file). DDS stays
local to each site; topics matching the config whose ``from`` is this site are read here
and sent over the Zenoh session; topics arriving from the other site are published here
under the same names and types. Per outgoing topic the Multi-Metric Cost Function
(``sim_bridge.link.mmcf``) chooses rate, reliability and redundancy, priority, congestion
control and, for images, codec, quality and scale, from what the link monitor measures.
``adaptive: false`` pins the "plain ROS" configuration instead, for comparison.

Safety: a message on a topic marked ``safety_critical`` in the config (cmd_vel) is never
published here when it is older than ``max_command_age_s``, judged by the sender's send
time and the clock offset measured from the probes; when such a topic goes silent for its
``stop_after_silent_s`` (config) this node publishes a zero message (a stop) on it, and the
robot's own watchdog stops it in any case. Frames that do not parse or ask for more than
``max_message_bytes`` are dropped and counted.

This node is the ROS side only: the link itself (zenoh, send and receive paths, probes,
MMCF glue, diagnostics content) is ``sim_bridge.link.site.LinkSite``. QoS (REP-2003): local
topics are read with a best-effort (sensor-data style) subscription, arriving topics are
published reliable (latched ones transient local). ``/diagnostics`` carries the link and
per-topic figures and the fault counters; ``sern link status`` prints them live.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ros_nodes import conversions as conv
from ros_nodes.common import DIAGNOSTICS_QOS
from ros_nodes.msg_definitions import DefinitionError, message_class
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, positive
from ros_nodes.runtime import main_for
from sim_bridge.link.site import LinkOptions, LinkSite
from sim_bridge.link.spec import LinkConfigError, load_link_config
from sim_bridge.link.status import fmt
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
    Param("max_command_age_s", 0.3, "drop safety-critical messages older than this (s)", positive),
    Param("max_message_bytes", 8 * 1024 * 1024, "largest message accepted from the other site", positive),
    Param("clock_offset_s", 0.0, "added to this site's wall clock (emulates sites whose clocks differ)"),
]


def _qos(latched: bool, reliable: bool) -> QoSProfile:
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
    """The ROS side of one site of a site link (see the module docstring)."""

    def __init__(self):
        super().__init__("site_link")
        p = declare_params(self, PARAMS)
        self.p = p
        problems = [
            f"'{k}': {why}"
            for k, why in (("site", "give this site's name"), ("config", "give the site-link configuration file"))
            if not getattr(p, k)
        ]
        if problems:
            raise ParameterError(self.get_name(), problems)
        try:
            self.link_config = load_link_config(p.config)
            self.other = self.link_config.other(p.site)
        except LinkConfigError as err:
            raise ParameterError(self.get_name(), [f"'config': {err}"]) from None
        except ValueError as err:
            raise ParameterError(self.get_name(), [f"'site': {err}"]) from None
        self.settings, self.session = self._open_session(p)
        options = LinkOptions(
            adaptive=p.adaptive,
            weights=self.link_config.weights_for(p.profile or None),
            budget_bps=(p.budget_mbps or self.link_config.budget_mbps) * 1e6,
            profile=p.profile or self.link_config.profile,
            best_effort_transport=self.settings.has_best_effort_link(),
            max_command_age_s=p.max_command_age_s,
            max_message_bytes=p.max_message_bytes,
            clock_offset_s=p.clock_offset_s,
        )
        self._remote_publishers: dict[str, object] = {}
        self._remote_lock = threading.Lock()
        self.link = LinkSite(self.session, self.link_config, p.site, options, self)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_timer(1.0 / p.probe_rate_hz, self.link.probe)
        self.create_timer(p.discovery_period_s, self._discover)
        self.create_timer(p.plan_period_s, self.link.plan)
        self.create_timer(1.0, self._report_and_diagnose)
        self.create_timer(0.1, self.link.deliver_unheard)
        self.create_timer(0.05, self.link.stop_silent)
        self._discover()
        mode = f"adaptive (MMCF, profile {options.profile})" if p.adaptive else "static plain ROS"
        self.get_logger().info(
            f"site {p.site} ↔ {self.other}: {mode}, budget {options.budget_bps / 1e6:g} Mbit/s, "
            f"listen {self.settings.listen or '-'}, connect {self.settings.connect or '-'}, "
            f"commands older than {p.max_command_age_s:g} s dropped"
        )

    def _open_session(self, p) -> tuple[SessionSettings, object]:
        """The zenoh session these parameters describe (one place: security checks go here)."""
        password = ""
        if p.password_file:
            try:
                password = Path(p.password_file).read_text().splitlines()[0].strip()
            except (OSError, IndexError) as err:
                raise ParameterError(self.get_name(), [f"'password_file': cannot read it ({err})"]) from None
        settings = SessionSettings(
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
            max_message_bytes=p.max_message_bytes,
        )
        try:
            session = open_session(settings)
        except TransportError as err:
            raise ParameterError(self.get_name(), err.problems) from None
        for problem in security_problems(settings):  # only what insecure:=true let through
            self.get_logger().warning(f"INSECURE (insecure:=true): {problem}")
        return settings, session

    # ---- local topics → the other site -------------------------------------------------
    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.link.out or topic in self._remote_publishers or len(types) != 1:
                continue
            rule = self.link_config.rule_for(topic, types[0])
            if rule is None or rule.from_ != self.p.site:
                continue
            try:
                msg_class = message_class(types[0])
            except DefinitionError as err:
                self.get_logger().warning(f"cannot carry {topic}: {err}", once=True)
                continue
            stream = self.link.add_outgoing(topic, types[0], rule)
            self.create_subscription(
                msg_class, topic, lambda data, s=stream: self.link.offer(s, data), _qos(rule.latched, False), raw=True
            )
            self.get_logger().info(f"carrying {topic} ({types[0]}, {rule.cls}) to {self.other}")

    # ---- RosPort: what arrives from the other site --------------------------------------
    def publish(self, topic: str, type_name: str, data: bytes, latched: bool) -> bool:
        """Publish serialized ``data`` (from zenoh's or a decoder's thread); True when
        someone here is subscribed."""
        with self._remote_lock:
            if topic not in self._remote_publishers:
                try:
                    self._remote_publishers[topic] = self.create_publisher(
                        message_class(type_name), topic, _qos(latched, True)
                    )
                    self.get_logger().info(f"publishing {topic} ({type_name}) from {self.other}")
                except DefinitionError as err:
                    self._remote_publishers[topic] = None
                    self.get_logger().warning(f"cannot publish {topic}: {err}")
            publisher = self._remote_publishers[topic]
        if publisher is None:
            return False
        publisher.publish(data)
        return publisher.get_subscription_count() > 0

    def has_subscribers(self, topic: str) -> bool:
        publisher = self._remote_publishers.get(topic)
        return publisher is not None and publisher.get_subscription_count() > 0

    def publish_stop(self, topic: str) -> None:
        publisher = self._remote_publishers.get(topic)
        if publisher is not None:  # None: the type has no definition here, nothing was published
            publisher.publish(publisher.msg_type())

    def info(self, message: str) -> None:
        self.get_logger().info(message)

    def warning(self, message: str) -> None:
        self.get_logger().warning(message)

    # ---- reports and diagnostics -----------------------------------------------------------
    def _report_and_diagnose(self) -> None:
        self.link.report()
        msg = DiagnosticArray()
        msg.header.stamp = conv.time_msg(self.link.wall())
        for status in self.link.statuses():
            st = DiagnosticStatus(name=status.name, hardware_id=status.hardware_id, message=status.message)
            st.level = bytes([status.level])
            st.values = [KeyValue(key=k, value=fmt(v)) for k, v in status.values.items()]
            msg.status.append(st)
        self.diag_pub.publish(msg)

    def on_shutdown(self) -> None:
        self.link.close()
        with contextlib.suppress(Exception):
            self.session.close()


main = main_for(SiteLink, "site_link")
