"""ROS-TCP system commands: parsed from a frame and checked, or built as frames.

Unity → endpoint: ``__subscribe``, ``__publish``, ``__ros_service``, ``__unity_service``
(``{"topic", "message_name"}``, publishers also ``queue_size`` and ``latch``), ``__request`` /
``__response`` (``{"srv_id"}``: the next frame carries the message), ``__topic_list`` and the
``__remove_*`` commands (``{"topic"}``). Endpoint → Unity: ``__handshake`` (first, on every
connection), ``__topic_list``, ``__request`` / ``__response``, ``__error`` / ``__warn`` /
``__log``. Unity's JSON ends with a NUL; unknown keys are ignored, as Unity's own reader does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sim_bridge.rostcp.framing import Frame, encode

PROTOCOL_VERSION = "v0.7.0"
MAX_QUEUE_SIZE = 1000


class CommandError(ValueError):
    """A system command the endpoint cannot act on (reported to Unity as ``__error``)."""


@dataclass(frozen=True)
class Register:
    """``__subscribe`` / ``__publish`` / ``__ros_service`` / ``__unity_service``."""

    command: str
    topic: str
    message_name: str
    queue_size: int = 10
    latch: bool = False


@dataclass(frozen=True)
class Remove:
    """``__remove_subscriber`` / ``__remove_publisher`` / ``__remove_ros_service`` /
    ``__remove_unity_service``."""

    command: str
    topic: str


@dataclass(frozen=True)
class ServiceFrame:
    """``__request`` / ``__response``: the next frame is a service message with this id."""

    command: str
    srv_id: int


@dataclass(frozen=True)
class TopicList:
    """``__topic_list``: Unity asks for the graph's topics and their types."""


REGISTER = ("__subscribe", "__publish", "__ros_service", "__unity_service")
REMOVE = ("__remove_subscriber", "__remove_publisher", "__remove_ros_service", "__remove_unity_service")


def parse(frame: Frame) -> Register | Remove | ServiceFrame | TopicList:
    """The system command in ``frame`` (raises ``CommandError`` saying what is wrong)."""
    name = frame.destination
    try:
        text = frame.payload.decode("utf-8").rstrip("\0")
        body = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CommandError(f"{name}: payload is not JSON ({err})") from None
    if not isinstance(body, dict):
        raise CommandError(f"{name}: payload must be a JSON object, got {type(body).__name__}")
    if name in REGISTER:
        topic = _text(body, "topic", name)
        message_name = _text(body, "message_name", name)
        queue_size = body.get("queue_size", 10)
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or not 1 <= queue_size <= MAX_QUEUE_SIZE:
            raise CommandError(f"{name} {topic}: queue_size must be a whole number in [1, {MAX_QUEUE_SIZE}]")
        latch = body.get("latch", False)
        if not isinstance(latch, bool):
            raise CommandError(f"{name} {topic}: latch must be true or false")
        return Register(name, topic, message_name, queue_size, latch)
    if name in REMOVE:
        return Remove(name, _text(body, "topic", name))
    if name in ("__request", "__response"):
        srv_id = body.get("srv_id")
        if not isinstance(srv_id, int) or isinstance(srv_id, bool):
            raise CommandError(f"{name}: srv_id must be a whole number")
        return ServiceFrame(name, srv_id)
    if name == "__topic_list":
        return TopicList()
    raise CommandError(f"unknown system command {name!r}")


def _text(body: dict, key: str, command: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CommandError(f"{command}: {key!r} must be a non-empty string, got {value!r}")
    return value


def system(command: str, body: dict) -> bytes:
    """A system-command frame as the endpoint sends it."""
    return encode(command, json.dumps(body).encode("utf-8"))


def handshake() -> bytes:
    """The first frame on every connection (Unity checks the version and the protocol)."""
    return system("__handshake", {"version": PROTOCOL_VERSION, "metadata": json.dumps({"protocol": "ROS2"})})


def message(kind: str, text: str) -> bytes:
    """``__error`` / ``__warn`` / ``__log``: shown in Unity's console."""
    return system(kind, {"text": text})


def topic_list(topics: list[tuple[str, str]]) -> bytes:
    """The reply to ``__topic_list``: names and ``pkg/Type`` types, the same length."""
    return system("__topic_list", {"topics": [t for t, _ in topics], "types": [ty for _, ty in topics]})


def service_message(command: str, srv_id: int, service: str, payload: bytes) -> bytes:
    """``__request`` / ``__response`` and the message itself, as one write (Unity pairs them
    by adjacency)."""
    return system(command, {"srv_id": srv_id}) + encode(service, payload)
