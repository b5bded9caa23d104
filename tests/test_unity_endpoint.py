"""unity_endpoint against a ROS-TCP client written from the protocol (``rostcp_scene``,
standing in for a Unity scene), with plain rclpy code on the ROS side, across processes."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time

import numpy as np
import pytest
from conftest import REPO, free_port
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message
from ros_helpers import BIN, Probe, fresh_domain, ros_env
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool, Trigger

from sim_bridge.rostcp.scene_stand_in import RosTcpSceneStandIn

pytestmark = pytest.mark.ros


class Endpoint:
    """``unity_endpoint`` in its own process, and a probe node in the same domain."""

    def __init__(self, *params: str):
        self.domain = fresh_domain()
        self.port = free_port()
        cmd = [str(BIN / "unity_endpoint"), "--ros-args", "-p", f"tcp_port:={self.port}"]
        for p in params:
            cmd += ["-p", p]
        # 640×480 images exceed Fast DDS's default shared-memory segment (as sim_node's launch sets it)
        env = ros_env(self.domain, FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / "config" / "fastdds_large_data.xml"))
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.probe = Probe(self.domain, "endpoint_probe")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, self.proc.stdout.read()
                time.sleep(0.1)

    def scene(self) -> RosTcpSceneStandIn:
        scene = RosTcpSceneStandIn(self.port)
        assert scene.wait_for(lambda: scene.system), "no handshake"
        return scene

    def diagnostics(self) -> dict[str, str]:
        from diagnostic_msgs.msg import DiagnosticArray

        from ros_nodes.common import DIAGNOSTICS_QOS

        got = {}

        def on_diag(msg):
            for status in msg.status:
                if status.name == "unity_endpoint":
                    got.update({kv.key: kv.value for kv in status.values})

        sub = self.probe.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, DIAGNOSTICS_QOS)
        self.probe.spin_until(lambda: got, timeout=5)
        self.probe.node.destroy_subscription(sub)
        return got

    def close(self) -> str:
        self.probe.close()
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        return out


@pytest.fixture
def endpoint():
    ep = Endpoint()
    yield ep
    ep.close()


def odometry(x: float) -> Odometry:
    msg = Odometry()
    msg.header.frame_id = "map"
    msg.child_frame_id = "robot_0/twin/base_link"
    msg.pose.pose.position.x = x
    return msg


def test_handshake_first_then_a_subscription_receives_twin_odometry(endpoint):
    scene = endpoint.scene()
    name, body = scene.system[0]
    assert name == "__handshake" and body["version"] == "v0.7.0"
    assert json.loads(body["metadata"]) == {"protocol": "ROS2"}
    scene.subscribe("robot_0/twin/odom", "nav_msgs/Odometry")
    # A driver publishes reliable (REP-2003); a best-effort publisher must reach Unity too.
    reliable = endpoint.probe.node.create_publisher(Odometry, "robot_0/twin/odom", 10)
    best_effort = endpoint.probe.node.create_publisher(Odometry, "robot_0/twin/odom", qos_profile_sensor_data)
    assert endpoint.probe.spin_until(
        lambda: reliable.get_subscription_count() > 0 and best_effort.get_subscription_count() > 0, timeout=10
    )
    for pub in (reliable, best_effort):  # until each publisher is matched both ways (DDS discovery)
        assert endpoint.probe.spin_until(lambda pub=pub: _sent_and_seen(pub, scene, -1.0), timeout=10)
    scene.received.clear()
    for k in range(20):
        (reliable if k % 2 else best_effort).publish(odometry(float(k)))
        time.sleep(0.02)

    def xs():
        return {deserialize_message(p, Odometry).pose.pose.position.x for _, p in scene.received["robot_0/twin/odom"]}

    assert scene.wait_for(lambda: 19.0 in xs())
    assert {0.0, 1.0} <= xs() and len(xs()) >= 18  # both publishers reach Unity (a queue of 2 may drop a few)
    scene.close()


def _sent_and_seen(pub, scene, x: float) -> bool:
    pub.publish(odometry(x))
    time.sleep(0.05)
    return any(
        deserialize_message(p, Odometry).pose.pose.position.x == x for _, p in scene.received["robot_0/twin/odom"]
    )


def test_images_from_the_scene_reach_a_default_qos_subscriber(endpoint):
    scene = endpoint.scene()
    scene.register_publisher("robot_0/twin/camera/image_raw", "sensor_msgs/Image", queue_size=5)
    got = []
    endpoint.probe.node.create_subscription(Image, "robot_0/twin/camera/image_raw", got.append, 10)  # plain default QoS
    image = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
    image.data = np.random.default_rng(0).integers(0, 255, 640 * 480 * 3, dtype=np.uint8).tobytes()
    image.header.frame_id = "warm-up"
    deadline = time.monotonic() + 15
    while not got and time.monotonic() < deadline:  # until the endpoint's publisher and the subscriber match
        scene.publish("robot_0/twin/camera/image_raw", serialize_message(image))
        endpoint.probe.spin_for(0.2)
    got.clear()
    for k in range(5):
        image.header.frame_id = f"frame_{k}"
        scene.publish("robot_0/twin/camera/image_raw", serialize_message(image))
    assert endpoint.probe.spin_until(lambda: len([m for m in got if m.header.frame_id != "warm-up"]) >= 5, timeout=10)
    got[:] = [m for m in got if m.header.frame_id != "warm-up"]
    assert got[-1].width == 640 and bytes(got[-1].data) == bytes(image.data)
    assert [m.header.frame_id for m in got] == [f"frame_{k}" for k in range(5)]  # reliable: none lost
    scene.close()


def test_a_latched_publisher_reaches_a_late_transient_local_subscriber(endpoint):
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    scene = endpoint.scene()
    scene.register_publisher("scene/status", "std_msgs/String", latch=True)
    scene.publish("scene/status", serialize_message(String(data="ready")))
    endpoint.probe.spin_for(0.5)
    got = []
    qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    endpoint.probe.node.create_subscription(String, "scene/status", got.append, qos)
    assert endpoint.probe.spin_until(lambda: got, timeout=10) and got[0].data == "ready"
    scene.close()


def test_services_both_ways(endpoint):
    node = endpoint.probe.node
    calls = []

    def set_bool(request, response):
        calls.append(request.data)
        response.success, response.message = True, f"set to {request.data}"
        return response

    node.create_service(SetBool, "robot_0/enable", set_bool)
    scene = endpoint.scene()
    srv_id = scene.call_ros_service("robot_0/enable", "std_srvs/SetBool", serialize_message(SetBool.Request(data=True)))
    assert endpoint.probe.spin_until(lambda: srv_id in scene.responses, timeout=10)
    reply = deserialize_message(scene.responses[srv_id], SetBool.Response)
    assert calls == [True] and reply.success and reply.message == "set to True"

    # ROS calls a service Unity implements (Trigger: an empty request, which Unity sends as
    # the 4-byte CDR header alone).
    scene.implement_unity_service(
        "scene/reset",
        "std_srvs/Trigger",
        lambda req: serialize_message(Trigger.Response(success=True, message="reset done")),
    )
    client = node.create_client(Trigger, "scene/reset")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert endpoint.probe.spin_until(future.done, timeout=10)
    assert future.result().success and future.result().message == "reset done"
    assert scene.requests and scene.requests[0][0] >= 1001
    scene.close()


def test_a_service_that_is_not_there_still_gets_an_answer():
    """Unity awaits a reply to every call (it has no timeout): it gets a default response and
    an ``__error`` naming the service, after ``service_timeout_s``."""
    endpoint = Endpoint("service_timeout_s:=1.0")
    try:
        scene = endpoint.scene()
        started = time.monotonic()
        srv_id = scene.call_ros_service(
            "nobody/home", "std_srvs/SetBool", serialize_message(SetBool.Request(data=True))
        )
        assert scene.wait_for(lambda: srv_id in scene.responses, timeout_s=20)
        assert 0.9 < time.monotonic() - started < 10
        assert any(name == "__error" and "nobody/home" in body["text"] for name, body in scene.system)
        scene.close()
    finally:
        endpoint.close()


def test_two_clients_each_get_their_own_subscriptions_and_reconnect(endpoint):
    from std_msgs.msg import String

    a, b = endpoint.scene(), endpoint.scene()
    a.subscribe("only_a", "std_msgs/String")
    b.subscribe("only_b", "std_msgs/String")
    a.subscribe("both", "std_msgs/String")
    b.subscribe("both", "std_msgs/String")
    node = endpoint.probe.node
    pubs = {t: node.create_publisher(String, t, 10) for t in ("only_a", "only_b", "both")}
    counts = {"only_a": 1, "only_b": 1, "both": 2}
    assert endpoint.probe.spin_until(
        lambda: all(pubs[t].get_subscription_count() == n for t, n in counts.items()), timeout=10
    )
    for topic, pub in pubs.items():
        pub.publish(String(data=topic))
    assert a.wait_for(lambda: a.received["only_a"] and a.received["both"])
    assert b.wait_for(lambda: b.received["only_b"] and b.received["both"])
    time.sleep(0.3)
    assert "only_b" not in a.received and "only_a" not in b.received
    assert endpoint.diagnostics()["clients"] == "2"

    a.close()  # its subscriptions go with it; b is untouched
    assert endpoint.probe.spin_until(lambda: pubs["both"].get_subscription_count() == 1, timeout=10)
    assert pubs["only_a"].get_subscription_count() == 0
    pubs["both"].publish(String(data="after"))
    assert b.wait_for(lambda: len(b.received["both"]) == 2)
    again = endpoint.scene()  # a client that reconnects registers afresh
    again.subscribe("only_a", "std_msgs/String")
    endpoint.probe.spin_until(lambda: pubs["only_a"].get_subscription_count() == 1, timeout=10)
    pubs["only_a"].publish(String(data="welcome back"))
    assert again.wait_for(lambda: again.received["only_a"])
    again.close()
    b.close()


def test_malformed_frames_are_counted_the_connection_dropped_the_node_alive(endpoint):
    scene = endpoint.scene()
    scene.command("__subscribe", topic="x", message_name="no_such_pkg/Nothing")  # unknown type: __error, kept
    scene.send_raw(scene.frame("__subscribe", b"{not json\0"))  # bad JSON: __error, kept
    scene.send_raw(scene.frame("__frobnicate", b"{}\0"))  # unknown command: __error, kept
    scene.publish("never_registered", b"\0\1\0\0")  # __error, kept
    assert scene.wait_for(lambda: sum(n == "__error" for n, _ in scene.system) >= 4)
    errors = [b["text"] for n, b in scene.system if n == "__error"]
    assert any("no_such_pkg/Nothing" in e for e in errors) and any("__frobnicate" in e for e in errors)
    assert not scene.closed.is_set()
    scene.send_raw(struct.pack("<I", 2**31 - 1) + b"x")  # a destination of 2 GB: the stream is lost
    assert scene.closed.wait(10), "the endpoint kept a connection it cannot resynchronise"
    diag = endpoint.diagnostics()
    assert diag["malformed_frames"] == "1" and int(diag["command_errors"]) >= 4
    fresh = endpoint.scene()  # the node lives on
    assert fresh.system[0][0] == "__handshake"
    fresh.close()
    assert endpoint.proc.poll() is None


def test_a_non_loopback_address_needs_insecure():
    port = free_port()
    done = subprocess.run(
        [str(BIN / "unity_endpoint"), "--ros-args", "-p", "tcp_ip:=0.0.0.0", "-p", f"tcp_port:={port}"],
        env=ros_env(fresh_domain()),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "0.0.0.0 is not a loopback address" in done.stderr and "insecure:=true" in done.stderr
