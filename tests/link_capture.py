"""Two zenoh sessions of the site link in a fresh network namespace, every packet captured.

Run as root: ``python tests/link_capture.py SPEC.json``. The process moves itself into a
new network namespace (only its own loopback and a veth pair, one end at ``ADDRESS``, so no
other traffic on this host is captured), opens a raw packet socket on all its interfaces,
opens the two sessions from ``sim_bridge.link.transport`` (the robot site listening, the
twin site connecting), publishes ``count`` best-effort messages holding ``marker`` from the
robot site, and prints one JSON line: how many arrived, the session's links, and which
captured packets held the marker.

SPEC: ``{"robot": {SessionSettings fields}, "twin": {...}, "marker": str, "count": int}``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ADDRESS = "10.231.0.1"
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003


def enter_fresh_network_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed (needs root)")
    for cmd in (
        "link set lo up",
        "link add sern0 type veth peer name sern1",
        f"addr add {ADDRESS}/24 dev sern0",
        "link set sern0 up",
        "link set sern1 up",
    ):
        subprocess.run(["ip", *cmd.split()], check=True, capture_output=True)


class Capture:
    """Every frame on every interface of this namespace, searched for a marker."""

    def __init__(self, marker: bytes):
        self.marker = marker
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: never drop a frame
        self.sock.settimeout(0.2)
        self.frames = 0
        self.hits: list[dict] = []
        self.udp_bytes_by_port: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, _ = self.sock.recvfrom(1 << 17)
            except TimeoutError:
                continue
            self.frames += 1
            if len(frame) < 34 or frame[12:14] != b"\x08\x00":  # IPv4 only: all our endpoints are
                continue
            ihl = (frame[14] & 0x0F) * 4
            proto = frame[23]
            ports = struct.unpack("!HH", frame[14 + ihl : 18 + ihl])
            if proto == 17:
                self.udp_bytes_by_port[ports[1]] = self.udp_bytes_by_port.get(ports[1], 0) + len(frame)
            if self.marker in frame:
                self.hits.append({"protocol": {6: "tcp", 17: "udp"}.get(proto, str(proto)), "ports": ports})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    enter_fresh_network_namespace()
    import zenoh

    from sim_bridge.link.transport import SessionSettings, open_session

    marker = spec["marker"].encode()
    capture = Capture(marker)
    robot = open_session(SessionSettings(**spec["robot"]))
    twin = open_session(SessionSettings(**spec["twin"]))
    got = []
    sub = twin.declare_subscriber("sern/link/robot/marker", lambda s: got.append(s.payload.to_bytes()))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(list(twin.info.links())) < spec.get("links", 1):
        time.sleep(0.1)
    time.sleep(0.5)  # the subscription reaches the robot site
    pub = robot.declare_publisher(
        "sern/link/robot/marker",
        reliability=zenoh.Reliability.BEST_EFFORT,
        congestion_control=zenoh.CongestionControl.DROP,
    )
    for i in range(spec["count"]):
        pub.put(marker + b" #%d" % i)
        time.sleep(0.02)
    time.sleep(1.0)
    links = [{"dst": str(link.dst), "reliability": str(link.reliability)} for link in twin.info.links()]
    capture.stop()
    print(
        json.dumps(
            {
                "received": sum(marker in m for m in got),
                "links": links,
                "frames": capture.frames,
                "marker_packets": capture.hits,
                "udp_bytes_by_port": capture.udp_bytes_by_port,
            }
        ),
        flush=True,
    )
    sub.undeclare()
    for session in (twin, robot):
        with contextlib.suppress(zenoh.ZError):  # a QUIC close can time out; the process ends anyway
            session.close()


if __name__ == "__main__":
    main()
