"""``twin_bridge``: keeps each virtual twin on its physical robot's pose.

Per robot ``robot_<i>``:
  odom      (nav_msgs/Odometry, in): the physical robot's pose, stamped by its clock
  cmd_vel   (geometry_msgs/Twist, in): the commands it is sent (seen here first)
  twin/odom (nav_msgs/Odometry, out): the twin's pose in the map, now, in frames
            ``robot_<i>/twin/odom`` (≡ map) → ``robot_<i>/twin/base_link``; published on
            every new measurement and at ``publish_rate_hz`` in between (at 20 Hz, from
            what arrived meanwhile, while shedding load: below)
  initialpose (geometry_msgs/PoseWithCovarianceStamped in ``map``, in): "the robot is here
            now", as RViz's 2D Pose Estimate and Nav2 send it (also ``/initialpose`` when
            the bridge serves one robot)
on /tf_static ``map → <robot's odom frame>`` (where its odometry started: ``initial_poses``,
or moved by /initialpose) and ``map → robot_<i>/twin/odom`` (the identity); on /tf
``robot_<i>/twin/odom → robot_<i>/twin/base_link`` at ``publish_rate_hz`` (and the robot's
own ``odom → base_link`` with ``publish_odom_tf``, for drivers that do not publish it);
and on /diagnostics (diagnostic_msgs/DiagnosticArray), per robot: twin position error (m)
and yaw error (deg) against each measurement at its own time, one-way delay, loss,
duplicates, reordering, clock offset, measurement age, model gains. A robot whose odometry
stops is reported stale, then dead; its twin is held where the model says it stopped.

Keeping up, a bridge reacts to each odometry message at once. One that cannot keep up (an
oversubscribed CPU: odometry reaches its callback ``LATE_S`` later than the fastest recently
seen, or its publish ticks come late) sheds load instead of queueing it, for a second after
each sign: odometry callbacks then only file each message in a per-robot inbox of ``inbox_size`` (the oldest dropped unread when it is full: the newest state wins),
and every fifth tick takes what arrived, fits the motion model once per robot on the newest
measurement, and publishes; ticks that fall due together run once. An executor that queues
one event per message would otherwise fall further behind and grow without bound. Counted
in /diagnostics (``inbox_dropped``, ``ticks_skipped``, ``shedding_load``).

``method: predictive`` is the predictor–corrector of ``sim_bridge.twin_sync``;
``method: naive`` sets the twin to the last received pose (the baseline to beat).

QoS (REP-2003): odom and cmd_vel read best effort; twin/odom and TF published reliable.
"""

from __future__ import annotations

import math
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node

from ros_nodes import conversions as conv
from ros_nodes import frames
from ros_nodes.common import (
    COMMAND_SUB_QOS,
    DIAGNOSTICS_QOS,
    INITIAL_POSE_QOS,
    SENSOR_PUB_QOS,
    SENSOR_SUB_QOS,
    RobotSelectionError,
    load_world_param,
    now_s,
    select_robots,
)
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, one_of, positive
from ros_nodes.runtime import main_for
from sim_bridge.safety import Throttle
from sim_bridge.twin_sync import SyncConfig, TwinState, TwinSync

SHED_FOR_S = 1.0  # after a sign of falling behind, odometry waits for the tick this long
SHED_TICK_PERIODS = 5  # meanwhile twins are published every 5th period (20 Hz at 100 Hz)
LATE_S = 0.25  # odometry this much slower to reach its callback than the fastest: behind
FLOOR_RISE = 0.002  # s/s: how fast the fastest-seen transit is forgotten

PARAMS = [
    Param("world", "navigation", "world file (robots and their limits)"),
    Param("robot_count", 0, "robots in the world's first group (0: as the world file says)", non_negative),
    Param("only_robots", [""], "robots to bridge (empty: all)"),
    Param(
        "method", "predictive", "predictive (predictor–corrector) or naive (last pose)", one_of("predictive", "naive")
    ),
    Param("output", "twin/odom", "per-robot topic the twin's pose is published on"),
    Param("publish_rate_hz", 100.0, "twin pose rate between measurements", positive),
    Param("diagnostics_rate_hz", 1.0, "/diagnostics rate", positive),
    Param("inbox_size", 64, "odometry messages kept per robot between ticks (the oldest are dropped)", positive),
    Param("cmd_timeout_s", 0.5, "the robots' own command watchdog (for the motion model)", positive),
    Param("motor_time_constant_s", 0.1, "initial motion-model velocity lag", non_negative),
    Param("correction_time_constant_s", 0.0, "0: jump to each estimate; > 0: blend corrections in", non_negative),
    Param(
        "clock_offset",
        "auto",
        "auto: trust stamps, estimate if implausible; fixed: use clock_offset_s",
        one_of("auto", "fixed"),
    ),
    Param("clock_offset_s", 0.0, "robot clock minus local clock, with clock_offset: fixed"),
    Param("stale_after_s", 0.5, "no odometry for this long: warn", positive),
    Param("dead_after_s", 3.0, "no odometry for this long: error (dead peer)", positive),
    Param(
        "initial_poses",
        [0.0, 0.0, 0.0],
        "where each robot's odometry started, in the map: [x, y, yaw] (m, m, rad) for all robots, "
        "or x, y, yaw per bridged robot in order ([0, 0, 0]: its odom frame is the map, as in simulation)",
    ),
    Param(
        "publish_odom_tf",
        False,
        "also publish each robot's odom → base_link from its odometry (for drivers that don't)",
    ),
]


