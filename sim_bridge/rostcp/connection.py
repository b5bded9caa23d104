"""One Unity client's TCP connection to the endpoint: a reader and a writer thread, no polling.

The reader turns the stream into frames (``framing.FrameReader``) and hands each to the
endpoint's ``handle``; a frame that breaks the framing closes the connection (the stream
cannot be resynchronised) and is counted. The writer sends what the endpoint queues:
system frames (handshake, errors, service replies) in order and never dropped; topic
messages in a bounded queue per topic where the newest wins (``topic_queue``), so a slow
client gets fresh images late rather than stale ones ever later, and one busy topic cannot
starve another.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
from collections.abc import Callable

from sim_bridge.rostcp import framing

log = logging.getLogger("sern.unity_endpoint")


class Connection:
    """A connected client (see module docstring). ``handle(conn, frame)`` runs on the reader
    thread; ``on_close(conn)`` once, when the connection ends for any reason."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple,
        handle: Callable[[Connection, framing.Frame], None],
        on_close: Callable[[Connection], None],
        max_payload_bytes: int,
        topic_queue: int,
    ):
        self.sock = sock
        self.address = address
        self.name = f"{address[0]}:{address[1]}"
        self._handle = handle
        self._on_close = on_close
        self._reader = framing.FrameReader(max_payload_bytes)
        self._topic_queue = topic_queue
        self._lock = threading.Condition()
        self._system: collections.deque[bytes] = collections.deque()
        self._topics: dict[str, collections.deque[bytes]] = {}
        self._ready: collections.deque[str] = collections.deque()  # each topic with queued messages, once, in turn
        self._closed = False
        self.dropped = 0  # topic messages replaced by newer ones before they were sent
        self.malformed = 0
        self.frames_in = 0
        self.frames_out = 0
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._threads = [
            threading.Thread(target=self._read_loop, name=f"rostcp-read-{self.name}", daemon=True),
            threading.Thread(target=self._write_loop, name=f"rostcp-write-{self.name}", daemon=True),
        ]

    def start(self, first: bytes) -> None:
        """Queue ``first`` (the handshake) and start both threads."""
        self.send_system(first)
        for thread in self._threads:
            thread.start()

    # ---- sending ------------------------------------------------------------------------
    def send_system(self, data: bytes) -> None:
        with self._lock:
            if not self._closed:
                self._system.append(data)
                self._lock.notify()

    def send_topic(self, topic: str, data: bytes) -> None:
        """Queue one message of ``topic`` (an encoded frame); the oldest queued one of the
        same topic is dropped when its queue is full."""
        with self._lock:
            if self._closed:
                return
            queue = self._topics.get(topic)
            if queue is None:
                queue = self._topics[topic] = collections.deque()
            if not queue:
                self._ready.append(topic)  # listed once while it has messages waiting
            elif len(queue) >= self._topic_queue:
                queue.popleft()
                self.dropped += 1
            queue.append(data)
            self._lock.notify()

    def _next_out(self) -> bytes | None:
        with self._lock:
            while not self._closed and not self._system and not self._ready:
                self._lock.wait()
            if self._closed:
                return None
            if self._system:
                return self._system.popleft()
            topic = self._ready.popleft()
            queue = self._topics[topic]
            data = queue.popleft()
            if queue:
                self._ready.append(topic)  # its next message waits behind the other topics'
            return data

    def _write_loop(self) -> None:
        try:
            while (data := self._next_out()) is not None:
                try:
                    self.sock.sendall(data)
                except OSError:
                    break
                self.frames_out += 1
        finally:  # whatever ends the writer ends the connection: never a client left deaf
            self.close()

    # ---- receiving ----------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 16)
                except OSError:
                    break
                if not data:
                    break
                try:
                    frames = self._reader.feed(data)
                except framing.FramingError as err:
                    self.malformed += 1
                    log.warning("client %s: %s; closing the connection", self.name, err)
                    break
                for frame in frames:
                    self.frames_in += 1
                    self._handle(self, frame)
        finally:
            self.close()

    def close(self) -> None:
        """End the connection (idempotent): both threads stop, ``on_close`` runs once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._on_close(self)

    @property
    def closed(self) -> bool:
        return self._closed
