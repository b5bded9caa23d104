"""Image encodings for the site link (OpenCV): JPEG, PNG, WebP, or raw pixels, each
optionally downscaled. Works on ``(H, W, 3)`` RGB or ``(H, W)`` mono uint8 arrays.

Also what each encoding costs on a real frame (``EncodingProfile``, measured by
``profile_encodings``), which the MMCF weighs. Decoding what arrives from the other site
is bounded: a picture whose header asks for more than ``max_bytes`` of pixels is refused
before anything is allocated for it.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image as PILImage

from sim_bridge.link.wire import Codec

_EXT = {Codec.JPEG: ".jpg", Codec.PNG: ".png", Codec.WEBP: ".webp"}


@dataclass(frozen=True)
class ImageEncoding:
    """One way to send an image: codec, quality (0–100; PNG: ignored), scale (0–1]."""

    codec: Codec
    quality: int = 80
    scale: float = 1.0

    def label(self) -> str:
        name = {Codec.JPEG: "jpeg", Codec.PNG: "png", Codec.WEBP: "webp", Codec.RAW_SCALED: "raw", Codec.CDR: "raw"}[
            self.codec
        ]
        q = f"q{self.quality}" if self.codec in (Codec.JPEG, Codec.WEBP) else ""
        s = f"@{self.scale:g}" if self.scale != 1.0 else ""
        return f"{name}{q}{s}"


def encode(image: np.ndarray, enc: ImageEncoding) -> bytes:
    """Encode an RGB (or mono) image; the receiver gets it back at the scaled size."""
    img = image
    if enc.scale != 1.0:
        h, w = image.shape[:2]
        size = (max(1, round(w * enc.scale)), max(1, round(h * enc.scale)))
        img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if enc.codec in (Codec.RAW_SCALED, Codec.CDR):
        h, w = img.shape[:2]
        channels = 1 if img.ndim == 2 else img.shape[2]
        return np.array([h, w, channels], dtype="<u2").tobytes() + np.ascontiguousarray(img).tobytes()
    bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if enc.codec == Codec.JPEG:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(enc.quality)]
    elif enc.codec == Codec.WEBP:
        params = [cv2.IMWRITE_WEBP_QUALITY, int(enc.quality)]
    elif enc.codec == Codec.PNG:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(_EXT[enc.codec], bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode the image as {enc.label()}")
    return buf.tobytes()


class ImageTooLarge(ValueError):
    """An encoded image whose header asks for more pixels than allowed."""


_PIL_FORMAT = {Codec.JPEG: "JPEG", Codec.PNG: "PNG", Codec.WEBP: "WEBP"}


def decode(data: bytes, codec: Codec, max_bytes: int | None = None) -> np.ndarray:
    """The image back as RGB (or mono) uint8. ``ValueError`` for bytes that are not such
    an image; ``ImageTooLarge`` when it would take more than ``max_bytes`` of pixels."""
    if codec in (Codec.RAW_SCALED, Codec.CDR):
        if len(data) < 6:
            raise ValueError(f"raw image header truncated ({len(data)} of 6 bytes)")
        h, w, c = (int(x) for x in np.frombuffer(data[:6], dtype="<u2"))
        if c not in (1, 3):
            raise ValueError(f"raw image with {c} channels (1 or 3 expected)")
        if max_bytes is not None and h * w * c > max_bytes:
            raise ImageTooLarge(f"a {w}x{h}x{c} image is more than {max_bytes} bytes")
        if len(data) - 6 != h * w * c:
            raise ValueError(f"raw image of {len(data) - 6} bytes, its header says {w}x{h}x{c}")
        pixels = np.frombuffer(data, dtype=np.uint8, offset=6)
        return pixels.reshape((h, w) if c == 1 else (h, w, c))
    if codec not in _PIL_FORMAT:
        raise ValueError(f"{codec.name} is not an image codec")
    # The header first (Pillow reads no pixels here): a forged size costs nothing, and the
    # picture is then decoded to 8 bits, grey or RGB, so what is allocated is what was checked.
    try:
        with PILImage.open(io.BytesIO(data), formats=[_PIL_FORMAT[codec]]) as header:
            w, h = header.size
            grey = header.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    except PILImage.DecompressionBombError as err:
        raise ImageTooLarge(f"a {codec.name} image far too large ({err})") from None
    except Exception as err:  # Pillow raises many kinds (OSError, SyntaxError, ...) on garbage
        raise ValueError(f"not a decodable {codec.name} image ({type(err).__name__})") from None
    channels = 1 if grey else 3
    if max_bytes is not None and w * h * channels > max_bytes:
        raise ImageTooLarge(f"a {w}x{h} {codec.name} image is more than {max_bytes} bytes of pixels")
    flags = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if img is None or img.shape[:2] != (h, w):
        raise ValueError(f"not a decodable {codec.name} image")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass
class EncodingProfile:
    """Measured on a real frame: bytes, encode/decode seconds, fidelity in [0, 1]."""

    bytes: float
    encode_s: float
    decode_s: float
    fidelity: float


@dataclass
class EncodingCost:
    bytes: float
    encode_s: float
    decode_s: float


def measure(image: np.ndarray, enc: ImageEncoding, repeats: int = 3) -> EncodingCost:
    """Size and CPU time of an encoding on a real frame (min of ``repeats``)."""
    best_e = best_d = float("inf")
    data = b""
    for _ in range(repeats):
        t = time.perf_counter()
        data = encode(image, enc)
        best_e = min(best_e, time.perf_counter() - t)
        t = time.perf_counter()
        decode(data, enc.codec if enc.codec != Codec.CDR else Codec.RAW_SCALED)
        best_d = min(best_d, time.perf_counter() - t)
    return EncodingCost(len(data), best_e, best_d)


def fidelity(original: np.ndarray, data: bytes, codec: Codec) -> float:
    """How much of the picture survives an encoding, in [0, 1]: PSNR of the decoded image
    (scaled back to full size) mapped linearly from 20 dB (0) to 45 dB (1); lossless = 1."""
    restored = decode(data, codec)
    if restored.shape[:2] != original.shape[:2]:
        restored = cv2.resize(restored, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_LINEAR)
    mse = float(np.mean((restored.astype(np.float32) - original.astype(np.float32)) ** 2))
    if mse == 0.0:
        return 1.0
    psnr = 10.0 * np.log10(255.0**2 / mse)
    return float(np.clip((psnr - 20.0) / 20.0, 0.0, 1.0))


def profile_encodings(frame: np.ndarray, encodings) -> dict[ImageEncoding, EncodingProfile]:
    """Measure every encoding on a real frame: size, CPU time, fidelity."""
    out = {}
    for enc in encodings:
        cost = measure(frame, enc)
        data = encode(frame, enc)
        out[enc] = EncodingProfile(cost.bytes, cost.encode_s, cost.decode_s, fidelity(frame, data, enc.codec))
    return out
