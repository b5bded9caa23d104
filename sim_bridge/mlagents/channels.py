"""Side channels of the ML-Agents protocol, as both of its ends see them.

The protocol's side-channel field is a run of frames ``[16-byte channel id (.NET byte order,
uuid.bytes_le)][int32 LE length][payload]``. mlagents-envs reads and writes them on the
trainer's side; ``split_frames`` and ``frame`` do the same on Unity's side (``world_peer``).

Besides ML-Agents' own channels (engine configuration, environment parameters, stats), sern
worlds use one of their own, ``SernWorldChannel``: JSON messages that carry what a sern env
gives its callers beyond observations and rewards, exactly (float64, unlike the float32 stats
channel): the reset seed (trainer → Unity), and each step's robot poses and each episode's
metrics and drawables (Unity → trainer). A Unity build that does not know the channel ignores
it (ML-Agents logs a warning), and without it a sern env still runs (no poses or metrics).
"""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

import numpy as np

SERN_WORLD_CHANNEL_ID = uuid.UUID("5e7a0b1d-2c4f-4e8a-9b6d-3f1e2d4c5b6a")
STATS_CHANNEL_ID = uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520")
ENGINE_CHANNEL_ID = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")
ENV_PARAMS_CHANNEL_ID = uuid.UUID("534c891e-810f-11ea-a9d0-822485860400")

STATS_AVERAGE = 0  # mlagents_envs.side_channel.stats_side_channel.StatsAggregationMethod
ENGINE_TIME_SCALE = 2  # EngineConfigurationChannel.ConfigurationType.TIME_SCALE
ENV_PARAM_FLOAT = 0  # EnvironmentParametersChannel.EnvironmentDataTypes.FLOAT


class SideChannelError(ValueError):
    """Side-channel bytes that do not parse."""


def frame(channel: uuid.UUID, payload: bytes) -> bytes:
    """One side-channel frame."""
    return channel.bytes_le + struct.pack("<i", len(payload)) + payload


def split_frames(data: bytes) -> list[tuple[uuid.UUID, bytes]]:
    """The frames in a side-channel field, in order."""
    frames, offset = [], 0
    while offset < len(data):
        if len(data) - offset < 20:
            raise SideChannelError(f"a side-channel frame header is cut short at byte {offset}")
        channel = uuid.UUID(bytes_le=bytes(data[offset : offset + 16]))
        (length,) = struct.unpack_from("<i", data, offset + 16)
        offset += 20
        if length < 0 or offset + length > len(data):
            raise SideChannelError(f"side-channel frame for {channel} claims {length} bytes; {len(data) - offset} left")
        frames.append((channel, bytes(data[offset : offset + length])))
        offset += length
    return frames


def _read_string(payload: bytes, offset: int) -> tuple[str, int]:
    """A side-channel string (int32 length, ASCII) at ``offset``; unlike mlagents-envs'
    ``IncomingMessage``, which returns a default past the end, a cut-short one raises."""
    (length,) = struct.unpack_from("<i", payload, offset)
    start = offset + 4
    if length < 0 or start + length > len(payload):
        raise SideChannelError(f"a string of {length} bytes does not fit in a {len(payload)}-byte message")
    return payload[start : start + length].decode("ascii"), start + length


def stats_frame(key: str, value: float, aggregation: int = STATS_AVERAGE) -> bytes:
    """A stats message (Unity → trainer), as Unity's ``StatsRecorder.Add`` sends it."""
    from mlagents_envs.side_channel import OutgoingMessage

    message = OutgoingMessage()
    message.write_string(key)
    message.write_float32(value)
    message.write_int32(aggregation)
    return frame(STATS_CHANNEL_ID, bytes(message.buffer))


def read_env_param(payload: bytes) -> tuple[str, float] | None:
    """``(key, value)`` of a float environment parameter; None for samplers (not supported)."""
    key, offset = _read_string(payload, 0)
    (kind,) = struct.unpack_from("<i", payload, offset)
    if kind != ENV_PARAM_FLOAT:
        return None
    (value,) = struct.unpack_from("<f", payload, offset + 4)
    return key, float(value)


def read_engine_setting(payload: bytes) -> tuple[int, tuple]:
    """``(setting type, values)`` of an engine configuration message."""
    (kind,) = struct.unpack_from("<i", payload, 0)
    if kind == ENGINE_TIME_SCALE:
        return kind, struct.unpack_from("<f", payload, 4)
    return kind, struct.unpack_from(f"<{(len(payload) - 4) // 4}i", payload, 4)


def encode_json(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=_plain).encode("ascii")


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        message = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SideChannelError(f"sern world channel: not JSON: {err}") from None
    if not isinstance(message, dict):
        raise SideChannelError(f"sern world channel: expected an object, got {type(message).__name__}")
    return message


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} over the sern world channel")


def make_sern_world_channel():
    """The trainer side's ``SernWorldChannel`` (a mlagents-envs ``SideChannel``)."""
    from mlagents_envs.side_channel import OutgoingMessage, SideChannel

    class SernWorldChannel(SideChannel):
        """sern's world channel on the trainer's side: sends reset seeds, keeps what Unity's
        side sent (poses, episodes) in ``messages`` until its reader takes them."""

        def __init__(self) -> None:
            super().__init__(SERN_WORLD_CHANNEL_ID)
            self.messages: list[dict[str, Any]] = []

        def on_message_received(self, msg) -> None:
            self.messages.append(decode_json(msg.get_raw_bytes()))

        def send_reset_seed(self, seed: int) -> None:
            out = OutgoingMessage()
            out.set_raw_bytes(bytearray(encode_json({"reset_seed": int(seed)})))
            self.queue_message_to_send(out)

    return SernWorldChannel()
