"""A stand-in for a Unity scene on ROS-TCP, written from the protocol (ROS-TCP-Connector
v0.7.0, ROS 2 mode): what the C# connector puts on the wire, byte for byte where it matters
(NUL-terminated destinations and JSON, the 8-byte keepalive, ``__request``/``__response``
pairs). Messages go in and out as CDR bytes (what Unity's serializer writes; callers
serialize with rclpy). No Unity exists here: this is the client the endpoint's tests, its
benchmark and the Unity twin demo use in a scene's place."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import defaultdict

U32 = struct.Struct("<I")


class RosTcpSceneStandIn:
    """One Unity client: connect, register, publish, call services, and record what arrives."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self._send_lock = threading.Lock()
        self.received: dict[str, list[tuple[float, bytes]]] = defaultdict(list)
        self.system: list[tuple[str, dict]] = []
        self.responses: dict[int, bytes] = {}
        self.requests: list[tuple[int, str, bytes]] = []
        self.unity_services: dict[str, callable] = {}
        self._arrived = threading.Condition()
        self._next_srv_id = 101  # Unity's numbering
        self._expecting: tuple[str, int] | None = None
        self.closed = threading.Event()
        self.send_raw(U32.pack(0) + U32.pack(0))  # the keepalive Unity sends right after connecting
        threading.Thread(target=self._read_loop, daemon=True).start()

    # ---- sending, as the C# connector writes ----------------------------------------------
    @staticmethod
    def frame(destination: str, payload: bytes) -> bytes:
        name = destination.encode() + b"\0"
        return U32.pack(len(name)) + name + U32.pack(len(payload)) + payload

    def send_raw(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def command(self, name: str, **body) -> None:
        self.send_raw(self.frame(name, json.dumps(body).encode() + b"\0"))

    def subscribe(self, topic: str, message_name: str) -> None:
        self.command("__subscribe", topic=topic, message_name=message_name)

    def register_publisher(self, topic: str, message_name: str, queue_size: int = 10, latch: bool = False) -> None:
        self.command("__publish", topic=topic, message_name=message_name, queue_size=queue_size, latch=latch)

    def publish(self, topic: str, cdr: bytes) -> None:
        self.send_raw(self.frame(topic, cdr))

    def call_ros_service(self, service: str, srv_name: str, cdr_request: bytes) -> int:
        self.command("__ros_service", topic=service, message_name=srv_name)
        srv_id = self._next_srv_id
        self._next_srv_id += 1
        self.send_raw(
            self.frame("__request", json.dumps({"srv_id": srv_id}).encode() + b"\0") + self.frame(service, cdr_request)
        )
        return srv_id

    def implement_unity_service(self, service: str, srv_name: str, answer) -> None:
        """Serve ``service`` from "Unity": ``answer(request_cdr) -> response_cdr``."""
        self.unity_services[service] = answer
        self.command("__unity_service", topic=service, message_name=srv_name)

    # ---- receiving ------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return bytes(data)

    def _read_loop(self) -> None:
        try:
            while True:
                (n,) = U32.unpack(self._recv_exact(4))
                destination = self._recv_exact(n).decode()
                (m,) = U32.unpack(self._recv_exact(4))
                payload = self._recv_exact(m)
                self._on_frame(destination, payload)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            with self._arrived:
                self._arrived.notify_all()

    def _on_frame(self, destination: str, payload: bytes) -> None:
        now = time.time()
        with self._arrived:
            if self._expecting is not None:
                kind, srv_id = self._expecting
                self._expecting = None
                if kind == "__response":
                    self.responses[srv_id] = payload
                else:
                    self.requests.append((srv_id, destination, payload))
                    answer = self.unity_services[destination](payload)
                    self.send_raw(
                        self.frame("__response", json.dumps({"srv_id": srv_id}).encode() + b"\0")
                        + self.frame(destination, answer)
                    )
            elif destination.startswith("__"):
                body = json.loads(payload.decode())
                self.system.append((destination, body))
                if destination in ("__request", "__response"):
                    self._expecting = (destination, body["srv_id"])
            else:
                self.received[destination].append((now, payload))
            self._arrived.notify_all()

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    return predicate()
                self._arrived.wait(left)
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
