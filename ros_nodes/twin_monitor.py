"""``twin_monitor``: records robots' and twins' poses for measurement, and can drive
the robots along curved paths.

Logs, with local receive times, every ``robot_<i>/odom`` and every ``robot_<i>/<topic>``
for each topic in ``twin_topics``, and writes them to ``output`` (.npz) when it stops
(after ``duration_s``, or on SIGINT/SIGTERM). With ``drive: curves`` it also commands each
robot at 20 Hz along a smooth curve (speed 0.2–1.0 m/s, turn rate ±0.8 rad/s), a
deterministic test pattern for twin synchronisation.

Arrays in the file: ``<key>`` = rows of (receive time, stamp, robot index, x, y, yaw, v, ω)
with keys ``odom`` and one per twin topic (slashes become underscores); ``goals`` = (N, 2)
from ``robot_<i>/goal_pose`` (NaN where none was published).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node

from ros_nodes import conversions as conv
from ros_nodes.common import COMMAND_PUB_QOS, GOAL_QOS, SENSOR_SUB_QOS, load_world_param
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, one_of
from ros_nodes.runtime import main_for, request_stop

PARAMS = [
    Param("world", "navigation", "world file (which robots exist)"),
    Param("output", "", "where to write the log (.npz, required)"),
    Param("twin_topics", [""], "per-robot twin topics to log, e.g. [twin/odom]"),
    Param("drive", "none", "none, or curves: command every robot along smooth curves", one_of("none", "curves")),
    Param("duration_s", 0.0, "stop after this long (0: until stopped)", non_negative),
]


def curve_command(t: float, index: int) -> tuple[float, float]:
    """The test pattern: smooth speed and turn-rate variations, different per robot."""
    phase = 1.3 * index
    v = 0.6 + 0.4 * math.sin(0.35 * t + phase)
    w = 0.25 + 0.55 * math.sin(0.5 * t + 2.0 * phase)
    return v, w


class TwinMonitor(Node):
    def __init__(self):
        super().__init__("twin_monitor")
        p = declare_params(self, PARAMS)
        if not p.output:
            raise ParameterError(self.get_name(), ["'output': give the .npz file to write"])
        self.p = p
        self.world = load_world_param(p.world)
        self.robots = self.world.robot_entries()
        self.logs: dict[str, list[tuple]] = {"odom": []}
        self.goals = np.full((len(self.robots), 2), np.nan)
        for r in self.robots:
            self.create_subscription(PoseStamped, f"{r.name}/goal_pose", self._on_goal(r.index), GOAL_QOS)
            self.create_subscription(Odometry, f"{r.name}/odom", self._log_into("odom", r.index), SENSOR_SUB_QOS)
            for topic in (t for t in p.twin_topics if t):
                key = topic.replace("/", "_")
                self.logs.setdefault(key, [])
                self.create_subscription(Odometry, f"{r.name}/{topic}", self._log_into(key, r.index), SENSOR_SUB_QOS)
        self.cmd_pubs = []
        if p.drive == "curves":
            self.cmd_pubs = [self.create_publisher(Twist, f"{r.name}/cmd_vel", COMMAND_PUB_QOS) for r in self.robots]
            self.create_timer(0.05, self._drive)
        self._t0 = time.time()
        if p.duration_s > 0:
            self.create_timer(p.duration_s, self._finish)
        self._written = False

    def _log_into(self, key: str, index: int):
        rows = self.logs[key]

        def callback(msg: Odometry) -> None:
            stamp, x, y, yaw, v, w = conv.odometry_state(msg)
            rows.append((time.time(), stamp, index, x, y, yaw, v, w))

        return callback

    def _on_goal(self, index: int):
        def callback(msg: PoseStamped) -> None:
            self.goals[index] = (msg.pose.position.x, msg.pose.position.y)

        return callback

    def _drive(self) -> None:
        t = time.time() - self._t0
        for r, pub in zip(self.robots, self.cmd_pubs, strict=True):
            pub.publish(conv.twist(*curve_command(t, r.index)))

    def _finish(self) -> None:
        request_stop()  # ends the spin; on_shutdown writes the file

    def on_shutdown(self) -> None:
        for pub in self.cmd_pubs:
            pub.publish(conv.twist(0.0, 0.0))
        if self._written:
            return
        self._written = True
        path = Path(self.p.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.array(v, dtype=float).reshape(-1, 8) for k, v in self.logs.items()}
        arrays["goals"] = self.goals
        np.savez(path, **arrays)
        self.get_logger().info(f"wrote {sum(len(v) for v in arrays.values())} poses to {path}")


main = main_for(TwinMonitor, "twin_monitor")
