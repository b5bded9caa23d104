"""``sensor_msgs/msg/Image`` in its serialized (CDR) form, without ROS: the pixels out of
the bytes a local subscription hands the site link, and the bytes back from pixels at the
other site. CDR's primitives come from ``mcap_ros2`` (pinned); the field order is the
message's (std_msgs/Header header, uint32 height, uint32 width, string encoding, uint8
is_bigendian, uint32 step, uint8[] data).

Only 8-bit RGB, BGR and mono images are unpacked (the codecs' domain); anything else is an
``ImageCdrError`` and the link sends that message as it is.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from mcap_ros2._cdr import CdrReader, CdrWriter

_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


class ImageCdrError(ValueError):
    """Bytes that are not an image this link can unpack."""


@dataclass
class ImageHeader:
    """The parts of an image message besides its pixels."""

    stamp_sec: int
    stamp_nanosec: int
    frame_id: str
    width: int
    height: int
    encoding: str


def parse_image(data: bytes) -> tuple[ImageHeader, np.ndarray]:
    """The header and an ``(H, W, 3)`` RGB or ``(H, W)`` mono array (a view where it can be)."""
    try:
        reader = CdrReader(data)
        sec, nsec = reader.int32(), reader.uint32()
        frame_id = _string(reader, data)
        height, width = reader.uint32(), reader.uint32()
        encoding = _string(reader, data)
        reader.uint8()  # is_bigendian: irrelevant for 8-bit pixels
        step = reader.uint32()
        size = reader.sequence_length()
    except (struct.error, UnicodeDecodeError, ValueError) as err:
        raise ImageCdrError(f"not a serialized sensor_msgs/Image ({err})") from None
    header = ImageHeader(sec, nsec, frame_id, width, height, encoding)
    channels = _CHANNELS.get(encoding)
    if channels is None:
        raise ImageCdrError(f"image encoding {encoding!r} is not rgb8, bgr8 or mono8")
    if step < width * channels or size < step * height or reader.offset + size > len(data):
        raise ImageCdrError(f"a {width}x{height} {encoding} image with step {step} and {size} bytes of data")
    pixels = np.frombuffer(data, dtype=np.uint8, count=step * height, offset=reader.offset).reshape(height, step)
    frame = pixels[:, : width * channels]
    if channels == 1:
        return header, frame
    frame = frame.reshape(height, width, 3)
    return header, (frame[..., ::-1] if encoding == "bgr8" else frame)


def image_bytes(stamp_sec: int, stamp_nanosec: int, frame_id: str, frame: np.ndarray) -> bytes:
    """A serialized ``sensor_msgs/Image`` (rgb8, or mono8 for a 2-D array) of ``frame``."""
    height, width = frame.shape[:2]
    mono = frame.ndim == 2
    out = io.BytesIO()
    writer = CdrWriter(out)
    writer.write_int32(stamp_sec)
    writer.write_uint32(stamp_nanosec)
    writer.write_string(frame_id)
    writer.write_uint32(height)
    writer.write_uint32(width)
    writer.write_string("mono8" if mono else "rgb8")
    writer.write_uint8(0)
    step = width * (1 if mono else 3)
    writer.write_uint32(step)
    writer.write_uint32(step * height)
    writer.write_bytes(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
    return out.getvalue()


def _string(reader: CdrReader, data: bytes) -> str:
    """A CDR string, its length checked against what is there (CdrReader does not)."""
    length = reader.uint32()
    if length > len(data) - reader.offset:
        raise ValueError(f"a string of {length} bytes in {len(data)}")
    reader.offset -= 4
    return reader.string()