class TwinBridge(Node):
    def __init__(self):
        super().__init__("twin_bridge")
        p = declare_params(self, PARAMS)
        self.p = p
        world = load_world_param(p.world, p.robot_count)
        try:
            self.robots = select_robots(world, [n for n in p.only_robots if n])
        except RobotSelectionError as err:
            raise ParameterError(self.get_name(), [str(err)]) from None
        if p.dead_after_s <= p.stale_after_s:
            raise ParameterError(self.get_name(), ["'dead_after_s' must be greater than 'stale_after_s'"])
        origins = _initial_poses(p.initial_poses, len(self.robots))
        if isinstance(origins, str):
            raise ParameterError(self.get_name(), [f"'initial_poses': {origins}"])
        # map → <robot's odom frame>, and that frame's name (the driver's, once it speaks).
        self.odom_origin: dict[str, frames.Pose2D] = {r.name: o for r, o in zip(self.robots, origins, strict=True)}
        self.origin_source = {r.name: "initial_poses" for r in self.robots}
        self.odom_frame = {r.name: frames.odom_frame(r.name) for r in self.robots}
        self.pending_pose: dict[str, frames.Pose2D] = {}
        self.throttle = Throttle(2.0)
        self.syncs: dict[str, TwinSync] = {}
        self.naive: dict[str, tuple[float, float, float, float, float, float]] = {}
        self.last_receipt: dict[str, float] = {}
        self.inbox: dict[str, deque[tuple[float, Odometry]]] = {r.name: deque(maxlen=p.inbox_size) for r in self.robots}
        self.inbox_dropped = dict.fromkeys(self.inbox, 0)
        self.ticks_skipped = 0
        self.tick_period_s = 1.0 / p.publish_rate_hz
        self.last_tick: float | None = None  # the last tick that published
        self.last_call: float | None = None  # the last time the tick timer fired
        self.shed_until = -math.inf  # shedding load (filing odometry for the tick) until then
        self.transit_floor: dict[str, tuple[float, float]] = {}  # per robot: (floor, when)
        self.pubs = {}
        for r in self.robots:
            self.syncs[r.name] = TwinSync(
                SyncConfig(
                    limits=r.limits,
                    motor_time_constant_s=p.motor_time_constant_s,
                    cmd_timeout_s=p.cmd_timeout_s,
                    clock_offset_s=p.clock_offset_s if p.clock_offset == "fixed" else None,
                    correction_time_constant_s=p.correction_time_constant_s,
                )
            )
            self.pubs[r.name] = self.create_publisher(Odometry, f"{r.name}/{p.output}", SENSOR_PUB_QOS)
            self.create_subscription(Odometry, f"{r.name}/odom", self._on_odom(r.name), SENSOR_SUB_QOS)
            self.create_subscription(Twist, f"{r.name}/cmd_vel", self._on_cmd(r.name), COMMAND_SUB_QOS)
            on_pose = self._on_initial_pose(r.name)
            self.create_subscription(PoseWithCovarianceStamped, f"{r.name}/initialpose", on_pose, INITIAL_POSE_QOS)
            if len(self.robots) == 1:  # RViz's and Nav2's default topic, unambiguous with one robot
                self.create_subscription(PoseWithCovarianceStamped, "/initialpose", on_pose, INITIAL_POSE_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.tf = frames.TfBroadcaster(self)
        self._publish_static_tf()
        self.create_timer(self.tick_period_s, self._tick)
        self.create_timer(1.0 / p.diagnostics_rate_hz, self._diagnose)
        self.get_logger().info(
            f"bridging {', '.join(r.name for r in self.robots)} ({p.method}); twins on robot_<i>/{p.output}"
        )

    def _on_cmd(self, name: str):
        def callback(msg: Twist) -> None:
            v, w = conv.twist_command(msg)
            self.syncs[name].on_command(now_s(self), v, w)

        return callback

    def _on_odom(self, name: str):
        inbox = self.inbox[name]

        def callback(msg: Odometry) -> None:
            t = now_s(self)
            if self._arrived_late(name, t, conv.seconds(msg.header.stamp)):
                self.shed_until = t + SHED_FOR_S
            if len(inbox) == inbox.maxlen:
                self.inbox_dropped[name] += 1
            inbox.append((t, msg))
            if t >= self.shed_until and self._take_measurements(name):
                self._publish(name, t)  # keeping up: react at once

        return callback

    def _arrived_late(self, name: str, t: float, stamp: float) -> bool:
        """True when this odometry reached the callback ``LATE_S`` later than the fastest
        recently seen (receipt minus stamp): the executor is behind. The floor forgets
        slowly (``FLOOR_RISE``), so a link that became slower for good stops counting."""
        transit = t - stamp
        floor, at = self.transit_floor.get(name, (transit, t))
        floor = min(transit, floor + FLOOR_RISE * max(t - at, 0.0))
        self.transit_floor[name] = (floor, t)
        return transit - floor > LATE_S

    def _take_measurements(self, name: str) -> bool:
        """Feed the robot's synchroniser what is in its inbox, in arrival order; the motion
        model is fitted on the newest only (the rest update the statistics). True when one
        became the twin's new anchor."""
        inbox = self.inbox[name]
        sync = self.syncs[name]
        anchored = False
        while inbox:
            t, msg = inbox.popleft()
            stamp, x, y, yaw, v, w = conv.odometry_state(msg)
            self.last_receipt[name] = t
            if not sync.on_measurement(t, stamp, x, y, yaw, v, w, fit_model=not inbox):
                continue
            anchored = True
            self._note_odom_frames(name, msg, stamp, (x, y, yaw))
            if self.p.method == "naive":
                self.naive[name] = (stamp, x, y, yaw, v, w)
        return anchored

    def _tick(self) -> None:
        t = now_s(self)
        if self.last_call is not None and t - self.last_call > 2.0 * self.tick_period_s:
            self.shed_until = t + SHED_FOR_S  # late: the executor is behind, or the CPU is short
        self.last_call = t
        spacing = SHED_TICK_PERIODS if t < self.shed_until else 0.5
        if self.last_tick is not None and t - self.last_tick < spacing * self.tick_period_s:
            self.ticks_skipped += 1  # fell due together while behind, or shedding load
            return
        self.last_tick = t
        transforms = []
        for r in self.robots:
            self._take_measurements(r.name)
            pose = self._publish(r.name, t)
            if pose is not None:
                twin = frames.twin_prefix(r.name)
                transforms.append(frames.transform(t, frames.odom_frame(twin), frames.base_frame(twin), pose))
        self.tf.send(transforms)

    def _publish(self, name: str, t: float) -> frames.Pose2D | None:
        """Publish the twin of ``name`` at time ``t``; returns its pose in the map."""
        if self.p.method == "naive":
            last = self.naive.get(name)
            if last is None:
                return None
            _, x, y, yaw, v, w = last
            state = TwinState(t, x, y, yaw, v, w)
            self.syncs[name].note_published(state)  # so diagnostics measure its error too
        else:
            state = self.syncs[name].estimate(t)
            if state is None:
                return None
        pose = frames.compose(self.odom_origin[name], (state.x, state.y, state.yaw))
        prefix = frames.twin_prefix(name)
        self.pubs[name].publish(conv.odometry(t, prefix, *pose, state.v, 0.0, state.w))
        return pose

    # ---- frames ------------------------------------------------------------------------
    def _publish_static_tf(self) -> None:
        """map → each robot's odom frame (its start pose) and map → each twin's odom (identity)."""
        t = now_s(self)
        statics = []
        for r in self.robots:
            statics.append(frames.transform(t, frames.MAP_FRAME, self.odom_frame[r.name], self.odom_origin[r.name]))
            twin_odom = frames.odom_frame(frames.twin_prefix(r.name))
            statics.append(frames.transform(t, frames.MAP_FRAME, twin_odom, (0.0, 0.0, 0.0)))
        self.tf.send_static(statics)

    def _note_odom_frames(self, name: str, msg: Odometry, stamp: float, pose: frames.Pose2D) -> None:
        """Follow the driver's frame names, apply a pose that came before any odometry, and
        publish its odom → base_link if asked."""
        frame = msg.header.frame_id.lstrip("/")
        if frame and frame != self.odom_frame[name]:
            self.odom_frame[name] = frame
            self._publish_static_tf()
        if name in self.pending_pose:
            self._set_origin(name, frames.compose(self.pending_pose.pop(name), frames.invert(pose)), "/initialpose")
        if self.p.publish_odom_tf:
            child = msg.child_frame_id.lstrip("/") or frames.base_frame(name)
            self.tf.send([frames.transform(stamp, self.odom_frame[name], child, pose)])

    def _set_origin(self, name: str, origin: frames.Pose2D, source: str) -> None:
        self.odom_origin[name] = origin
        self.origin_source[name] = source
        self._publish_static_tf()
        self.get_logger().info(
            f"{name}: map → {self.odom_frame[name]} is now x={origin[0]:.3f} y={origin[1]:.3f} "
            f"yaw={origin[2]:.3f} (from {source})"
        )
        self._publish(name, now_s(self))  # the twin jumps to its place in the map now

    def _on_initial_pose(self, name: str):
        def callback(msg: PoseWithCovarianceStamped) -> None:
            frame = msg.header.frame_id.lstrip("/")
            p = msg.pose.pose
            pose = (p.position.x, p.position.y, conv.quaternion_yaw(p.orientation))
            problem = None
            if frame not in ("", frames.MAP_FRAME):
                problem = f"is in frame '{frame}'; give it in '{frames.MAP_FRAME}'"
            elif not all(math.isfinite(v) for v in pose):
                problem = "is not finite"
            if problem is not None:
                if self.throttle.ready(f"{name}/initialpose", now_s(self)):
                    self.get_logger().warning(f"{name}: initial pose ignored: it {problem}")
                return
            # "The robot is here now": now, by the twin's own estimate of the robot's odometry.
            now = self.syncs[name].estimate(now_s(self))
            if now is None:
                self.pending_pose[name] = pose
                self.get_logger().info(f"{name}: initial pose received; applied at its first odometry")
                return
            self._set_origin(name, frames.compose(pose, frames.invert((now.x, now.y, now.yaw))), "/initialpose")

        return callback

    def _diagnose(self) -> None:
        t = now_s(self)
        msg = DiagnosticArray()
        msg.header.stamp = conv.time_msg(t)
        for r in self.robots:
            sync = self.syncs[r.name]
            st = sync.stats
            silent = t - self.last_receipt.get(r.name, -math.inf)
            status = DiagnosticStatus()
            status.name = f"twin_bridge: {r.name}"
            status.hardware_id = r.name
            if st.received == 0:
                status.level, status.message = DiagnosticStatus.WARN, "no odometry received yet"
            elif silent > self.p.dead_after_s:
                status.level, status.message = DiagnosticStatus.ERROR, f"no odometry for {silent:.1f} s: peer dead?"
            elif silent > self.p.stale_after_s:
                status.level, status.message = DiagnosticStatus.WARN, f"odometry stale ({silent:.2f} s)"
            else:
                status.level, status.message = DiagnosticStatus.OK, "twin in sync"
            values = {
                "position_error_m": st.last_error_m,
                "yaw_error_deg": st.last_yaw_error_deg,
                "delay_ms": st.delay_s * 1000.0,
                "loss_pct": st.loss * 100.0,
                "received": st.received,
                "duplicates": st.duplicates,
                "out_of_order": st.out_of_order,
                "inbox_dropped": self.inbox_dropped[r.name],
                "ticks_skipped": self.ticks_skipped,
                "shedding_load": t < self.shed_until,
                "clock_offset_s": st.clock_offset_s,
                "clock_offset_estimated": st.offset_estimated,
                "measurement_age_s": sync.measurement_age_s(t),
                "model_gain_v": st.gains[0],
                "model_gain_w": st.gains[1],
                "model_time_constant_s": st.time_constant_s,
                "method": self.p.method,
                "odom_frame": self.odom_frame[r.name],
                "map_to_odom": " ".join(f"{v:.4g}" for v in self.odom_origin[r.name]),
                "map_to_odom_source": self.origin_source[r.name],
            }
            status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
            msg.status.append(status)
        self.diag_pub.publish(msg)


def _initial_poses(values: list, robots: int) -> list[frames.Pose2D] | str:
    """One (x, y, yaw) per robot from ``initial_poses``, or what is wrong with it."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return f"must be finite numbers, got {values!r}"
    if len(values) == 3:
        return [tuple(float(v) for v in values)] * robots
    if len(values) == 3 * robots:
        return [tuple(float(v) for v in values[3 * k : 3 * k + 3]) for k in range(robots)]
    return f"needs 3 numbers (x, y, yaw) for all robots or 3 per robot ({3 * robots}), got {len(values)}"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


main = main_for(TwinBridge, "twin_bridge")
