"""Two ``LinkSite``s over real zenoh sessions on loopback, without ROS: what the node does,
minus rclpy. A recording port stands in for the ROS side (it keeps what would have been
published, and on which thread). Commands cross and are judged fresh across sites whose
clocks differ by seconds; hostile frames, reports and probes from a third session are
counted and the traffic goes on; images are encoded and decoded off the threads that
carry commands."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from sern.link_cmd import format_report
from sim_bridge.link import codec, image_cdr, probes, wire
from sim_bridge.link.mmcf import PROFILES
from sim_bridge.link.site import PROBE_KEY, REPORT_KEY, LinkOptions, LinkSite
from sim_bridge.link.spec import LinkConfig
from sim_bridge.link.status import fmt
from sim_bridge.link.transport import SessionSettings, open_session

CMD, CAM = "/robot_0/cmd_vel", "/robot_0/camera/image_raw"
TWIST = b"\x00\x01\x00\x00" + bytes(48)
CONFIG = LinkConfig.model_validate(
    {
        "sites": ["robot", "twin"],
        "topics": [
            {"pattern": "/robot_*/cmd_vel", "type": "geometry_msgs/msg/Twist", "from": "twin", "class": "control"},
            {
                "pattern": "/robot_*/camera/image_raw",
                "type": "sensor_msgs/msg/Image",
                "from": "robot",
                "class": "image",
            },
        ],
    }
)


class RecordingPort:
    """Stands in for the node's ROS side: records what it is asked to publish."""

    def __init__(self):
        self.published: list[tuple[str, bytes, str]] = []  # topic, data, thread name
        self.log: list[str] = []

    def publish(self, topic, type_name, data, latched) -> bool:
        self.published.append((topic, data, threading.current_thread().name))
        return True

    def has_subscribers(self, topic) -> bool:
        return True

    def info(self, message) -> None:
        self.log.append(message)

    def warning(self, message) -> None:
        self.log.append(message)

    def of(self, topic: str) -> list[bytes]:
        return [d for t, d, _ in self.published if t == topic]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sites():
    """(robot, twin) sites and their ports, linked; the robot's clock 5 s ahead."""
    port = _port()
    endpoint = f"tcp/127.0.0.1:{port}"
    sessions = [open_session(SessionSettings(listen=[endpoint])), open_session(SessionSettings(connect=[endpoint]))]
    built = []
    for session, site, clock_offset in zip(sessions, ("robot", "twin"), (5.0, 0.0), strict=True):
        options = LinkOptions(True, PROFILES["nominal"], 5e6, "nominal", False, clock_offset_s=clock_offset)
        port_ = RecordingPort()
        built.append((LinkSite(session, CONFIG, site, options, port_), port_))
    (robot, robot_port), (twin, twin_port) = built
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (robot.link_up and twin.link_up):
        robot.probe()
        twin.probe()
        time.sleep(0.05)
    assert robot.link_up and twin.link_up, robot_port.log + twin_port.log
    yield robot, robot_port, twin, twin_port, endpoint
    for site, _ in built:
        site.close()
    for session in sessions:
        session.close()


