"""``twin_bridge``: keeps each virtual twin on its physical robot's pose.

Per robot ``robot_<i>``:
  odom      (nav_msgs/Odometry, in): the physical robot's pose, stamped by its clock
  cmd_vel   (geometry_msgs/Twist, in): the commands it is sent (seen here first)
  twin/odom (nav_msgs/Odometry, out): the twin's pose, now; published on every new
            measurement and at ``publish_rate_hz`` in between
and on /diagnostics (diagnostic_msgs/DiagnosticArray), per robot: twin position error (m)
and yaw error (deg) against each measurement at its own time, one-way delay, loss,
duplicates, reordering, clock offset, measurement age, model gains. A robot whose odometry
stops is reported stale, then dead; its twin is held where the model says it stopped.

``method: predictive`` is the predictor–corrector of ``sim_bridge.twin_sync``;
``method: naive`` sets the twin to the last received pose (the baseline to beat).
"""

from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node

from ros_nodes import conversions as conv
from ros_nodes.common import (
    COMMAND_SUB_QOS,
    DIAGNOSTICS_QOS,
    STATE_QOS,
    RobotSelectionError,
    load_world_param,
    now_s,
    select_robots,
)
from ros_nodes.params import Param, ParameterError, declare_params, non_negative, one_of, positive
from ros_nodes.runtime import main_for
from sim_bridge.twin_sync import SyncConfig, TwinState, TwinSync

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
        self.syncs: dict[str, TwinSync] = {}
        self.naive: dict[str, tuple[float, float, float, float, float, float]] = {}
        self.last_receipt: dict[str, float] = {}
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
            self.pubs[r.name] = self.create_publisher(Odometry, f"{r.name}/{p.output}", STATE_QOS)
            self.create_subscription(Odometry, f"{r.name}/odom", self._on_odom(r.name), STATE_QOS)
            self.create_subscription(Twist, f"{r.name}/cmd_vel", self._on_cmd(r.name), COMMAND_SUB_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_timer(1.0 / p.publish_rate_hz, self._tick)
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
        def callback(msg: Odometry) -> None:
            t = now_s(self)
            stamp, x, y, yaw, v, w = conv.odometry_state(msg)
            self.last_receipt[name] = t
            accepted = self.syncs[name].on_measurement(t, stamp, x, y, yaw, v, w)
            if self.p.method == "naive":
                if accepted:
                    self.naive[name] = (stamp, x, y, yaw, v, w)
                    self._publish(name, t)
            elif accepted:
                self._publish(name, t)

        return callback

    def _tick(self) -> None:
        t = now_s(self)
        for r in self.robots:
            self._publish(r.name, t)

    def _publish(self, name: str, t: float) -> None:
        if self.p.method == "naive":
            last = self.naive.get(name)
            if last is None:
                return
            _, x, y, yaw, v, w = last
            state = TwinState(t, x, y, yaw, v, w)
            self.syncs[name].note_published(state)  # so diagnostics measure its error too
        else:
            state = self.syncs[name].estimate(t)
            if state is None:
                return
        self.pubs[name].publish(conv.odometry(t, name, state.x, state.y, state.yaw, state.v, 0.0, state.w))

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
                "clock_offset_s": st.clock_offset_s,
                "clock_offset_estimated": st.offset_estimated,
                "measurement_age_s": sync.measurement_age_s(t),
                "model_gain_v": st.gains[0],
                "model_gain_w": st.gains[1],
                "model_time_constant_s": st.time_constant_s,
                "method": self.p.method,
            }
            status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
            msg.status.append(status)
        self.diag_pub.publish(msg)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


main = main_for(TwinBridge, "twin_bridge")
