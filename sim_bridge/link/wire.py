"""What crosses the site link for one ROS message: a small header and the payload.

Key expression: ``sern/link/<from_site>/<topic without leading slash>``. Header (little
endian): magic ``SL``, version, codec, copy index, flags, sender epoch, sequence number
(per stream), send time, the ROS type name. The send time is when the sending site link
took the message from its local topic, on the sender's wall clock (s): a resent message
keeps it, so the receiver can judge the message's age (``sim_bridge.link.receiver``). The
payload is the message's serialized CDR bytes, or for images an encoded picture plus what
is needed to rebuild a ``sensor_msgs/Image`` (stamp, frame id, original size and encoding).

Parsing trusts nothing: every malformed input is a ``WireError`` saying what is wrong.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"SL"
VERSION = 2  # 2: send time is when the message was taken (kept on resend); binary probes
KEY_PREFIX = "sern/link"
_HEAD = struct.Struct("<2sBBBBHId H")  # magic, version, codec, copy, flags, epoch, seq, send time, type length
_IMAGE = struct.Struct("<iI HH H")  # stamp sec, nanosec, width, height, frame_id length
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/msg/[A-Za-z][A-Za-z0-9_]*$")


class Codec(IntEnum):
    """How the payload is encoded."""

    CDR = 0  # the serialized ROS message, untouched
    JPEG = 1
    PNG = 2
    WEBP = 3
    RAW_SCALED = 4  # raw pixels, resized
    CDR_LZ4 = 5  # the serialized message, lz4-compressed


class WireError(ValueError):
    """Bytes that are not a site-link message."""


@dataclass
class Envelope:
    type_name: str
    seq: int
    send_time: float
    codec: Codec
    payload: bytes
    copy: int = 0
    flags: int = 0
    epoch: int = 0  # changes when the sender restarts, so receivers restart its sequence


@dataclass
class ImageMeta:
    """What an encoded image needs to become a ``sensor_msgs/Image`` again."""

    stamp_sec: int
    stamp_nanosec: int
    width: int
    height: int
    frame_id: str


def topic_key(site: str, topic: str) -> str:
    return f"{KEY_PREFIX}/{site}/{topic.lstrip('/')}"


def key_topic(key: str) -> tuple[str, str]:
    """(site, '/topic') from a key expression."""
    rest = key[len(KEY_PREFIX) + 1 :]
    site, _, topic = rest.partition("/")
    return site, "/" + topic


def pack(env: Envelope) -> bytes:
    name = env.type_name.encode()
    head = _HEAD.pack(
        MAGIC,
        VERSION,
        int(env.codec),
        env.copy,
        env.flags,
        env.epoch & 0xFFFF,
        env.seq & 0xFFFFFFFF,
        env.send_time,
        len(name),
    )
    return head + name + env.payload


def unpack(data: bytes) -> Envelope:
    """The envelope in ``data``; ``WireError`` says what is wrong with a bad one."""
    if len(data) < _HEAD.size or data[:2] != MAGIC:
        raise WireError("not a site-link message")
    _magic, version, codec, copy, flags, epoch, seq, send_time, n = _HEAD.unpack_from(data)
    if version != VERSION:
        raise WireError(f"site-link wire version {version}, this side speaks {VERSION}")
    start = _HEAD.size + n
    if len(data) < start:
        raise WireError(f"truncated site-link message ({len(data)} bytes, the header says at least {start})")
    try:
        kind = Codec(codec)
    except ValueError:
        raise WireError(f"unknown codec {codec}") from None
    if not math.isfinite(send_time):
        raise WireError(f"send time {send_time} is not a time")
    try:
        type_name = data[_HEAD.size : start].decode()
    except UnicodeDecodeError:
        raise WireError("the type name is not UTF-8") from None
    if not _TYPE_NAME.match(type_name):
        raise WireError(f"{type_name[:60]!r} is not a ROS message type like pkg/msg/Name")
    return Envelope(type_name, seq, send_time, kind, data[start:], copy, flags, epoch)


def pack_image(meta: ImageMeta, encoded: bytes) -> bytes:
    frame = meta.frame_id.encode()
    return _IMAGE.pack(meta.stamp_sec, meta.stamp_nanosec, meta.width, meta.height, len(frame)) + frame + encoded


def unpack_image(payload: bytes) -> tuple[ImageMeta, bytes]:
    """The image header and the encoded picture; ``WireError`` for a bad header."""
    if len(payload) < _IMAGE.size:
        raise WireError(f"image header truncated ({len(payload)} of {_IMAGE.size} bytes)")
    sec, nsec, w, h, n = _IMAGE.unpack_from(payload)
    start = _IMAGE.size + n
    if len(payload) < start:
        raise WireError(f"image frame id truncated ({len(payload)} bytes, the header says at least {start})")
    try:
        frame_id = payload[_IMAGE.size : start].decode()
    except UnicodeDecodeError:
        raise WireError("the image frame id is not UTF-8") from None
    return ImageMeta(sec, nsec, w, h, frame_id), payload[start:]
