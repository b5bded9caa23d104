"""ROS-TCP frames: ``[u32 LE length][destination][u32 LE length][payload]``, both ways.

Unity (ROS 2 mode) writes each destination, and a system command's JSON, with a trailing NUL
and counts it in the length; the endpoint strips it. The endpoint writes destinations
without one (Unity would look up ``"topic\\0"`` and drop the message). An empty destination
with an empty payload is Unity's keepalive.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAX_DESTINATION_BYTES = 1024  # a topic or service name, or a system command
KEEPALIVE = b"\0" * 8
_U32 = struct.Struct("<I")


class FramingError(ValueError):
    """Bytes that are not a ROS-TCP frame the endpoint accepts; the stream cannot be
    resynchronised after one, so the connection is closed."""


@dataclass(frozen=True)
class Frame:
    destination: str  # "" for a keepalive
    payload: bytes

    @property
    def is_keepalive(self) -> bool:
        return not self.destination and not self.payload

    @property
    def is_system(self) -> bool:
        return self.destination.startswith("__")


def encode(destination: str, payload: bytes) -> bytes:
    """One frame as the endpoint sends it (no NUL after the destination)."""
    name = destination.encode("utf-8")
    return _U32.pack(len(name)) + name + _U32.pack(len(payload)) + payload


class FrameReader:
    """Turns a byte stream into frames, whatever the chunking; refuses a destination longer
    than ``MAX_DESTINATION_BYTES`` or a payload longer than ``max_payload_bytes`` before
    buffering it."""

    def __init__(self, max_payload_bytes: int):
        self.max_payload_bytes = max_payload_bytes
        self._buffer = bytearray()
        self._destination: str | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data`` (raises ``FramingError`` on a bad one)."""
        self._buffer += data
        frames = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> Frame | None:
        if self._destination is None:
            name = self._field(MAX_DESTINATION_BYTES, "destination")
            if name is None:
                return None
            try:
                self._destination = name.rstrip(b"\0").decode("utf-8")
            except UnicodeDecodeError as err:
                raise FramingError(f"destination is not UTF-8: {err.reason} at byte {err.start}") from None
        payload = self._field(self.max_payload_bytes, f"payload for {self._destination!r}")
        if payload is None:
            return None
        frame = Frame(self._destination, payload)
        self._destination = None
        return frame

    def _field(self, limit: int, what: str) -> bytes | None:
        if len(self._buffer) < 4:
            return None
        (length,) = _U32.unpack_from(self._buffer, 0)
        if length > limit:
            raise FramingError(f"{what}: {length} bytes announced, at most {limit} accepted")
        if len(self._buffer) < 4 + length:
            return None
        field = bytes(self._buffer[4 : 4 + length])
        del self._buffer[: 4 + length]
        return field

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)
