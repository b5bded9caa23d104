"""What crosses the site link for one ROS message: a small header and the payload.

Key expression: ``sern/link/<from_site>/<topic without leading slash>``. Header (little
endian): magic ``SL``, version, codec, copy index, flags, sender epoch, sequence number
(per stream), send time (sender's clock, s), the ROS type name. The payload is the message's serialized
CDR bytes, or for images an encoded picture plus what is needed to rebuild a
``sensor_msgs/Image`` (stamp, frame id, original size and encoding).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"SL"
VERSION = 1
KEY_PREFIX = "sern/link"
_HEAD = struct.Struct("<2sBBBBHId H")  # magic, version, codec, copy, flags, epoch, seq, send time, type length
_IMAGE = struct.Struct("<iI HH H")  # stamp sec, nanosec, width, height, frame_id length


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
    if len(data) < _HEAD.size or data[:2] != MAGIC:
        raise WireError("not a site-link message")
    _magic, version, codec, copy, flags, epoch, seq, send_time, n = _HEAD.unpack_from(data)
    if version != VERSION:
        raise WireError(f"site-link wire version {version}, this side speaks {VERSION}")
    start = _HEAD.size + n
    if len(data) < start:
        raise WireError("truncated site-link message")
    try:
        kind = Codec(codec)
    except ValueError:
        raise WireError(f"unknown codec {codec}") from None
    return Envelope(data[_HEAD.size : start].decode(), seq, send_time, kind, data[start:], copy, flags, epoch)


def pack_image(meta: ImageMeta, encoded: bytes) -> bytes:
    frame = meta.frame_id.encode()
    return _IMAGE.pack(meta.stamp_sec, meta.stamp_nanosec, meta.width, meta.height, len(frame)) + frame + encoded


def unpack_image(payload: bytes) -> tuple[ImageMeta, bytes]:
    sec, nsec, w, h, n = _IMAGE.unpack_from(payload)
    start = _IMAGE.size + n
    return ImageMeta(sec, nsec, w, h, payload[_IMAGE.size : start].decode()), payload[start:]
