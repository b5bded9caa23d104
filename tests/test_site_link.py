"""Site links on real graphs: two ROS domains (two sites) joined by Zenoh on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from ros_helpers import BIN, Probe, fresh_domain, link_status, ros_env
from sensor_msgs.msg import Image

from ros_nodes import conversions as conv
from ros_nodes.common import GOAL_QOS, STATE_QOS

pytestmark = pytest.mark.ros
CONFIG = str(__import__("conftest").REPO / "config" / "site_link.yaml")


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def start_site(site: str, domain: int, *params: str, log=subprocess.DEVNULL) -> subprocess.Popen:
    cmd = [str(BIN / "site_link"), "--ros-args", "-p", f"site:={site}", "-p", f"config:={CONFIG}"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, env=ros_env(domain), stdout=log, stderr=subprocess.STDOUT, text=True)


def stop(*procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def endpoints(ports) -> str:
    return f"['tcp/127.0.0.1:{ports[0]}', 'udp/127.0.0.1:{ports[1]}']"


def link_level(probe: Probe, site: str, timeout: float = 2.0):
    """The link status level (b"\\x00" OK ...), or None when nothing was reported."""
    status = link_status(probe, site, timeout)
    return None if status is None else status.level


def test_odom_images_and_commands_cross_between_sites(tmp_path):
    d_robot, d_twin = fresh_domain(), fresh_domain()
    ports = free_ports(2)
    robot = start_site("robot", d_robot, f"listen:={endpoints(ports)}")
    twin = start_site("twin", d_twin, f"connect:={endpoints(ports)}")
    here, there = Probe(d_robot, "robot_side"), Probe(d_twin, "twin_side")
    try:
        odom_pub = here.node.create_publisher(Odometry, "/robot_0/odom", 10)
        img_pub = here.node.create_publisher(Image, "/robot_0/camera/image_raw", 10)
        cmd_pub = there.node.create_publisher(Twist, "/robot_0/cmd_vel", 10)
        got_odom, got_img, got_cmd = [], [], []
        there.node.create_subscription(Odometry, "/robot_0/odom", got_odom.append, STATE_QOS)
        there.node.create_subscription(Image, "/robot_0/camera/image_raw", got_img.append, STATE_QOS)
        here.node.create_subscription(Twist, "/robot_0/cmd_vel", got_cmd.append, STATE_QOS)
        rng = np.random.default_rng(0)
        frame = np.clip(rng.normal(128, 40, (240, 320, 3)), 0, 255).astype(np.uint8)
        deadline = time.monotonic() + 40
        k = 0
        while time.monotonic() < deadline and not (len(got_odom) > 20 and got_img and len(got_cmd) > 10):
            odom_pub.publish(conv.odometry(time.time(), "robot_0", 1.0 + k, 2.0, 0.3, 0.5, 0.0, 0.1))
            if k % 3 == 0:
                img_pub.publish(conv.rgb_image(time.time(), "robot_0/camera", frame))
            msg = conv.twist(0.4, -0.2)
            msg.angular.x = float(k)
            cmd_pub.publish(msg)
            k += 1
            here.spin_for(0.02)
            there.spin_for(0.02)
        assert len(got_odom) > 20, "odometry did not cross"
        o = got_odom[-1]
        assert o.header.frame_id == "robot_0/odom" and o.pose.pose.position.y == pytest.approx(2.0)
        assert conv.quaternion_yaw(o.pose.pose.orientation) == pytest.approx(0.3)
        assert got_img, "no camera frame crossed"
        img = got_img[-1]
        assert img.encoding == "rgb8" and img.header.frame_id == "robot_0/camera"
        assert (img.width, img.height) in ((320, 240), (160, 120), (80, 60))
        assert len(got_cmd) > 10
        assert got_cmd[-1].linear.x == pytest.approx(0.4) and got_cmd[-1].angular.z == pytest.approx(-0.2)
        values = {kv.key: kv.value for kv in link_status(there, "twin").values}
        assert values["up"] == "True" and float(values["rtt_ms"]) < 20
        status = subprocess.run(
            [str(BIN / "sern"), "link", "status", "--once"],
            env=ros_env(d_robot),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 0, status.stderr
        assert "robot: link to twin: link up" in status.stdout
        assert "/robot_0/odom" in status.stdout and "J " in status.stdout
    finally:
        here.close()
        there.close()
        stop(robot, twin)


def test_wrong_endpoint_dead_peer_and_a_link_that_comes_back_resend_the_latest_goal_never_a_stale_command(tmp_path):
    d_robot, d_twin = fresh_domain(), fresh_domain()
    ports = free_ports(2)
    log = open(tmp_path / "twin.log", "w")  # noqa: SIM115
    twin = start_site("twin", d_twin, f"connect:={endpoints(ports)}", log=log)  # nobody listens yet
    robot = None
    here, there = Probe(d_robot, "robot_side"), Probe(d_twin, "twin_side")
    try:
        status = link_status(there, "twin")
        assert status is not None and status.level == b"\x02" and "no session" in status.message
        cmd_pub = there.node.create_publisher(Twist, "/robot_0/cmd_vel", 10)
        goal_pub = there.node.create_publisher(PoseStamped, "/robot_0/goal_pose", GOAL_QOS)
        for i in range(15):  # commands while the other site is unreachable; the last says 7
            msg = conv.twist(0.6, 0.0)
            msg.angular.x = 7.0 if i == 14 else 0.0
            cmd_pub.publish(msg)
            if i == 10:
                goal_pub.publish(conv.pose_stamped(time.time(), "map", 3.0, 4.0))
            there.spin_for(0.2)
        assert twin.poll() is None  # still running, still trying
        robot = start_site("robot", d_robot, f"listen:={endpoints(ports)}")
        got, goals = [], []
        here.node.create_subscription(Twist, "/robot_0/cmd_vel", got.append, STATE_QOS)
        here.node.create_subscription(PoseStamped, "/robot_0/goal_pose", goals.append, GOAL_QOS)
        # The latest goal is sent again once the link is up ...
        assert here.spin_until(lambda: goals, timeout=30), "the latest goal did not cross after the link came up"
        assert goals[-1].pose.position.x == pytest.approx(3.0)
        # ... but the commands from before are seconds old: the robot never gets them.
        here.spin_for(1.0)
        assert not got, [m.angular.x for m in got]
        fresh = conv.twist(0.1, 0.0)
        fresh.angular.x = 8.0
        for _ in range(100):
            cmd_pub.publish(fresh)
            there.spin_for(0.05)
            here.spin_for(0.05)
            if got:
                break
        assert got and all(m.angular.x == 8.0 for m in got), [m.angular.x for m in got]
        # The robot site dies: the twin site notices; it comes back: traffic resumes.
        robot.send_signal(signal.SIGKILL)
        robot.wait()
        assert there.spin_until(lambda: link_level(there, "twin") not in (None, b"\x00"), timeout=20)
        robot = start_site("robot", d_robot, f"listen:={endpoints(ports)}")
        assert there.spin_until(lambda: link_level(there, "twin") == b"\x00", timeout=30)
    finally:
        here.close()
        there.close()
        stop(*(p for p in (robot, twin) if p is not None))
        log.close()


def test_wrong_credentials_are_refused(tmp_path):
    (tmp_path / "accepted").write_text("twin:right-secret\n")
    (tmp_path / "robot_pw").write_text("robot-secret\n")
    (tmp_path / "good_pw").write_text("right-secret\n")
    (tmp_path / "bad_pw").write_text("guess\n")
    d_robot, d_twin = fresh_domain(), fresh_domain()
    ports = free_ports(2)
    robot = start_site(
        "robot",
        d_robot,
        f"listen:={endpoints(ports)}",
        "user:=robot",
        f"password_file:={tmp_path / 'robot_pw'}",
        f"credentials_file:={tmp_path / 'accepted'}",
    )
    here = Probe(d_robot, "robot_side")
    pub = here.node.create_publisher(Odometry, "/robot_0/odom", 10)
    try:
        for password, should_connect in (("bad_pw", False), ("good_pw", True)):
            twin = start_site(
                "twin", d_twin, f"connect:={endpoints(ports)}", "user:=twin", f"password_file:={tmp_path / password}"
            )
            there = Probe(d_twin, "twin_side")
            try:
                got = []
                there.node.create_subscription(Odometry, "/robot_0/odom", got.append, STATE_QOS)
                end = time.monotonic() + (12 if not should_connect else 30)
                while time.monotonic() < end and not got:
                    pub.publish(conv.odometry(time.time(), "robot_0", 1.0, 2.0, 0.0, 0.0, 0.0, 0.0))
                    here.spin_for(0.05)
                    there.spin_for(0.05)
                status = link_status(there, "twin")
                assert status is not None, "the twin site reported nothing"
                if should_connect:
                    assert got and status.level == b"\x00"
                else:
                    assert not got and "no session" in status.message
            finally:
                there.close()
                stop(twin)
    finally:
        here.close()
        stop(robot)


def test_bad_settings_exit_2_with_a_message():
    env = ros_env(fresh_domain())
    cases = [
        (["-p", "site:=robot", "-p", f"config:={CONFIG}", "-p", "listen:=['localhost:7447']"], "not an endpoint"),
        (["-p", "site:=moon", "-p", f"config:={CONFIG}", "-p", "listen:=['tcp/127.0.0.1:1']"], "unknown site 'moon'"),
        (["-p", "site:=robot", "-p", "config:=/nope.yaml", "-p", "listen:=['tcp/127.0.0.1:1']"], "no such file"),
        (["-p", "site:=robot", "-p", f"config:={CONFIG}"], "give 'listen' and/or 'connect'"),
    ]
    for params, message in cases:
        res = subprocess.run(
            [str(BIN / "site_link"), "--ros-args", *params], env=env, capture_output=True, text=True, timeout=30
        )
        assert res.returncode == 2, (params, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr
