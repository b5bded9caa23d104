"""A userspace link between two network namespaces that impairs real packets.

This kernel has no netem, so sern emulates links in user space: each site is a network
namespace with one veth interface; the veths' peers sit in a third ("link") namespace
where this relay moves Ethernet frames between them through raw packet sockets, applying
per direction:

- one-way delay with uniform jitter (frames are released by time, so jitter reorders, as
  on a real multipath link),
- random loss,
- a bandwidth limit (frames are serialised at the rate: queueing delay builds up),
- outages (everything dropped while the link is down).

It runs as root, ``ip netns exec LINK_NS python -m sim_bridge.netem.relay IF_A IF_B``, and
takes new settings as JSON lines on a Unix datagram socket (``--control PATH``), e.g.
``{"delay_ms": 100, "jitter_ms": 20, "loss": 0.05}`` or ``{"down": true}``.

Checksums: the sites' veths have their checksum and segmentation offloads switched off
(``sim_bridge.netem.offload``), so frames arrive complete and TCP crosses as well as UDP.
As a second guard the relay clears IPv4 UDP checksums (0 is valid for UDP over IPv4).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


@dataclass
class Impairment:
    """Settings of one direction of the link."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    rate_mbit: float = 0.0  # 0 = unlimited
    down: bool = False

    def update(self, settings: dict) -> None:
        for key, value in settings.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown link setting {key!r}; known: delay_ms, jitter_ms, loss, rate_mbit, down")
            setattr(self, key, type(getattr(self, key))(value))


@dataclass
class Counters:
    frames_in: int = 0
    dropped_loss: int = 0
    dropped_down: int = 0
    frames_out: int = 0
    bytes_out: int = 0


@dataclass(order=True)
class _Queued:
    release: float
    seq: int
    frame: bytes = field(compare=False)
    out: int = field(compare=False)


def clear_udp_checksum(frame: bytes) -> bytes:
    """Zero the UDP checksum of an IPv4/UDP frame (first fragment); others unchanged."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[14 + 9]
    frag_offset = struct.unpack("!H", frame[14 + 6 : 14 + 8])[0] & 0x1FFF
    if proto != 17 or frag_offset != 0 or len(frame) < 14 + ihl + 8:
        return frame
    at = 14 + ihl + 6
    return frame[:at] + b"\x00\x00" + frame[at + 2 :]


class Relay:
    """Moves frames between two interfaces, impaired per direction."""

    def __init__(self, if_a: str, if_b: str, seed: int = 0):
        self.socks = []
        for name in (if_a, if_b):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((name, 0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
            s.setblocking(False)
            self.socks.append(s)
        self.directions = [Impairment(), Impairment()]  # [0]: a→b, [1]: b→a
        self.counters = [Counters(), Counters()]
        self._free_at = [0.0, 0.0]  # when each direction's "wire" is next free (rate limit)
        self._queue: list[_Queued] = []
        self._seq = 0
        self._rng = random.Random(seed)
        self._stop = False

    def configure(self, settings: dict) -> None:
        """Apply settings to both directions, or to ``"a_to_b"`` / ``"b_to_a"`` keys."""
        settings = dict(settings)
        for key, index in (("a_to_b", 0), ("b_to_a", 1)):
            if key in settings:
                self.directions[index].update(settings.pop(key))
        if settings:
            for d in self.directions:
                d.update(settings)

    def _receive(self, index: int, now: float) -> None:
        sock = self.socks[index]
        imp, cnt = self.directions[index], self.counters[index]
        for _ in range(256):
            try:
                frame, addr = sock.recvfrom(65535)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue  # our own transmissions on this interface
            cnt.frames_in += 1
            if imp.down:
                cnt.dropped_down += 1
                continue
            if imp.loss > 0 and self._rng.random() < imp.loss:
                cnt.dropped_loss += 1
                continue
            delay = imp.delay_ms + (self._rng.uniform(-imp.jitter_ms, imp.jitter_ms) if imp.jitter_ms else 0.0)
            release = now + max(delay, 0.0) / 1000.0
            if imp.rate_mbit > 0:
                start = max(now, self._free_at[index])
                self._free_at[index] = start + len(frame) * 8 / (imp.rate_mbit * 1e6)
                release = max(release, self._free_at[index] + max(delay, 0.0) / 1000.0)
            self._seq += 1
            heapq.heappush(self._queue, _Queued(release, self._seq, clear_udp_checksum(frame), 1 - index))

    def _release(self, now: float) -> None:
        while self._queue and self._queue[0].release <= now:
            item = heapq.heappop(self._queue)
            try:
                self.socks[item.out].send(item.frame)
                cnt = self.counters[1 - item.out]
                cnt.frames_out += 1
                cnt.bytes_out += len(item.frame)
            except OSError:
                pass  # a frame the far side cannot take (e.g. oversize): dropped, like a wire would

    def run(self, control: socket.socket | None = None) -> None:
        watch = [*self.socks, *([control] if control else [])]
        while not self._stop:
            now = time.monotonic()
            timeout = 0.05 if not self._queue else max(0.0, min(0.05, self._queue[0].release - now))
            ready, _, _ = select.select(watch, [], [], timeout)
            now = time.monotonic()
            for sock in ready:
                if sock is control:
                    self._control(control)
                else:
                    self._receive(self.socks.index(sock), now)
            self._release(time.monotonic())

    def _control(self, control: socket.socket) -> None:
        try:
            data, peer = control.recvfrom(65535)
        except BlockingIOError:
            return
        try:
            request = json.loads(data)
            if request.get("stats"):
                reply = {"a_to_b": vars(self.counters[0]), "b_to_a": vars(self.counters[1])}
            else:
                self.configure(request)
                reply = {"ok": True, "a_to_b": vars(self.directions[0]), "b_to_a": vars(self.directions[1])}
        except (ValueError, TypeError) as err:
            reply = {"ok": False, "error": str(err)}
        if peer:
            with contextlib.suppress(OSError):
                control.sendto(json.dumps(reply).encode(), peer)

    def stop(self, *_) -> None:
        self._stop = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Impaired userspace link between two interfaces (run as root).")
    parser.add_argument("if_a")
    parser.add_argument("if_b")
    parser.add_argument("--control", help="Unix datagram socket path for JSON settings")
    parser.add_argument("--settings", default="{}", help="initial settings as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        relay = Relay(args.if_a, args.if_b, args.seed)
        relay.configure(json.loads(args.settings))
    except (OSError, ValueError) as err:
        print(f"relay: {err}", file=sys.stderr)
        return 2
    control = None
    if args.control:
        if os.path.exists(args.control):
            os.unlink(args.control)
        control = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        control.bind(args.control)
        control.setblocking(False)
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    print("relay ready", flush=True)
    relay.run(control)
    if control and args.control and os.path.exists(args.control):
        os.unlink(args.control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
