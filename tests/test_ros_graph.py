"""Integration: real rclpy graphs across processes, started with ``sern launch``."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_helpers import BIN, Launched, Probe, fresh_domain, ros_env
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan

from ros_nodes import conversions as conv
from ros_nodes.common import STATE_QOS

pytestmark = pytest.mark.ros

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture
def domain():
    return fresh_domain()


def _track(probe: Probe, topic: str, msg_type=Odometry, qos=STATE_QOS):
    rows = []
    probe.node.create_subscription(msg_type, topic, lambda m: rows.append((time.monotonic(), m)), qos)
    return rows


def test_sim_publishes_odom_scan_goal_and_clock_at_their_rates(domain):
    graph = Launched(["sim_launch.yaml", "policy:=none"], domain)
    probe = Probe(domain)
    try:
        odom = _track(probe, "robot_0/odom")
        scans = _track(probe, "robot_2/scan", LaserScan)
        goals = _track(probe, "robot_3/goal_pose", PoseStamped, LATCHED)
        clock = _track(probe, "/clock", Clock, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        assert probe.spin_until(lambda: len(odom) > 5, timeout=30), graph.output()
        odom.clear()
        scans.clear()
        probe.spin_for(3.0)
        odom_hz, scan_hz = len(odom) / 3.0, len(scans) / 3.0
        assert odom_hz == pytest.approx(60.0, rel=0.1)
        assert scan_hz == pytest.approx(10.0, rel=0.2)
        msg = odom[-1][1]
        assert (msg.header.frame_id, msg.child_frame_id) == ("robot_0/odom", "robot_0/base_link")
        scan = scans[-1][1]
        assert len(scan.ranges) == 180 and scan.header.frame_id == "robot_2/base_link"
        assert scan.range_max == pytest.approx(10.0)
        assert goals and goals[0][1].header.frame_id == "map"
        assert 6.5 <= goals[0][1].pose.position.x <= 8.0  # the world's goal region
        assert clock
    finally:
        probe.close()
        assert graph.stop() in (0, 130)


def test_cmd_vel_moves_the_robot_and_the_watchdog_stops_it(domain):
    graph = Launched(["sim_launch.yaml", "policy:=none"], domain)
    probe = Probe(domain)
    try:
        odom = _track(probe, "robot_1/odom")
        pub = probe.node.create_publisher(Twist, "robot_1/cmd_vel", 10)
        assert probe.spin_until(lambda: len(odom) > 5 and pub.get_subscription_count() > 0, timeout=30)
        start = odom[-1][1].pose.pose.position
        t_cmd = time.monotonic()
        while time.monotonic() - t_cmd < 2.0:
            pub.publish(conv.twist(0.5, 0.0))
            probe.spin_for(0.05)
        last_cmd = time.monotonic()
        moved = math.hypot(odom[-1][1].pose.pose.position.x - start.x, odom[-1][1].pose.pose.position.y - start.y)
        assert moved == pytest.approx(0.5 * 2.0, rel=0.25)  # ramp-up and start-up included
        probe.spin_for(1.5)
        after = [(t - last_cmd, m.twist.twist.linear.x) for t, m in odom if t > last_cmd]
        braking = next(t for t, v in after if v < 0.45)
        resting = next(t for t, v in after if abs(v) < 0.02)
        assert braking <= 0.6 + 0.05, after[:50]  # watchdog at 0.5 s, one odom period late at most
        assert resting <= 0.6 + 0.5 / 3.0 + 0.15  # then braking at 3 m/s²
        assert abs(odom[-1][1].twist.twist.linear.x) < 0.02
    finally:
        probe.close()
        graph.stop()


def test_nan_and_excessive_commands_are_refused_or_clamped(domain):
    graph = Launched(["sim_launch.yaml", "policy:=none"], domain)
    probe = Probe(domain)
    try:
        odom = _track(probe, "robot_0/odom")
        pub = probe.node.create_publisher(Twist, "robot_0/cmd_vel", 10)
        assert probe.spin_until(lambda: len(odom) > 5 and pub.get_subscription_count() > 0, timeout=30)
        x0 = odom[-1][1].pose.pose.position.x
        for _ in range(20):
            pub.publish(conv.twist(math.nan, 0.0))
            probe.spin_for(0.05)
        assert abs(odom[-1][1].pose.pose.position.x - x0) < 0.01  # NaN never moved it
        graph.wait_for(r"robot_0/cmd_vel: non-finite command")
        for _ in range(40):
            pub.publish(conv.twist(5.0, 0.0))
            probe.spin_for(0.05)
        speeds = [m.twist.twist.linear.x for _, m in odom[-20:]]
        assert max(speeds) < 1.05 and max(speeds) > 0.9  # the Husky's 1 m/s
        graph.wait_for(r"robot_0/cmd_vel: command \(v=5, ω=0\) beyond limits")
    finally:
        probe.close()
        graph.stop()


def test_killed_node_is_reported_and_the_rest_shut_down_cleanly(domain):
    graph = Launched(["twin_launch.yaml"], domain)
    try:
        graph.wait_for(r"\[policy_node-\d+\].*driving robot_0", timeout=60)
        graph.wait_for(r"\[twin_bridge-\d+\].*bridging", timeout=30)
        pid = graph.pid_of("policy_node")
        os.kill(pid, signal.SIGKILL)
        graph.wait_for(rf"process has died: policy_node-\d+ \(pid {pid}\) killed by SIGKILL")
        graph.wait_for(r"stopping the other 3 process\(es\)")
        code = graph.stop(timeout=30)
        out = graph.output()
        assert code == 1
        for name in ("robot_stand_in", "twin_bridge", "twin_sim"):
            assert re.search(rf"process stopped: {name}-\d+ \(pid \d+\) exited with code 0", out), out
        assert "Traceback" not in out
    finally:
        graph.stop()


def test_sigterm_stops_every_node_cleanly(domain):
    graph = Launched(["sim_launch.yaml"], domain)
    graph.wait_for(r"\[policy_node-\d+\].*driving", timeout=30)
    graph.wait_for(r"\[sim_node-\d+\].*world navigation", timeout=30)
    code = graph.stop(signal.SIGTERM)
    out = graph.output()
    assert code == 0, out
    assert "SIGTERM received: stopping 2 process(es)" in out
    assert len(re.findall(r"process stopped: \w+-\d+ \(pid \d+\) exited with code 0", out)) == 2, out
    assert "Traceback" not in out


def test_bad_parameters_give_a_clear_error(domain, tmp_path):
    graph = Launched(["sim_launch.yaml", "real_time_factor:=-1", "policy:=none"], domain)
    code = graph.proc.wait(timeout=30)
    graph.stop()
    out = graph.output()
    assert code == 2, out
    assert "'real_time_factor': must be >= 0, got -1.0" in out
    assert "Traceback" not in out
    env = ros_env(domain)
    direct = subprocess.run(
        [str(BIN / "twin_bridge"), "--ros-args", "-p", "publish_rate_hz:=fast", "-p", "odom_rat_hz:=5.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert direct.returncode == 2
    assert "unknown parameter 'odom_rat_hz'" in direct.stderr
    assert "'publish_rate_hz': must be a number, got 'fast'" in direct.stderr
    world = tmp_path / "w.yaml"
    world.write_text("name: w\narena: {size_m: [5, 5]}\nrobots: []\ntask: {name: navigation}\n")
    bad_world = subprocess.run(
        [str(BIN / "policy_node"), "--ros-args", "-p", f"world:={world}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad_world.returncode == 2
    assert "w.yaml:3: robots" in bad_world.stderr and "Traceback" not in bad_world.stderr
    unknown_arg = subprocess.run(
        [str(BIN / "sern"), "launch", "sim_launch.yaml", "robtos:=3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unknown_arg.returncode == 2
    assert "unknown launch argument(s) robtos" in unknown_arg.stderr


def test_recording_writes_an_mcap_file_that_decodes(domain, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    target = tmp_path / "run.mcap"
    graph = Launched(["sim_launch.yaml", f"record:={target}"], domain)
    graph.wait_for(r"\[recorder-\d+\].*recording all topics", timeout=30)
    graph.wait_for(r"\[policy_node-\d+\].*episode \d+ \(seed", timeout=60)  # driving (a loaded machine starts it late)
    time.sleep(5.0)
    assert graph.stop() in (0, 130)
    graph.wait_for(r"\[recorder-\d+\].*wrote \d+ messages")
    with open(target, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        topics = {c.topic for c in summary.channels.values()}
        assert {"/robot_0/odom", "/robot_0/cmd_vel", "/robot_0/scan", "/robot_0/goal_pose", "/clock"} <= topics
        schemas = {s.name: s for s in summary.schemas.values()}
        assert schemas["nav_msgs/msg/Odometry"].encoding == "ros2msg"
        assert b"MSG: std_msgs/Header" in schemas["nav_msgs/msg/Odometry"].data
        xs = [
            msg.pose.pose.position.x
            for _, channel, _, msg in reader.iter_decoded_messages(topics=["/robot_0/odom"])
            if channel.topic == "/robot_0/odom"
        ]
    assert len(xs) > 100
    assert max(xs) - min(xs) > 0.5  # the policy drove it


def test_policy_node_serves_the_shipped_checkpoint(domain, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from policies.registry import shipped_checkpoint

    if shipped_checkpoint("navigation") is None:
        pytest.fail("policies/checkpoints/navigation.pt is not in the repository")
    target = tmp_path / "learned.mcap"
    graph = Launched(["sim_launch.yaml", "policy:=learned", f"record:={target}"], domain)
    graph.wait_for(r"\[policy_node-\d+\].*driving robot_0.* with policy learned", timeout=60)
    graph.wait_for(r"\[recorder-\d+\].*recording all topics", timeout=30)
    time.sleep(6.0)
    assert graph.stop() in (0, 130)
    graph.wait_for(r"\[recorder-\d+\].*wrote \d+ messages")
    with open(target, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        xs = [
            msg.pose.pose.position.x
            for _, channel, _, msg in reader.iter_decoded_messages(topics=["/robot_0/odom"])
            if channel.topic == "/robot_0/odom"
        ]
    assert len(xs) > 100
    assert xs[-1] - xs[0] > 1.0  # the learned policy drove robot_0 toward its goals (east)


def test_twin_follows_its_robot_and_a_dead_peer_is_reported(domain, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    env = ros_env(domain)
    stand_in_cmd = [str(BIN / "robot_stand_in"), "--ros-args", "-p", "scan_rate_hz:=0.0"]
    procs = {
        "stand_in": subprocess.Popen(stand_in_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "bridge": subprocess.Popen(
            [str(BIN / "twin_bridge"), "--ros-args", "-p", "dead_after_s:=1.5"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    }
    probe = Probe(domain)
    try:
        odom = _track(probe, "robot_0/odom")
        twin = _track(probe, "robot_0/twin/odom")
        diags = _track(probe, "/diagnostics", DiagnosticArray, 10)
        pub = probe.node.create_publisher(Twist, "robot_0/cmd_vel", 10)
        assert probe.spin_until(lambda: len(twin) > 10, timeout=40)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6.0:  # drive a curve
            pub.publish(conv.twist(0.8, 0.6))
            probe.spin_for(0.05)
        truth = np.array([conv.odometry_state(m) for _, m in odom])
        est = np.array([conv.odometry_state(m) for _, m in twin if conv.seconds(m.header.stamp) > truth[5, 0]])
        est = est[est[:, 0] < truth[-1, 0]]
        x = np.interp(est[:, 0], truth[:, 0], truth[:, 1])
        y = np.interp(est[:, 0], truth[:, 0], truth[:, 2])
        err = np.hypot(est[:, 1] - x, est[:, 2] - y)
        assert np.percentile(err, 95) < 0.01, np.percentile(err, 95)
        status = _robot_status(diags, "twin_bridge: robot_0")
        assert status.level == DiagnosticStatus.OK and status.message == "twin in sync"
        values = {kv.key: kv.value for kv in status.values}
        assert float(values["position_error_m"]) < 0.02 and float(values["delay_ms"]) < 20
        # The robot's side goes away: stale, then dead; the twin is held, not lost.
        procs["stand_in"].send_signal(signal.SIGKILL)
        procs["stand_in"].wait()
        n = len(twin)
        assert probe.spin_until(
            lambda: _robot_status(diags, "twin_bridge: robot_0").level == DiagnosticStatus.ERROR, timeout=10
        )
        assert "peer dead" in _robot_status(diags, "twin_bridge: robot_0").message
        assert len(twin) > n + 50  # still publishing the held twin
        held = twin[-1][1].pose.pose.position
        probe.spin_for(0.5)
        assert math.hypot(twin[-1][1].pose.pose.position.x - held.x, twin[-1][1].pose.pose.position.y - held.y) < 0.01
        # It comes back: the bridge picks it up again.
        procs["stand_in"] = subprocess.Popen(
            stand_in_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert probe.spin_until(
            lambda: _robot_status(diags, "twin_bridge: robot_0").level == DiagnosticStatus.OK, timeout=30
        )
        assert procs["bridge"].poll() is None
    finally:
        probe.close()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=15)


def _robot_status(diags, name):
    for _, msg in reversed(diags):
        for status in msg.status:
            if status.name == name:
                return status
    return type("Missing", (), {"level": b"\xff", "message": "", "values": []})()
