"""``policy_node``: drives robots with a ``Policy`` from what their topics say.

Per robot ``robot_<i>`` it reads ``odom`` (its own and its neighbours'), ``scan`` and
``goal_pose`` (latched, from the sim node), builds the same observation the task gives
in simulation, and publishes ``cmd_vel`` at the control rate. A robot whose odometry or
scan is older than ``sensor_timeout_s``, or with no goal yet, is commanded to stop; so
is every robot when the node shuts down. A robot within the goal tolerance stops.

Odometry is placed in the map with the ``map → <odom frame>`` transforms on /tf_static (the
twin bridge's or the simulator's), so a real robot whose odometry started elsewhere than
the map's origin is driven to the right goal. Sensors are read best effort (REP-2003);
cmd_vel is published reliable.
"""

from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import LaserScan

from policies.base import PolicyContext
from policies.registry import PolicyError, make_policy
from ros_nodes import conversions as conv
from ros_nodes import frames
from ros_nodes.common import (
    COMMAND_PUB_QOS,
    GOAL_QOS,
    SENSOR_SUB_QOS,
    RobotSelectionError,
    load_world_param,
    now_s,
    select_robots,
)
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, positive
from ros_nodes.runtime import main_for
from worlds import make_task
from worlds.tasks import Snapshot

