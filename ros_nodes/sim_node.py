"""``sim_node``: steps a world on its backend and speaks for its robots on ROS topics.

mode ``sim`` (default): the simulated robots are the robots. Per robot ``robot_<i>``:
  cmd_vel (geometry_msgs/Twist, in; watchdog stops a robot after cmd_timeout_s),
  odom (nav_msgs/Odometry), scan (sensor_msgs/LaserScan),
  camera/image_raw (sensor_msgs/Image, if ``camera`` and the world has a camera),
  goal_pose (geometry_msgs/PoseStamped, latched) for tasks with goals;
  and /clock (rosgraph_msgs/Clock) for nodes with use_sim_time; on /tf
  ``robot_<i>/odom → robot_<i>/base_link`` and on /tf_static ``map → robot_<i>/odom`` (the
  identity: a simulated robot's odometry is exact).
  Runs at ``real_time_factor`` × wall time (0: as fast as it can).

mode ``twin``: the simulated robots are virtual twins placed where ``robot_<i>/twin/odom``
(from the twin bridge) says; publishes the twins' virtual sensors on
``robot_<i>/twin/scan`` and ``robot_<i>/twin/camera/image_raw`` (frames ``robot_<i>/twin/...``),
and goal_pose.

QoS (REP-2003): sensor topics and /clock reliable (any subscriber matches); twin poses and
commands read best effort; goal_pose latched.
"""

from __future__ import annotations

import os
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, LaserScan

from ros_nodes import conversions as conv
from ros_nodes import frames
from ros_nodes.common import (
    CLOCK_QOS,
    COMMAND_SUB_QOS,
    GOAL_QOS,
    SENSOR_PUB_QOS,
    SENSOR_SUB_QOS,
    load_world_param,
    now_s,
)
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, one_of, positive
from ros_nodes.runtime import main_for
from sim_bridge.fleet import Fleet
from sim_bridge.safety import Throttle, Verdict

PARAMS = [
    Param("world", "navigation", "world file (path or shipped name)"),
    Param("seed", 0, "episode seed (start poses, goals)"),
    Param("robot_count", 0, "robots in the world's first group (0: as the world file says)", non_negative),
    Param("mode", "sim", "sim: simulate the robots; twin: place twins from robot_<i>/twin/odom", one_of("sim", "twin")),
    Param("real_time_factor", 1.0, "simulated seconds per wall second (0: as fast as possible)", non_negative),
    Param("odom_rate_hz", 60.0, "odometry (and stepping) rate; must divide the physics rate", positive),
    Param("scan_rate_hz", 10.0, "lidar rate (0: none)", non_negative),
    Param("camera", False, "publish camera images (needs sensors.camera in the world)"),
    Param("camera_rate_hz", 0.0, "camera rate (0: the world's camera rate)", non_negative),
    Param("cmd_timeout_s", 0.5, "stop a robot whose last command is older than this", positive),
]


