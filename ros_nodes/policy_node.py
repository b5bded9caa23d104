"""``policy_node``: drives robots with a ``Policy`` from what their topics say.

Per robot ``robot_<i>`` it reads ``odom`` (its own and its neighbours'), ``scan`` (when the
task observes lidar), and the task's state (``ros_nodes.task_topics``: ``goal_pose``, the
flock's goal, landmarks, items, evaders, the object, ...), rebuilds the observation the task
gives in simulation with the task's own code (``ros_nodes.topic_observation``), and
publishes ``cmd_vel``: at the control rate (on simulated time with use_sim_time), or with
``lockstep`` once per simulation step, as soon as that step's state is complete. Until every
input has come once it sends nothing; a robot whose odometry, scan or changing task state
is older than ``sensor_timeout_s`` is commanded to stop; so is every robot when the episode
is over (``task/status``) and when the node shuts down. A robot within its goal tolerance
(navigation) stops. A new episode on ``task/status`` resets the policy's memory with the
episode's seed, as the env's evaluation does.

Odometry is placed in the map with the ``map → <odom frame>`` transforms on /tf_static (the
twin bridge's or the simulator's), so a real robot whose odometry started elsewhere than
the map's origin is driven to the right goal. Sensors are read best effort (REP-2003);
cmd_vel is published reliable.
"""

from __future__ import annotations

import math
import sys

import numba
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
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
from ros_nodes.task_topics import STATUS_QOS, STATUS_TOPIC, TASK_QOS, TaskMessageError, parse_status
from ros_nodes.topic_observation import TopicObservation

MISSING_WARNING_S = 5.0  # how long to wait for a first message before saying what is missing

