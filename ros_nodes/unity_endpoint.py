"""unity_endpoint: the ROS 2 side of Unity's ROS-TCP-Connector (protocol v0.7.0).

Unity scenes reach ROS through the ROS-TCP-Connector package, which connects to a
"ROS-TCP-Endpoint" on port 10000 (``sim_bridge/rostcp`` has the protocol). This node is one,
with what the reference endpoint (Python, 0.7.0) lacks:

- many Unity clients at once, each with its own subscriptions, publishers and services (the
  reference sends everything to the newest client only), all removed when it disconnects;
- QoS by topic kind (REP-2003): sensor messages (``sensor_msgs/*``, ``nav_msgs/Odometry``)
  are subscribed with the sensor-data profile, so best-effort and reliable publishers alike
  reach Unity; everything Unity publishes is reliable (the system default), latched
  publishers transient-local;
- bounded per-topic send queues where the newest message wins (``topic_queue``): a slow
  client gets fresh images rather than ever older ones; ``__remove_*`` commands, malformed
  frames (counted, the connection dropped, the node alive), services both ways with a
  timeout (``service_timeout_s``) instead of a hang, header-only CDR payloads (empty
  requests) padded as ROS 2 expects;
- a bind address that is loopback unless ``insecure:=true`` says otherwise on purpose (the
  protocol has no authentication), as the site link does; blocking reads, no polling.

Messages are forwarded as serialized CDR both ways (raw subscriptions and raw publishing),
never decoded. ``/diagnostics``: clients, frames in and out, dropped and malformed frames.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import socket
import threading
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.client import Client
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.service import Service
from rclpy.subscription import Subscription

from ros_nodes.common import DIAGNOSTICS_QOS, SENSOR_SUB_QOS
from ros_nodes.params import Param, ParameterError, declare_params, positive
from ros_nodes.runtime import main_for
from sim_bridge.rostcp import commands, framing, names
from sim_bridge.rostcp.connection import Connection

PARAMS = [
    Param("tcp_ip", "127.0.0.1", "address to listen on (non-loopback needs insecure:=true)"),
    Param(
        "tcp_port",
        10000,
        "TCP port (ROS-TCP-Connector's default: 10000)",
        lambda v: None if 0 <= v <= 65535 else "must be 0-65535",
    ),
    Param("insecure", False, "allow a non-loopback tcp_ip: the protocol has no authentication"),
    Param("max_clients", 8, "Unity clients connected at once", positive),
    Param("max_payload_mb", 64.0, "largest message accepted from a client (MB)", positive),
    Param("topic_queue", 2, "messages queued per topic per client before the oldest is dropped", positive),
    Param("service_timeout_s", 10.0, "how long a service call may take, either way", positive),
]
SENSOR_PACKAGES = ("sensor_msgs/",)
SENSOR_TYPES = ("nav_msgs/msg/Odometry",)
FIRST_UNITY_SRV_ID = 1001  # the reference's numbering for requests to Unity (Unity's own start at 101)
CDR_HEADER_BYTES = 4

log = logging.getLogger("sern.unity_endpoint")


@dataclass
class ClientState:
    """What one client registered, and its service exchange in progress."""

    subscriptions: dict = field(default_factory=dict)  # topic -> Subscription
    publishers: dict = field(default_factory=dict)  # topic -> Publisher
    ros_services: dict = field(default_factory=dict)  # service -> (Client, srv class)
    unity_services: dict = field(default_factory=dict)  # service -> Service
    expecting: commands.ServiceFrame | None = None  # the next frame is this request's or response's body
    waiting: dict = field(default_factory=dict)  # srv_id -> [threading.Event, response bytes | None]


class UnityEndpoint(Node):
    def __init__(self):
        super().__init__("unity_endpoint")
        p = declare_params(self, PARAMS)
        self.p = p
        if not p.insecure and not _loopback(p.tcp_ip):
            raise ParameterError(
                self.get_name(),
                [
                    f"'tcp_ip': {p.tcp_ip} is not a loopback address and ROS-TCP has no authentication; "
                    "give insecure:=true to listen there on purpose (and keep the network private)"
                ],
            )
        self.unity_clients: dict[Connection, ClientState] = {}
        self._clients_lock = threading.Lock()
        self._service_group = ReentrantCallbackGroup()
        self._srv_ids = itertools.count(FIRST_UNITY_SRV_ID)
        self.malformed_frames = 0  # closed connections' too
        self.command_errors = 0
        self.connections_total = 0
        self.refused_clients = 0
        self._listen_socket = socket.create_server((p.tcp_ip, p.tcp_port), reuse_port=False, backlog=16)
        self.port = self._listen_socket.getsockname()[1]
        self._accepting = True
        threading.Thread(target=self._accept_loop, name="rostcp-accept", daemon=True).start()
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_timer(1.0, self._diagnose)
        self.get_logger().info(f"ROS-TCP endpoint ({commands.PROTOCOL_VERSION}) listening on {p.tcp_ip}:{self.port}")

    # ---- connections ----------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while self._accepting:
            try:
                sock, address = self._listen_socket.accept()
            except OSError:
                return
            with self._clients_lock:
                full = len(self.unity_clients) >= self.p.max_clients
                if full:
                    self.refused_clients += 1
            if full:
                self.get_logger().warning(f"refused {address[0]}:{address[1]}: {self.p.max_clients} clients already")
                sock.close()
                continue
            conn = Connection(
                sock,
                address,
                self._handle,
                self._closed,
                max_payload_bytes=int(self.p.max_payload_mb * 1e6),
                topic_queue=self.p.topic_queue,
            )
            with self._clients_lock:
                self.unity_clients[conn] = ClientState()
                self.connections_total += 1
            self.get_logger().info(f"client {conn.name} connected")
            conn.start(commands.handshake())

    def _closed(self, conn: Connection) -> None:
        with self._clients_lock:
            state = self.unity_clients.pop(conn, None)
            self.malformed_frames += conn.malformed
        if state is None:
            return
        for entity in (*state.subscriptions.values(), *state.publishers.values(), *state.unity_services.values()):
            self._destroy(entity)
        for client, _ in state.ros_services.values():
            self._destroy(client)
        for waiter in state.waiting.values():
            waiter[0].set()  # a ROS caller waiting on this client's service gets its answer now: none
        self.get_logger().info(f"client {conn.name} disconnected ({conn.frames_in} frames in, {conn.frames_out} out)")

    def _destroy(self, entity) -> None:
        """Remove a client's subscription, publisher, service client or service from the node."""
        destroy = {
            Subscription: self.destroy_subscription,
            Publisher: self.destroy_publisher,
            Client: self.destroy_client,
            Service: self.destroy_service,
        }[type(entity)]
        try:
            destroy(entity)
        except Exception as err:  # already gone with the node at shutdown
            self.get_logger().debug(f"destroying {entity}: {err}")

    # ---- frames from a client -------------------------------------------------------------
    def _handle(self, conn: Connection, frame: framing.Frame) -> None:
        state = self.unity_clients.get(conn)
        if state is None or frame.is_keepalive:
            return
        try:
            if state.expecting is not None:
                expecting, state.expecting = state.expecting, None
                self._service_body(conn, state, expecting, frame)
            elif frame.is_system:
                self._system(conn, state, commands.parse(frame))
            elif frame.destination in state.publishers:
                state.publishers[frame.destination].publish(_padded(frame.payload))
            else:
                raise commands.CommandError(
                    f"not registered to publish on {frame.destination!r} (send __publish first)"
                )
        except (commands.CommandError, names.UnknownType) as err:
            self.command_errors += 1
            conn.send_system(commands.message("__error", str(err)))
            self.get_logger().warning(f"client {conn.name}: {err}", throttle_duration_sec=5.0)
        except Exception as err:  # a payload rclpy cannot take: the client hears of it, the node lives
            self.command_errors += 1
            conn.send_system(commands.message("__error", f"{frame.destination}: {err}"))
            self.get_logger().warning(f"client {conn.name}: {frame.destination}: {err}", throttle_duration_sec=5.0)

    def _system(self, conn: Connection, state: ClientState, cmd) -> None:
        if isinstance(cmd, commands.Register):
            self._register(conn, state, cmd)
        elif isinstance(cmd, commands.Remove):
            table = {
                "__remove_subscriber": state.subscriptions,
                "__remove_publisher": state.publishers,
                "__remove_unity_service": state.unity_services,
            }.get(cmd.command)
            entity = (state.ros_services if table is None else table).pop(cmd.topic, None)
            if entity is not None:
                self._destroy(entity[0] if isinstance(entity, tuple) else entity)
        elif isinstance(cmd, commands.ServiceFrame):
            state.expecting = cmd
        elif isinstance(cmd, commands.TopicList):
            topics = sorted(self.get_topic_names_and_types())
            conn.send_system(commands.topic_list([(t, names.wire_name(types[0])) for t, types in topics if types]))

    def _register(self, conn: Connection, state: ClientState, cmd: commands.Register) -> None:
        topic = cmd.topic
        if cmd.command == "__subscribe":
            cls = names.resolve(cmd.message_name, "msg")
            if topic in state.subscriptions:
                self._destroy(state.subscriptions.pop(topic))
            qos = SENSOR_SUB_QOS if _is_sensor(names.ros_name(cls)) else _default_qos(10, False)

            def forward(data: bytes, topic=topic) -> None:
                conn.send_topic(topic, framing.encode(topic, data))

            state.subscriptions[topic] = self.create_subscription(cls, topic, forward, qos, raw=True)
        elif cmd.command == "__publish":
            cls = names.resolve(cmd.message_name, "msg")
            if topic in state.publishers:
                self._destroy(state.publishers.pop(topic))
            state.publishers[topic] = self.create_publisher(cls, topic, _default_qos(cmd.queue_size, cmd.latch))
        elif cmd.command == "__ros_service":
            cls = names.resolve(cmd.message_name, "srv")
            if topic not in state.ros_services:
                state.ros_services[topic] = (self.create_client(cls, topic, callback_group=self._service_group), cls)
        else:  # __unity_service
            cls = names.resolve(cmd.message_name, "srv")
            if topic in state.unity_services:
                self._destroy(state.unity_services.pop(topic))

            def call_unity(request, response, conn=conn, state=state, topic=topic, cls=cls):
                return self._call_unity(conn, state, topic, cls, request, response)

            state.unity_services[topic] = self.create_service(
                cls, topic, call_unity, callback_group=self._service_group
            )

    # ---- services -------------------------------------------------------------------------
    def _service_body(self, conn: Connection, state: ClientState, head: commands.ServiceFrame, frame) -> None:
        if head.command == "__response":  # Unity answers a ROS caller
            waiter = state.waiting.get(head.srv_id)
            if waiter is None:
                raise commands.CommandError(f"__response {head.srv_id}: no request with that id is waiting")
            waiter[1] = _padded(frame.payload)
            waiter[0].set()
            return
        service = frame.destination
        if service not in state.ros_services:
            raise commands.CommandError(f"__request for {service!r}: register it with __ros_service first")
        client, cls = state.ros_services[service]
        request = deserialize_message(_padded(frame.payload), cls.Request)
        threading.Thread(
            target=self._call_ros, args=(conn, client, cls, service, head.srv_id, request), daemon=True
        ).start()

    def _call_ros(self, conn: Connection, client, cls, service: str, srv_id: int, request) -> None:
        """Call a ROS service for Unity; Unity always gets a ``__response`` (a default one, with
        an ``__error``, if the service is not there or does not answer in time)."""
        response = None
        if client.wait_for_service(timeout_sec=self.p.service_timeout_s):
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            if done.wait(self.p.service_timeout_s) and future.exception() is None:
                response = future.result()
        if response is None:
            conn.send_system(
                commands.message("__error", f"service {service} did not answer within {self.p.service_timeout_s:g} s")
            )
            response = cls.Response()
        conn.send_system(commands.service_message("__response", srv_id, service, serialize_message(response)))

    def _call_unity(self, conn: Connection, state: ClientState, service: str, cls, request, response):
        srv_id = next(self._srv_ids)
        waiter = [threading.Event(), None]
        state.waiting[srv_id] = waiter
        try:
            conn.send_system(commands.service_message("__request", srv_id, service, serialize_message(request)))
            if waiter[0].wait(self.p.service_timeout_s) and waiter[1] is not None:
                return deserialize_message(waiter[1], cls.Response)
            self.get_logger().warning(
                f"Unity service {service} on {conn.name} did not answer; returning a default response"
            )
            return response
        finally:
            state.waiting.pop(srv_id, None)

    # ---- diagnostics ----------------------------------------------------------------------
    def _diagnose(self) -> None:
        with self._clients_lock:
            clients = list(self.unity_clients)
            malformed = self.malformed_frames + sum(c.malformed for c in clients)
        status = DiagnosticStatus(name="unity_endpoint", hardware_id=f"tcp:{self.port}", level=DiagnosticStatus.OK)
        status.message = f"{len(clients)} client(s)"
        values = {
            "clients": len(clients),
            "connections_total": self.connections_total,
            "refused_clients": self.refused_clients,
            "frames_in": sum(c.frames_in for c in clients),
            "frames_out": sum(c.frames_out for c in clients),
            "dropped_frames": sum(c.dropped for c in clients),
            "malformed_frames": malformed,
            "command_errors": self.command_errors,
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag.publish(msg)

    def on_shutdown(self) -> None:
        self._accepting = False
        self._listen_socket.close()
        for conn in list(self.unity_clients):
            conn.close()


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _is_sensor(ros_type: str) -> bool:
    return ros_type.startswith(SENSOR_PACKAGES) or ros_type in SENSOR_TYPES


def _default_qos(depth: int, latch: bool) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latch else DurabilityPolicy.VOLATILE,
    )


def _padded(payload: bytes) -> bytes:
    """Unity sends a message with no fields (an empty request) as the 4-byte CDR header only;
    ROS 2 expects the one-byte placeholder member after it."""
    return payload + b"\0" * 4 if len(payload) <= CDR_HEADER_BYTES else payload


main = main_for(UnityEndpoint, "unity_endpoint", executor=lambda: MultiThreadedExecutor(num_threads=4))
