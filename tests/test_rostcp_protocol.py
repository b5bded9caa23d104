"""The ROS-TCP wire and system commands (sim_bridge/rostcp), byte by byte."""

from __future__ import annotations

import json
import struct

import pytest

from sim_bridge.rostcp import commands, framing, names

U32 = struct.Struct("<I")


def unity_frame(destination: str, payload: bytes) -> bytes:
    """As ROS-TCP-Connector writes in ROS 2 mode: the destination NUL-terminated, counted."""
    name = destination.encode() + b"\0"
    return U32.pack(len(name)) + name + U32.pack(len(payload)) + payload


def test_frames_arrive_whole_whatever_the_chunking():
    stream = (
        b"\0" * 8  # keepalive
        + unity_frame("__subscribe", b'{"topic":"robot_0/twin/odom","message_name":"nav_msgs/Odometry"}\0')
        + unity_frame("camera", bytes(range(256)) * 40)
    )
    for chunk in (1, 3, 7, 4096):
        reader = framing.FrameReader(max_payload_bytes=1 << 20)
        frames = []
        for i in range(0, len(stream), chunk):
            frames += reader.feed(stream[i : i + chunk])
        assert [f.destination for f in frames] == ["", "__subscribe", "camera"]
        assert frames[0].is_keepalive and frames[1].is_system and not frames[2].is_system
        assert frames[2].payload == bytes(range(256)) * 40
        assert reader.buffered == 0


def test_the_endpoint_writes_destinations_without_a_nul():
    data = framing.encode("robot_0/twin/odom", b"\0\1\0\0")
    assert data == U32.pack(17) + b"robot_0/twin/odom" + U32.pack(4) + b"\0\1\0\0"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (U32.pack(framing.MAX_DESTINATION_BYTES + 1), "destination: 1025 bytes announced"),
        (unity_frame("t", b"")[:6] + U32.pack(2_000_000) + b"x", "payload for 't': 2000000 bytes announced"),
        (U32.pack(2) + b"\xff\xfe", "destination is not UTF-8"),
    ],
)
def test_what_no_unity_scene_sends_is_refused_before_it_is_buffered(data, reason):
    reader = framing.FrameReader(max_payload_bytes=1_000_000)
    with pytest.raises(framing.FramingError, match=reason):
        reader.feed(data)


def test_system_commands_parse_with_unitys_nul_and_extra_keys():
    frame = framing.Frame(
        "__publish", b'{"topic":"cam","message_name":"sensor_msgs/Image","queue_size":5,"latch":true,"x":1}\0'
    )
    assert commands.parse(frame) == commands.Register("__publish", "cam", "sensor_msgs/Image", 5, True)
    assert commands.parse(framing.Frame("__request", b'{"srv_id":101}\0')) == commands.ServiceFrame("__request", 101)
    assert commands.parse(framing.Frame("__remove_subscriber", b'{"topic":"cam"}\0')) == commands.Remove(
        "__remove_subscriber", "cam"
    )
    assert isinstance(commands.parse(framing.Frame("__topic_list", b"{}\0")), commands.TopicList)


@pytest.mark.parametrize(
    ("destination", "payload", "reason"),
    [
        ("__subscribe", b"[1, 2]", "must be a JSON object"),
        ("__subscribe", b'{"topic": "", "message_name": "std_msgs/String"}', "'topic' must be a non-empty string"),
        ("__subscribe", b'{"topic": "a"}', "'message_name' must be a non-empty string"),
        ("__publish", b'{"topic": "a", "message_name": "m/M", "queue_size": 0}', "queue_size"),
        ("__publish", b'{"topic": "a", "message_name": "m/M", "latch": "yes"}', "latch"),
        ("__request", b'{"srv_id": "7"}', "srv_id"),
        ("__frobnicate", b"{}", "unknown system command"),
        ("__subscribe", b"\xff", "not JSON"),
    ],
)
def test_bad_system_commands_say_what_is_wrong(destination, payload, reason):
    with pytest.raises(commands.CommandError, match=reason):
        commands.parse(framing.Frame(destination, payload))


def test_handshake_and_topic_list_are_what_unity_decodes():
    reader = framing.FrameReader(1 << 20)
    (hello,) = reader.feed(commands.handshake())
    body = json.loads(hello.payload)
    assert hello.destination == "__handshake" and body["version"].startswith("v0.7.")
    assert json.loads(body["metadata"]) == {"protocol": "ROS2"}  # a JSON string inside the JSON
    (listing,) = reader.feed(commands.topic_list([("/a", "std_msgs/String"), ("/b", "nav_msgs/Odometry")]))
    assert json.loads(listing.payload) == {"topics": ["/a", "/b"], "types": ["std_msgs/String", "nav_msgs/Odometry"]}
    pair = reader.feed(commands.service_message("__response", 101, "svc", b"\0\1\0\0\1"))
    assert [f.destination for f in pair] == ["__response", "svc"]


def test_type_names_both_ways():
    from nav_msgs.msg import Odometry
    from std_srvs.srv import SetBool

    assert names.resolve("nav_msgs/Odometry", "msg") is Odometry
    assert names.resolve("nav_msgs/msg/Odometry", "msg") is Odometry
    assert names.resolve("std_srvs/SetBool", "srv") is SetBool
    assert names.ros_name(Odometry) == "nav_msgs/msg/Odometry"
    assert names.wire_name("nav_msgs/msg/Odometry") == "nav_msgs/Odometry"
    for bad, reason in [
        ("", "not a type name"),
        ("nav_msgs/srv/Odometry", "a msg was expected"),
        ("no_pkg/X", "no msg type"),
    ]:
        with pytest.raises(names.UnknownType, match=reason):
            names.resolve(bad, "msg")


def test_a_connection_sends_the_newest_of_each_topic_and_keeps_sending():
    """Topic messages queued faster than they are written: the newest ``topic_queue`` of each
    topic go out, in turn, and the writer carries on (a topic listed once per waiting
    message used to pop an empty queue and stop the writer)."""
    import socket
    import threading
    import time

    from sim_bridge.rostcp.connection import Connection

    with socket.create_server(("127.0.0.1", 0)) as server:
        theirs = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    closed = threading.Event()
    conn = Connection(ours, ("test", 0), lambda c, f: None, lambda c: closed.set(), 1 << 20, topic_queue=2)
    for k in range(5):
        conn.send_topic("a", framing.encode("a", bytes([k])))
        conn.send_topic("b", framing.encode("b", bytes([k])))
    conn.start(commands.handshake())
    reader = framing.FrameReader(1 << 20)
    frames = []
    theirs.settimeout(5)
    while len(frames) < 5:
        frames += reader.feed(theirs.recv(4096))
    assert [(f.destination, f.payload) for f in frames] == [
        ("__handshake", frames[0].payload),
        ("a", b"\3"),
        ("b", b"\3"),
        ("a", b"\4"),
        ("b", b"\4"),
    ]
    assert conn.dropped == 6
    time.sleep(0.2)  # the writer has looked for more by now
    conn.send_topic("a", framing.encode("a", b"\5"))  # and is still there
    conn.send_system(commands.message("__log", "still here"))
    while len(frames) < 7:
        frames += reader.feed(theirs.recv(4096))
    assert {f.destination for f in frames[5:]} == {"a", "__log"}
    assert not closed.is_set()
    conn.close()
    theirs.close()