PARAMS = [
    Param("world", "navigation", "world file (task, robots, limits, sensors)"),
    Param("robot_count", 0, "robots in the world's first group (0: as the world file says)", non_negative),
    Param("only_robots", [""], "robots to drive (empty: all)"),
    Param("policy", "scripted", "policy name (scripted, idle) or checkpoint path"),
    Param("control_rate_hz", 0.0, "command rate (0: the world's control rate)", non_negative),
    Param("sensor_timeout_s", 0.5, "stop a robot whose odometry or scan is older than this", positive),
    Param("scan_topic", "scan", "per-robot LaserScan topic the policy sees"),
]


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy_node")
        p = declare_params(self, PARAMS)
        self.p = p
        world = load_world_param(p.world, p.robot_count)
        try:
            self.driven = select_robots(world, [n for n in p.only_robots if n])
        except RobotSelectionError as err:
            raise ParameterError(self.get_name(), [str(err)]) from None
        self.world = world
        self.task = make_task(world)
        try:
            self.policy = make_policy(p.policy, PolicyContext.from_task(self.task))
        except PolicyError as err:
            raise ParameterError(self.get_name(), [f"'policy': {err}"]) from None
        self.policy.reset(None)
        self.all = world.robot_entries()
        n = len(self.all)
        self.poses = np.full((n, 3), np.nan)
        self.twists = np.zeros((n, 3))
        self.odom_time = np.full(n, -math.inf)
        self.scans: dict[int, np.ndarray] = {}
        self.scan_time = np.full(n, -math.inf)
        self.goals = np.full((n, 2), np.nan)
        self.arrived = np.zeros(n, dtype=bool)
        tol = getattr(self.task.params, "goal_tolerance_m", 0.0)
        self.tolerance = float(tol)
        self.map_poses = frames.MapPoses(self)
        self._frame_first_seen_s: dict[str, float] = {}
        for r in self.all:
            self.create_subscription(Odometry, f"{r.name}/odom", self._on_odom(r.index), SENSOR_SUB_QOS)
        self.cmd_pubs = {}
        for r in self.driven:
            self.create_subscription(LaserScan, f"{r.name}/{p.scan_topic}", self._on_scan(r.index), SENSOR_SUB_QOS)
            self.create_subscription(PoseStamped, f"{r.name}/goal_pose", self._on_goal(r.index), GOAL_QOS)
            self.cmd_pubs[r.index] = self.create_publisher(Twist, f"{r.name}/cmd_vel", COMMAND_PUB_QOS)
        rate = p.control_rate_hz or world.control_rate_hz
        self.create_timer(1.0 / rate, self._tick)
        self._warned: set[str] = set()
        self.get_logger().info(
            f"driving {', '.join(r.name for r in self.driven)} with policy {p.policy} at {rate:g} Hz"
        )

    def _on_odom(self, i: int):
        def callback(msg: Odometry) -> None:
            _, x, y, yaw, v, w = conv.odometry_state(msg)
            pose = self._in_map(msg.header.frame_id, (x, y, yaw))
            if pose is None:
                return
            self.poses[i] = pose
            self.twists[i] = (v, msg.twist.twist.linear.y, w)
            self.odom_time[i] = now_s(self)

        return callback

    def _in_map(self, frame: str, pose: frames.Pose2D) -> frames.Pose2D | None:
        """``pose`` in the map, via /tf_static. A frame with no ``map → frame`` transform is
        waited for briefly (it is latched, but may arrive after the first odometry), then
        taken to be the map itself, with a warning."""
        frame = frame.lstrip("/")
        placed = self.map_poses.in_map(frame, pose)
        if placed is not None:
            return placed
        if now_s(self) - self._frame_first_seen_s.setdefault(frame, now_s(self)) < 2.0:
            return None
        self._warn_once(f"frame:{frame}", f"no map → {frame} transform on /tf_static: taking {frame} as the map")
        return pose

    def _on_scan(self, i: int):
        def callback(msg: LaserScan) -> None:
            self.scans[i] = conv.scan_ranges(msg, self.world.sensors.lidar)
            self.scan_time[i] = now_s(self)

        return callback

    def _on_goal(self, i: int):
        def callback(msg: PoseStamped) -> None:
            self.goals[i] = (msg.pose.position.x, msg.pose.position.y)
            self.arrived[i] = False

        return callback

    def _tick(self) -> None:
        t = now_s(self)
        timeout = self.p.sensor_timeout_s
        ready = []
        for r in self.driven:
            i = r.index
            reason = None
            first = (self.odom_time[i], self.scan_time[i], self.goals[i, 0])
            if not all(math.isfinite(x) for x in first):
                self._stop(i)  # waiting for its first messages: not a fault yet
                continue
            if t - self.odom_time[i] > timeout:
                reason = "odom"
            elif t - self.scan_time[i] > timeout:
                reason = self.p.scan_topic
            elif np.isnan(self.goals[i]).any():
                reason = "goal_pose"
            if reason:
                self._stop(i)
                self._warn_once(f"{r.name}:{reason}", f"{r.name}: no fresh {reason}: holding it stopped")
                continue
            for key in ("odom", self.p.scan_topic, "goal_pose"):
                self._warned.discard(f"{r.name}:{key}")
            if self.arrived[i] or math.dist(self.poses[i, :2], self.goals[i]) <= self.tolerance:
                if not self.arrived[i]:
                    self.get_logger().info(f"{r.name}: reached its goal")
                self.arrived[i] = True
                self._stop(i)
                continue
            ready.append(i)
        if not ready:
            return
        known = ~np.isnan(self.poses[:, 0])
        poses = np.where(known[:, None], self.poses, 1e6)  # unknown robots: far away, unseen
        lidar = np.full((len(self.all), self.world.sensors.lidar.beams), np.inf)
        for i, ranges in self.scans.items():
            lidar[i] = ranges
        self.task.goals = np.where(np.isnan(self.goals), 0.0, self.goals)[None]
        snap = Snapshot(
            np.array([t]), poses[None], self.twists[None], lidar[None], np.zeros((1, len(self.all)), dtype=bool)
        )
        obs = self.task.observe(snap)[0]
        actions = self.policy.act({self.all[i].name: obs[i] for i in ready})
        for i in ready:
            v, w = (float(a) for a in actions[self.all[i].name])
            self.cmd_pubs[i].publish(conv.twist(v, w))

    def _stop(self, i: int) -> None:
        self.cmd_pubs[i].publish(conv.twist(0.0, 0.0))

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def on_shutdown(self) -> None:
        for i in self.cmd_pubs:
            self._stop(i)


main = main_for(PolicyNode, "policy_node")