PARAMS = [
    Param("world", "navigation", "world file (task, robots, limits, sensors)"),
    Param("robot_count", 0, "robots in the world's first group (0: as the world file says)", non_negative),
    Param("only_robots", [""], "robots to drive (empty: all)"),
    Param("policy", "scripted", "policy name (scripted, learned, idle) or checkpoint path"),
    Param("control_rate_hz", 0.0, "command rate (0: the world's control rate)", non_negative),
    Param("sensor_timeout_s", 0.5, "stop a robot whose odometry, scan or task state is older than this", positive),
    Param("scan_topic", "scan", "per-robot LaserScan topic the policy sees"),
    Param("lockstep", False, "act once per simulation step, when its state is complete (sim_node lockstep:=true)"),
    Param(
        "threads", 1, "threads for the policy's network and the task's compiled kernels (one robot team: 1)", positive
    ),
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
        try:
            self.inputs = TopicObservation(world, [r.index for r in self.driven])
        except TaskMessageError as err:
            raise ParameterError(self.get_name(), [f"'world': {err}"]) from None
        self.task = self.inputs.task
        try:
            self.policy = make_policy(p.policy, PolicyContext.from_task(self.task))
        except PolicyError as err:
            raise ParameterError(self.get_name(), [f"'policy': {err}"]) from None
        # A team's observations are a batch of one: thread wake-ups would cost more than the
        # work. (torch only if the policy brought it: importing it takes seconds.)
        numba.set_num_threads(min(p.threads, numba.config.NUMBA_NUM_THREADS))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(p.threads)
        self.policy.reset(None)
        self.all = world.robot_entries()
        n = len(self.all)
        self.odom_time = np.full(n, -math.inf)  # arrival times (node clock), for staleness
        self.scan_time = np.full(n, -math.inf)
        self.topic_time: dict[str, float] = {}
        self.arrived = np.zeros(n, dtype=bool)
        self.tolerance = float(getattr(self.task.params, "goal_tolerance_m", 0.0))
        self.map_poses = frames.MapPoses(self)
        self._frame_first_seen_s: dict[str, float] = {}
        self.episode: int | None = None
        self.episode_over = False
        self._acted_at = -math.inf  # lockstep: the simulation instant last acted on ...
        self._commands: dict[int, tuple[float, float]] = {}  # ... what was sent then
        self._repeated: set[int] = set()  # ... and robots whose state for it came again
        # Task state first: at one instant it is sent before the odometry that completes it.
        for topic in self.inputs.topics:
            qos = GOAL_QOS if topic.robot is not None else TASK_QOS
            self.create_subscription(topic.msg_type, topic.name, self._on_task(topic.name), qos)
        self.create_subscription(DiagnosticArray, STATUS_TOPIC, self._on_status, STATUS_QOS)
        if self.inputs.uses_lidar:
            for r in self.driven:
                self.create_subscription(LaserScan, f"{r.name}/{p.scan_topic}", self._on_scan(r.index), SENSOR_SUB_QOS)
        for r in self.all:
            self.create_subscription(Odometry, f"{r.name}/odom", self._on_odom(r.index), SENSOR_SUB_QOS)
        self.cmd_pubs = {
            r.index: self.create_publisher(Twist, f"{r.name}/cmd_vel", COMMAND_PUB_QOS) for r in self.driven
        }
        rate = p.control_rate_hz or world.control_rate_hz
        if not p.lockstep:
            self.create_timer(1.0 / rate, self._tick)
        self._warned: set[str] = set()
        self._started: float | None = None  # the first tick's time (simulated time starts late)
        self.get_logger().info(
            f"driving {', '.join(r.name for r in self.driven)} with policy {p.policy} "
            + ("in lockstep with the simulation" if p.lockstep else f"at {rate:g} Hz")
        )

    # ---- inputs ------------------------------------------------------------------------------
    def _on_odom(self, i: int):
        def callback(msg: Odometry) -> None:
            _, x, y, yaw, _, _ = conv.odometry_state(msg)
            pose = self._in_map(msg.header.frame_id, (x, y, yaw))
            if pose is None:
                return
            stamp = self.inputs.set_odom(i, msg, pose)
            self.odom_time[i] = self._arrival()
            if self.p.lockstep:
                if stamp == self._acted_at:
                    self._repeated.add(i)
                self._lockstep()

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
            self.inputs.set_scan(i, msg)
            self.scan_time[i] = self._arrival()
            if self.p.lockstep:
                self._lockstep()

        return callback

    def _on_task(self, topic: str):
        def callback(msg) -> None:
            try:
                self.inputs.apply(topic, msg)
            except TaskMessageError as err:
                self._warn_once(f"bad:{topic}", f"{topic}: {err}: ignored")
                return
            self.topic_time[topic] = self._arrival()
            robot = next((t.robot for t in self.inputs.topics if t.name == topic), None)
            if robot is not None:
                self.arrived[robot] = False  # a new goal: drive again
            if self.p.lockstep:
                self._lockstep()

        return callback

    def _on_status(self, msg: DiagnosticArray) -> None:
        status = parse_status(msg)
        if status is None:
            return
        if status.episode != self.episode:
            self.episode = status.episode
            self.policy.reset(status.seed)  # the seed the env would give it: same sampling
            self.arrived[:] = False
            self._acted_at = -math.inf
            self.get_logger().info(f"episode {status.episode} (seed {status.seed})")
        over = status.over
        if over and not self.episode_over:
            self.get_logger().info(f"episode {status.episode} {status.state}: holding the robots")
            for i in self.cmd_pubs:
                self._stop(i)
        self.episode_over = over

    # ---- acting ------------------------------------------------------------------------------
    def _lockstep(self) -> None:
        """Act on a simulation instant as soon as its state is complete; a state sent again
        (the simulator did not get every command) gets the same commands again."""
        stamp = self.inputs.latest_stamp()
        if not self.inputs.complete_at(stamp):
            return
        if not all(pub.get_subscription_count() for pub in self.cmd_pubs.values()):
            return  # commands now would be lost: the simulator sends the state again
        if stamp != self._acted_at:
            self._acted_at = stamp
            self._repeated.clear()
            self._act(list(self.cmd_pubs))
        elif len(self._repeated) == len(self.all):
            self._repeated.clear()
            for i, (v, w) in self._commands.items():
                self.cmd_pubs[i].publish(conv.twist(v, w))

    def _arrival(self) -> float:
        """When a message came, by the node's clock; NaN before simulated time has started
        (use_sim_time, no /clock yet): the first tick counts it as just come."""
        t = now_s(self)
        return t if t > 0 else math.nan

    def _tick(self) -> None:
        t = now_s(self)
        if self._started is None:
            self._started = t
        self.odom_time[np.isnan(self.odom_time)] = t
        self.scan_time[np.isnan(self.scan_time)] = t
        self.topic_time.update({k: t for k, v in self.topic_time.items() if math.isnan(v)})
        timeout = self.p.sensor_timeout_s
        missing = self.inputs.missing()
        stale_task = [
            topic.name
            for topic in self.inputs.topics
            if topic.dynamic and t - self.topic_time.get(topic.name, -math.inf) > timeout
        ]
        if missing:  # waiting for first messages: nothing commanded yet, so nothing to stop
            if t - self._started > MISSING_WARNING_S:
                self._warn_once("missing", f"no {', '.join(missing)} yet: not driving")
            return
        ready = []
        for r in self.driven:
            i = r.index
            reason = None
            if t - self.odom_time[i] > timeout:
                reason = "odom"
            elif self.inputs.uses_lidar and t - self.scan_time[i] > timeout:
                reason = self.p.scan_topic
            elif stale_task:
                reason = ", ".join(stale_task)
            if reason:
                self._stop(i)
                self._warn_once(f"{r.name}:{reason}", f"{r.name}: no fresh {reason}: holding it stopped")
                continue
            self._warned = {k for k in self._warned if not k.startswith(f"{r.name}:")}
            ready.append(i)
        self._act(ready)

    def _act(self, robots: list[int]) -> None:
        """Commands for ``robots`` from their observations now (a stop for those whose task is
        done: the episode is over, or a navigation robot is at its goal)."""
        if self.episode_over:
            for i in robots:
                self._stop(i)
            return
        acting = []
        for i in robots:
            if self.tolerance > 0 and self._at_goal(i):
                self._stop(i)
            else:
                acting.append(i)
        self._commands = {i: (0.0, 0.0) for i in robots}
        if not acting:
            return
        obs = self.inputs.observe()
        actions = self.policy.act({self.all[i].name: obs[i] for i in acting})
        for i in acting:
            v, w = (float(a) for a in actions[self.all[i].name])
            self._commands[i] = (v, w)
            self.cmd_pubs[i].publish(conv.twist(v, w))

    def _at_goal(self, i: int) -> bool:
        if not self.arrived[i]:
            goal = self.task.goals[0, i]
            if math.dist(self.inputs.poses[i, :2], goal) <= self.tolerance:
                self.get_logger().info(f"{self.all[i].name}: reached its goal")
                self.arrived[i] = True
        return bool(self.arrived[i])

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