def _until(condition, timeout: float = 10.0, step=None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if step:
            step()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_commands_cross_fresh_between_sites_whose_clocks_differ(sites):
    robot, robot_port, twin, _, _ = sites
    cmd = twin.add_outgoing(CMD, "geometry_msgs/msg/Twist", CONFIG.rule_for(CMD, "geometry_msgs/msg/Twist"))
    for _ in range(20):
        twin.offer(cmd, TWIST)
        robot.probe()
        time.sleep(0.02)
    assert _until(lambda: len(robot_port.of(CMD)) >= 15)
    assert robot.clock.offset_s() == pytest.approx(-5.0, abs=0.05)  # twin's clock minus the robot's
    values = robot.statuses()[0].values
    assert values["stale_dropped"] == 0 and values["clock_offset_ms"] == pytest.approx(-5000.0, abs=50)
    # Commands go straight through on the thread they arrive on: no hop through a queue.
    assert not any(name.startswith("decode") for _, _, name in robot_port.published)


def test_hostile_frames_reports_and_probes_are_counted_and_traffic_goes_on(sites):
    robot, robot_port, twin, _, endpoint = sites
    import zenoh

    intruder = open_session(SessionSettings(connect=[endpoint]))
    try:
        time.sleep(1.0)  # its subscriptions reach the robot's session
        garbage = [
            (f"{REPORT_KEY}/twin", b"[1, 2, 3]"),
            (f"{REPORT_KEY}/twin", b'{"/robot_0/camera/image_raw": {"received": 1}}'),
            (f"{PROBE_KEY}/twin/ping", b"ping?"),
            (f"{PROBE_KEY}/twin/pong", probes.pong(1, 1.0, 2.0, 3.0)[:-2]),
            (wire.topic_key("twin", CMD), b"SL\x01garbage"),
            (wire.topic_key("twin", CMD), b"not ours at all"),
        ]
        for key, payload in garbage:
            intruder.put(key, payload, congestion_control=zenoh.CongestionControl.BLOCK)
        assert _until(lambda: robot.faults.snapshot()["malformed_frames"] == 2, step=robot.probe)
        faults = robot.faults.snapshot()
        assert (faults["malformed_reports"], faults["malformed_probes"]) == (2, 2), faults
        cmd = twin.add_outgoing(CMD, "geometry_msgs/msg/Twist", CONFIG.rule_for(CMD, "geometry_msgs/msg/Twist"))
        assert _until(lambda: robot_port.of(CMD), step=lambda: twin.offer(cmd, TWIST))
        assert robot.link_up and robot.monitor.estimate(time.monotonic()).up
        assert sum("so far" in line for line in robot_port.log) <= 4  # one throttled line per kind
        # What `sern link status` shows of it.
        statuses = {
            s.name: {"message": s.message, "values": {k: fmt(v) for k, v in s.values.items()}} for s in robot.statuses()
        }
        assert "refused: malformed_frames 2, malformed_reports 2, malformed_probes 2" in format_report(statuses)
    finally:
        intruder.close()


def test_images_are_encoded_and_decoded_off_the_command_threads(sites, monkeypatch):
    robot, _, _, twin_port, _ = sites
    threads = {"encode": set(), "decode": set()}
    real_encode, real_decode = codec.encode, codec.decode

    def slow_encode(image, enc):
        threads["encode"].add(threading.current_thread().name)
        time.sleep(0.2)  # an encoder far slower than a command period
        return real_encode(image, enc)

    def recording_decode(data, codec_, max_bytes=None):
        threads["decode"].add(threading.current_thread().name)
        return real_decode(data, codec_, max_bytes)

    monkeypatch.setattr(codec, "encode", slow_encode)
    monkeypatch.setattr(codec, "decode", recording_decode)
    monkeypatch.setattr(codec, "profile_encodings", lambda frame, encodings: {})
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    image = image_cdr.image_bytes(1, 2, "robot_0/camera", frame)
    cam = robot.add_outgoing(CAM, "sensor_msgs/msg/Image", CONFIG.rule_for(CAM, "sensor_msgs/msg/Image"))
    started = time.monotonic()
    for _ in range(5):
        robot.offer(cam, image)  # newest frame wins: most of these are superseded
    offered_in = time.monotonic() - started
    assert offered_in < 0.1, f"offering 5 frames blocked the caller {offered_in:.2f} s"
    assert _until(lambda: twin_port.of(CAM))
    assert threads["encode"] and threading.current_thread().name not in threads["encode"]
    assert all(name.startswith("encode ") for name in threads["encode"])
    assert all(name.startswith("decode ") for name in threads["decode"])
    assert robot.faults.count("images_superseded") >= 1
    header, pixels = image_cdr.parse_image(twin_port.of(CAM)[-1])
    assert header.frame_id == "robot_0/camera" and pixels.shape == (24, 32, 3)  # JPEG at half scale to start


def test_a_publisher_the_planner_replaces_while_threads_send_is_undeclared_once_free(
    sites, monkeypatch, frequent_switches
):
    """The planner switches a command stream between reliable and best effort (a new zenoh
    publisher each time) while three threads send on it. Undeclaring a publisher a put was
    using raised ``RuntimeError: Already borrowed`` and ended the node; now nothing raises,
    commands keep crossing, and every replaced publisher is undeclared once no put holds it."""
    import dataclasses

    from sim_bridge.link import planner

    _, robot_port, twin, twin_port, _ = sites
    cmd = twin.add_outgoing(CMD, "geometry_msgs/msg/Twist", CONFIG.rule_for(CMD, "geometry_msgs/msg/Twist"))

    real_plan = planner.plan

    def flip(streams, *args):  # the planner's prediction, and each time the other reliability
        decisions = real_plan(streams, *args)
        return {
            s.topic: planner.Decision(
                dataclasses.replace(s.config, reliable=not s.config.reliable), decisions[s.topic].prediction
            )
            for s in streams
        }

    monkeypatch.setattr(planner, "plan", flip)
    errors: list[BaseException] = []
    stop = threading.Event()

    def send():
        try:
            while not stop.is_set():
                twin.offer(cmd, TWIST)
        except BaseException as err:
            errors.append(err)

    senders = [threading.Thread(target=send) for _ in range(3)]
    try:
        for t in senders:
            t.start()
        for _ in range(150):
            twin.plan()
            time.sleep(0.002)
        stop.set()
        for t in senders:
            t.join(5)
    finally:
        stop.set()
    assert not errors, errors
    switches = [line for line in twin_port.log if line.startswith(f"{CMD}: ")]
    assert len(switches) == 150, twin_port.log[-5:]  # a new publisher every time
    monkeypatch.undo()
    twin._undeclare_replaced()
    assert twin._replaced == []  # all undeclared, none left behind
    crossed = len(robot_port.of(CMD))
    assert crossed > 0
    assert _until(lambda: len(robot_port.of(CMD)) > crossed, step=lambda: twin.offer(cmd, TWIST))