class SimNode(Node):
    def __init__(self):
        super().__init__("sim_node")
        p = declare_params(self, PARAMS)
        self.p = p
        world = load_world_param(p.world, p.robot_count)
        if p.camera and world.sensors.camera is None:
            raise ParameterError(self.get_name(), [f"'camera': world {world.name} has no sensors.camera"])
        try:
            self.fleet = Fleet(world, p.seed, 1.0 / p.odom_rate_hz, p.cmd_timeout_s)
        except ValueError as err:
            raise ParameterError(self.get_name(), [f"'odom_rate_hz': {err}"]) from None
        self.world = world
        self.robots = world.robot_entries()
        self.twin = p.mode == "twin"
        prefix = "twin/" if self.twin else ""
        self.frame_prefixes = [frames.twin_prefix(r.name) if self.twin else r.name for r in self.robots]
        self.throttle = Throttle(2.0)
        self.scan_pubs = (
            [self.create_publisher(LaserScan, f"{r.name}/{prefix}scan", SENSOR_PUB_QOS) for r in self.robots]
            if p.scan_rate_hz > 0
            else []
        )
        self.camera_rate = p.camera_rate_hz or (world.sensors.camera.rate_hz if world.sensors.camera else 0.0)
        self.image_pubs = (
            [self.create_publisher(Image, f"{r.name}/{prefix}camera/image_raw", SENSOR_PUB_QOS) for r in self.robots]
            if p.camera
            else []
        )
        if p.camera:
            self._warn_if_images_outgrow_shared_memory(world.sensors.camera)
        goal_pubs = [self.create_publisher(PoseStamped, f"{r.name}/goal_pose", GOAL_QOS) for r in self.robots]
        self._start_wall = now_s(self)
        goals = self.fleet.goals
        if goals is not None:
            for pub, g in zip(goal_pubs, goals, strict=True):
                pub.publish(conv.pose_stamped(self._start_wall, "map", g[0], g[1]))
        self._next_scan = 0.0
        self._next_image = 0.0
        if self.twin:
            self._twin_states = np.full((len(self.robots), 6), np.nan)
            for r in self.robots:
                self.create_subscription(Odometry, f"{r.name}/twin/odom", self._on_twin(r.index), SENSOR_SUB_QOS)
            self.create_timer(1.0 / p.odom_rate_hz, self._tick_twin)
        else:
            self.odom_pubs = [self.create_publisher(Odometry, f"{r.name}/odom", SENSOR_PUB_QOS) for r in self.robots]
            self.clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS)
            self.tf = frames.TfBroadcaster(self)
            self._publish_static_tf(self._start_wall)
            for r in self.robots:
                self.create_subscription(Twist, f"{r.name}/cmd_vel", self._on_cmd(r.index, r.name), COMMAND_SUB_QOS)
            self._wall0 = time.monotonic()
            period = 1.0 / p.odom_rate_hz
            self.create_timer(period / p.real_time_factor if p.real_time_factor > 0 else 0.001, self._tick_sim)
        self.get_logger().info(
            f"world {world.name}: {len(self.robots)} robots on {world.backend}, mode {p.mode}, "
            f"real-time factor {p.real_time_factor:g}"
        )

    # ---- sim mode ----------------------------------------------------------------------
    def _on_cmd(self, index: int, name: str):
        def callback(msg: Twist) -> None:
            v, w = conv.twist_command(msg)
            result = self.fleet.command(index, v, w)
            if result.verdict is not Verdict.ACCEPTED and self.throttle.ready(f"{name}/{result.verdict}", now_s(self)):
                self.get_logger().warning(f"{name}/cmd_vel: {result.reason}")

        return callback

    def _tick_sim(self) -> None:
        rtf = self.p.real_time_factor
        if rtf > 0:
            n = self.fleet.steps_due((time.monotonic() - self._wall0) * rtf)
        else:
            n = 10
        for _ in range(n):
            self.fleet.step()
            stamp = self._start_wall + self.fleet.time_s
            self._publish_clock(stamp)
            self._publish_odom(stamp)
            self._publish_sensors(stamp)
        if n:
            self._publish_tf(self._start_wall + self.fleet.time_s)

    def _publish_clock(self, stamp: float) -> None:
        msg = Clock()
        msg.clock = conv.time_msg(stamp)
        self.clock_pub.publish(msg)

    def _publish_odom(self, stamp: float) -> None:
        states = self.fleet.backend.states()
        for r, pub in zip(self.robots, self.odom_pubs, strict=True):
            x, y, yaw = states.poses[0, r.index]
            vx, vy, wz = states.twists[0, r.index]
            pub.publish(conv.odometry(stamp, r.name, x, y, yaw, vx, vy, wz))

    def _publish_static_tf(self, stamp: float) -> None:
        """map → robot_<i>/odom: the identity, as a simulated robot's odometry is its map pose."""
        self.tf.send_static(
            [frames.transform(stamp, frames.MAP_FRAME, frames.odom_frame(r.name), (0.0, 0.0, 0.0)) for r in self.robots]
        )

    def _publish_tf(self, stamp: float) -> None:
        """robot_<i>/odom → robot_<i>/base_link for every robot, in one message per step batch."""
        poses = self.fleet.backend.states().poses[0]
        self.tf.send(
            [
                frames.transform(stamp, frames.odom_frame(r.name), frames.base_frame(r.name), poses[r.index])
                for r in self.robots
            ]
        )

    def _warn_if_images_outgrow_shared_memory(self, camera) -> None:
        """Reliable images larger than Fast DDS's default 512 KB shared-memory segment are
        fragmented over UDP instead, and best-effort readers lose many of them."""
        size = camera.width * camera.height * 3
        profiles = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")
        if size > 400_000 and not profiles:
            self.get_logger().warning(
                f"camera images are {size / 1e6:.1f} MB: set FASTDDS_DEFAULT_PROFILES_FILE to sern's "
                "config/fastdds_large_data.xml (the twin launch files do) or frames will be dropped"
            )

    # ---- twin mode ---------------------------------------------------------------------
    def _on_twin(self, index: int):
        def callback(msg: Odometry) -> None:
            _, x, y, yaw, v, w = conv.odometry_state(msg)
            self._twin_states[index] = (x, y, yaw, v, msg.twist.twist.linear.y, w)

        return callback

    def _tick_twin(self) -> None:
        known = ~np.isnan(self._twin_states[:, 0])
        if known.any():
            states = self.fleet.backend.states()
            poses = states.poses[0].copy()
            twists = states.twists[0].copy()
            poses[known] = self._twin_states[known][:, :3]
            twists[known] = self._twin_states[known][:, [3, 4, 5]]
            self.fleet.backend.set_states(poses[None], twists[None])
        self._publish_sensors(now_s(self))

    # ---- sensors -----------------------------------------------------------------------
    def _publish_sensors(self, stamp: float) -> None:
        t = self.fleet.time_s if not self.twin else stamp
        if self.scan_pubs and t >= self._next_scan:
            self._next_scan = t + 1.0 / self.p.scan_rate_hz
            ranges = self.fleet.backend.lidar()[0]
            lidar = self.world.sensors.lidar
            for r, pub in zip(self.robots, self.scan_pubs, strict=True):
                prefix = self.frame_prefixes[r.index]
                pub.publish(conv.laser_scan(stamp, prefix, ranges[r.index], lidar, self.p.scan_rate_hz))
        if self.image_pubs and self.camera_rate > 0 and t >= self._next_image:
            self._next_image = t + 1.0 / self.camera_rate
            for r, pub in zip(self.robots, self.image_pubs, strict=True):
                frame = self.fleet.backend.render(r.index)
                pub.publish(conv.rgb_image(stamp, f"{self.frame_prefixes[r.index]}/camera", frame.rgb))

    def on_shutdown(self) -> None:
        self.fleet.close()


main = main_for(SimNode, "sim_node")
