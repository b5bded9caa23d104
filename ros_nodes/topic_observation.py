"""Robots' observations rebuilt from ROS messages, by the task's own ``observe``.

The policy node keeps one ``TopicObservation``: every robot's odometry, the driven robots'
scans, and the task's state topics (``ros_nodes.task_topics``) are written into arrays and
into a copy of the task, and ``observe`` runs the task's observation code on them, the same
code the env runs on the simulator's state. It also says whether the inputs for one
simulation instant are complete (lockstep) and which are still missing. No node here.
"""

from __future__ import annotations

import math

import numpy as np
from nav_msgs.msg import Odometry
from sensor_msgs.msg import LaserScan

from ros_nodes import conversions as conv
from ros_nodes.task_topics import TaskTopic, task_topics
from worlds import WorldSpec, make_task
from worlds.tasks import Snapshot

UNSEEN_M = 1e6  # where a robot with no odometry yet is put: far beyond every sensing radius


class TopicObservation:
    """Observations of ``world``'s robots from their topics (see the module docstring);
    ``driven``: indices of the robots whose observations are wanted."""

    def __init__(self, world: WorldSpec, driven: list[int]):
        self.world = world
        self.task = make_task(world)
        self.codec = task_topics(self.task)
        self.driven = list(driven)
        n = self.task.num_robots
        self.poses = np.full((n, 3), np.nan)
        self.twists = np.zeros((n, 3))
        self.odom_stamp = np.full(n, -math.inf)
        beams = world.sensors.lidar.beams
        self.lidar = np.full((n, beams), np.inf)
        self.scan_stamp = np.full(n, -math.inf)
        self.uses_lidar = "lidar" in self.task.observation_slices()
        # The topics this team needs: per-robot ones only for the driven robots.
        self.topics: list[TaskTopic] = [
            t for t in self.codec.topics() if t.robot is None or t.robot in set(self.driven)
        ]
        self.topic_stamp: dict[str, float] = {}

    # ---- inputs ----------------------------------------------------------------------------
    def set_odom(self, i: int, msg: Odometry, map_pose: tuple[float, float, float] | None = None) -> float:
        """Robot ``i``'s pose and body twist; returns the message's stamp (s). The pose is the
        message's own unless ``map_pose`` gives it in the map (odometry whose frame is not
        the map's, placed with ``map → odom``)."""
        stamp, x, y, yaw, v, w = conv.odometry_state(msg)
        self.poses[i] = map_pose if map_pose is not None else (x, y, yaw)
        self.twists[i] = (v, msg.twist.twist.linear.y, w)
        self.odom_stamp[i] = stamp
        return stamp

    def set_scan(self, i: int, msg: LaserScan) -> float:
        self.lidar[i] = conv.scan_ranges(msg, self.world.sensors.lidar)
        self.scan_stamp[i] = conv.seconds(msg.header.stamp)
        return self.scan_stamp[i]

    def apply(self, topic: str, msg) -> None:
        """A task-state message (raises ``TaskMessageError`` if it cannot be this task's)."""
        self.codec.apply(topic, msg)
        header = getattr(msg, "header", None)
        self.topic_stamp[topic] = conv.seconds(header.stamp) if header is not None else math.inf

    # ---- readiness ---------------------------------------------------------------------------
    def missing(self) -> list[str]:
        """Inputs never received yet, by topic name (relative to the robots' namespaces)."""
        out = [t.name for t in self.topics if t.name not in self.topic_stamp]
        names = [r.name for r in self.task.robots]
        out += [f"{names[i]}/odom" for i in range(self.task.num_robots) if not math.isfinite(self.odom_stamp[i])]
        if self.uses_lidar:
            out += [f"{names[i]}/scan" for i in self.driven if not math.isfinite(self.scan_stamp[i])]
        return out

    def latest_stamp(self) -> float:
        """The newest odometry stamp (s): the simulation instant the inputs are catching up with."""
        return float(self.odom_stamp.max())

    def complete_at(self, stamp_s: float) -> bool:
        """Whether every input describes the instant ``stamp_s``: every robot's odometry, the
        driven robots' scans (if the task observes lidar) and the task's changing state
        carry that stamp, and its per-episode state has arrived (lockstep)."""
        if not np.all(self.odom_stamp == stamp_s):
            return False
        if self.uses_lidar and not np.all(self.scan_stamp[self.driven] == stamp_s):
            return False
        for t in self.topics:
            got = self.topic_stamp.get(t.name)
            if got is None or (t.dynamic and got != stamp_s):
                return False
        return True

    # ---- the observation ---------------------------------------------------------------------
    def observe(self) -> np.ndarray:
        """``(N, D)`` float32: every robot's observation by the task's ``observe`` (rows of
        robots that are not driven see no lidar)."""
        known = ~np.isnan(self.poses[:, 0])
        poses = np.where(known[:, None], self.poses, UNSEEN_M)
        n = self.task.num_robots
        snap = Snapshot(
            time_s=np.array([self.latest_stamp() if known.any() else 0.0]),
            poses=poses[None],
            twists=self.twists[None],
            lidar=self.lidar[None],
            contacts=np.zeros((1, n), dtype=bool),
        )
        return self.task.observe(snap)[0]
