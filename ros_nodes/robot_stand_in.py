"""``robot_stand_in``: the physical fleet when no hardware is attached.

Its own process and its own PyBullet world, with dynamics that differ from the twin's
(tyre friction, payload mass, motor lag, wheel slip, odometry noise, a clock offset), and the
topics a Husky/Jackal driver speaks, per robot:

  robot_<i>/cmd_vel  (geometry_msgs/Twist, in)   watchdog: stop after cmd_timeout_s
  robot_<i>/odom     (nav_msgs/Odometry, out)    robot_<i>/odom → robot_<i>/base_link
  robot_<i>/scan     (sensor_msgs/LaserScan, out) the robot's own lidar, if scan_rate_hz > 0
  /tf                robot_<i>/odom → robot_<i>/base_link, from the odometry (``publish_tf``)

Published reliable (REP-2003: any subscriber matches); cmd_vel is read best effort.
With ``odom_origin: start`` its odometry starts at (0, 0, 0) wherever each robot stands, as
a real driver's does (the twin bridge's ``initial_poses`` or /initialpose then place it in
the map); with ``world`` (default) its odom frame coincides with the map.

A real robot replaces it by a remap in the launch file (see launch/hil_launch.yaml).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import LaserScan

from ros_nodes import conversions as conv
from ros_nodes import frames
from ros_nodes.common import (
    COMMAND_SUB_QOS,
    SENSOR_PUB_QOS,
    RobotSelectionError,
    load_world_param,
    now_s,
    select_robots,
)
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, one_of, positive
from ros_nodes.runtime import main_for
from sim_bridge.backends import Dynamics
from sim_bridge.fleet import Fleet
from sim_bridge.pacing import Pacer
from sim_bridge.safety import Throttle, Verdict

PARAMS = [
    Param("world", "navigation", "world file (path or shipped name) the robots live in"),
    Param("seed", 0, "episode seed: start poses are drawn from it as in simulation"),
    Param("robot_count", 0, "robots in the world's first group (0: as the world file says)", non_negative),
    Param("only_robots", [""], "robots to stand in for, e.g. [robot_0] (empty: all)"),
    Param("odom_rate_hz", 60.0, "odometry rate; must divide the world's physics rate", positive),
    Param("scan_rate_hz", 10.0, "lidar rate (0: no scan)", non_negative),
    Param("cmd_timeout_s", 0.5, "stop a robot whose last command is older than this", positive),
    Param("friction_scale", 0.8, "tyre friction relative to the twin's", positive),
    Param("mass_scale", 1.15, "chassis mass relative to the twin's (payload)", positive),
    Param("motor_time_constant_s", 0.08, "motor lag from command to wheel speed", non_negative),
    Param("wheel_slip", 0.05, "fraction of wheel speed lost to slip", lambda v: None if 0 <= v < 1 else "in [0, 1)"),
    Param("odom_noise_std_m", 0.0, "white noise on reported positions", non_negative),
    Param("odom_noise_std_rad", 0.0, "white noise on reported headings", non_negative),
    Param("clock_offset_s", 0.0, "this robot's clock minus the wall clock (stamps carry it)"),
    Param(
        "odom_origin",
        "world",
        "world: odometry in world coordinates; start: from (0, 0, 0) where each robot starts, as a real driver's",
        one_of("world", "start"),
    ),
    Param("publish_tf", True, "publish robot_<i>/odom → robot_<i>/base_link on /tf, as a driver does"),
]


class RobotStandIn(Node):
    """The stand-in fleet: PyBullet robots behind driver-like topics."""

    def __init__(self):
        super().__init__("robot_stand_in")
        p = declare_params(self, PARAMS)
        self.p = p
        world = load_world_param(p.world, p.robot_count)
        try:
            served = select_robots(world, [n for n in p.only_robots if n])
        except RobotSelectionError as err:
            raise ParameterError(self.get_name(), [str(err)]) from None
        dynamics = Dynamics(p.friction_scale, p.mass_scale, p.motor_time_constant_s, p.wheel_slip)
        try:
            self.fleet = Fleet(world, p.seed, 1.0 / p.odom_rate_hz, p.cmd_timeout_s, dynamics)
        except ValueError as err:
            raise ParameterError(self.get_name(), [f"'odom_rate_hz': {err}"]) from None
        self.world = world
        self.served = served
        self.rng = np.random.default_rng(p.seed + 7)
        self.throttle = Throttle(2.0)
        self.odom_pubs = {r.index: self.create_publisher(Odometry, f"{r.name}/odom", SENSOR_PUB_QOS) for r in served}
        self.scan_pubs = (
            {r.index: self.create_publisher(LaserScan, f"{r.name}/scan", SENSOR_PUB_QOS) for r in served}
            if p.scan_rate_hz > 0
            else {}
        )
        for r in served:
            self.create_subscription(Twist, f"{r.name}/cmd_vel", self._on_cmd(r.index, r.name), COMMAND_SUB_QOS)
        self._stopped = {r.index: False for r in served}
        self.tf = frames.TfBroadcaster(self) if p.publish_tf else None
        # Where each robot's odometry starts, in the world (its odom frame's pose in the map).
        start = self.fleet.backend.states().poses[0]
        self.odom_origins = {
            r.index: tuple(start[r.index]) if p.odom_origin == "start" else (0.0, 0.0, 0.0) for r in served
        }
        # Real time, as a robot lives it: a process too slow for its robots lets simulated time
        # slip (said in the log) instead of stamping ever older states.
        self.pacer = Pacer(self.fleet.step_s, 1.0, clock=lambda: now_s(self))
        self._next_scan = 0.0
        self.create_timer(self.fleet.step_s, self._tick)
        self.get_logger().info(
            f"standing in for {', '.join(r.name for r in served)} of world {world.name}: odom at "
            f"{p.odom_rate_hz:g} Hz, friction x{p.friction_scale:g}, mass x{p.mass_scale:g}, "
            f"motor lag {p.motor_time_constant_s:g} s, slip {p.wheel_slip:g}"
        )

    def _on_cmd(self, index: int, name: str):
        def callback(msg: Twist) -> None:
            v, w = conv.twist_command(msg)
            result = self.fleet.command(index, v, w)
            if result.verdict is not Verdict.ACCEPTED and self.throttle.ready(f"{name}/{result.verdict}", now_s(self)):
                self.get_logger().warning(f"{name}/cmd_vel: {result.reason}")

        return callback

    def _tick(self) -> None:
        due, slipped = self.pacer.due()
        for _ in range(due):
            self.fleet.step()
            self._publish_odom()
        self.pacer.took(due)
        if slipped and self.throttle.ready("slip", now_s(self)):
            self.get_logger().warning(
                f"cannot keep real time with {len(self.served)} robots: simulated time has slipped "
                f"{self.pacer.slipped_s:.1f} s behind the clock so far (stamps stay on the clock)"
            )
        if self.scan_pubs and self.fleet.time_s >= self._next_scan:
            self._next_scan = self.fleet.time_s + 1.0 / self.p.scan_rate_hz
            self._publish_scans()
        self._report_watchdog()

    def _stamp(self) -> float:
        return self.pacer.clock_at(self.fleet.time_s) + self.p.clock_offset_s

    def _publish_odom(self) -> None:
        states = self.fleet.backend.states()
        stamp = self._stamp()
        transforms = []
        for r in self.served:
            x, y, yaw = frames.compose(frames.invert(self.odom_origins[r.index]), states.poses[0, r.index])
            vx, vy, wz = states.twists[0, r.index]
            if self.p.odom_noise_std_m > 0:
                x, y = np.array([x, y]) + self.rng.normal(0, self.p.odom_noise_std_m, 2)
            if self.p.odom_noise_std_rad > 0:
                yaw += self.rng.normal(0, self.p.odom_noise_std_rad)
            self.odom_pubs[r.index].publish(conv.odometry(stamp, r.name, x, y, yaw, vx, vy, wz))
            transforms.append(
                frames.transform(stamp, frames.odom_frame(r.name), frames.base_frame(r.name), (x, y, yaw))
            )
        if self.tf is not None:
            self.tf.send(transforms)

    def _publish_scans(self) -> None:
        ranges = self.fleet.backend.lidar()[0]
        stamp = self._stamp()
        lidar = self.world.sensors.lidar
        for r in self.served:
            self.scan_pubs[r.index].publish(conv.laser_scan(stamp, r.name, ranges[r.index], lidar, self.p.scan_rate_hz))

    def _report_watchdog(self) -> None:
        for r in self.served:
            gate = self.fleet.gates[r.index]
            if gate.stopped_by_watchdog and not self._stopped[r.index]:
                self.get_logger().warning(
                    f"{r.name}: no cmd_vel for {self.p.cmd_timeout_s:g} s: watchdog stopped the robot"
                )
            self._stopped[r.index] = gate.stopped_by_watchdog

    def on_shutdown(self) -> None:
        self.fleet.close()


main = main_for(RobotStandIn, "robot_stand_in")
