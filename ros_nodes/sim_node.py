"""``sim_node``: steps a world on its backend and speaks for its robots on ROS topics.

mode ``sim`` (default): the simulated robots are the robots. Per robot ``robot_<i>``:
  cmd_vel (geometry_msgs/Twist, in; watchdog stops a robot after cmd_timeout_s),
  odom (nav_msgs/Odometry), scan (sensor_msgs/LaserScan),
  camera/image_raw (sensor_msgs/Image, if ``camera`` and the world has a camera);
  the task's state (``ros_nodes.task_topics``: goals, landmarks, items, evaders, the object,
  ``task/markers`` for RViz) and the episode's ``task/status`` with its metrics;
  and /clock (rosgraph_msgs/Clock) for nodes with use_sim_time; on /tf
  ``robot_<i>/odom → robot_<i>/base_link`` and on /tf_static ``map → robot_<i>/odom`` (the
  identity: a simulated robot's odometry is exact).
  Runs at ``real_time_factor`` × wall time (0: as fast as it can).

Stepping: the engine advances by the world's control period (what a policy acts on, and what
the task is stepped on, as in the env), split into sub-steps where the engine can step finer
(``sim_bridge.fleet.step_for_rate``: PyBullet at 60 Hz odometry; the kinematic engine steps
whole control periods, so its odometry comes at the control rate). With ``lockstep`` a
control period starts only once every robot has been commanded since the last one:
simulation time waits for a slow controller instead of running away from it.

Episodes run as in the env: the episode's clock starts with the first command (the world
waits at its start for a controller that takes a while to come up), a robot the task
terminates is parked, and the episode ends when every robot is done or at the task's time
limit; then ``episode_end`` ``hold`` parks every robot (time goes on), ``reset`` starts the
next episode with the next seed.

mode ``twin``: the simulated robots are virtual twins placed where ``robot_<i>/twin/odom``
(from the twin bridge) says; publishes the twins' virtual sensors on
``robot_<i>/twin/scan`` and ``robot_<i>/twin/camera/image_raw`` (frames ``robot_<i>/twin/...``),
and the task's per-episode state (goal_pose, ...).

QoS (REP-2003): sensor topics and /clock reliable (any subscriber matches); twin poses and
commands read best effort; goal_pose and the task's state latched.
"""

from __future__ import annotations

import os
import time
import traceback

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, LaserScan
from visualization_msgs.msg import MarkerArray

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
from ros_nodes.runtime import main_for, request_stop
from ros_nodes.task_topics import (
    MARKERS_TOPIC,
    STATUS_QOS,
    STATUS_TOPIC,
    TASK_QOS,
    TaskMessageError,
    marker_array,
    status_message,
    task_topics,
)
from sim_bridge.backends import backend_class
from sim_bridge.fleet import Fleet, step_for_rate
from sim_bridge.pacing import Pacer
from sim_bridge.safety import Throttle, Verdict
from sim_bridge.task_run import EpisodeState, TaskRun

PARAMS = [
    Param("world", "navigation", "world file (path or shipped name)"),
    Param("seed", 0, "episode seed (start poses, goals); the next episode takes the next seed"),
    Param("robot_count", 0, "robots in the world's first group (0: as the world file says)", non_negative),
    Param("mode", "sim", "sim: simulate the robots; twin: place twins from robot_<i>/twin/odom", one_of("sim", "twin")),
    Param("real_time_factor", 1.0, "simulated seconds per wall second (0: as fast as possible)", non_negative),
    Param("odom_rate_hz", 60.0, "odometry rate (at most the engine's step rate)", positive),
    Param("scan_rate_hz", 10.0, "lidar rate (0: none; with lockstep: every control period)", non_negative),
    Param("camera", False, "publish camera images (needs sensors.camera in the world, on a backend with cameras)"),
    Param("camera_rate_hz", 0.0, "camera rate (0: the world's camera rate)", non_negative),
    Param("cmd_timeout_s", 0.5, "stop a robot whose last command is older than this", positive),
    Param("lockstep", False, "start each control period only once every robot has been commanded since the last"),
    Param(
        "episode_end",
        "hold",
        "at the end of an episode: hold (park every robot) or reset (next seed)",
        one_of("hold", "reset"),
    ),
    Param("status_period_s", 1.0, "task/status period in simulated seconds (also at every start and end)", positive),
]

MAX_CATCH_UP_S = 0.25  # simulated time one tick may catch up (within the 0.5 s command watchdog)
REPUBLISH_S = 1.0  # lockstep: wall seconds without a full set of commands before the state is sent again
MARKER_PERIOD_S = 0.1  # wall seconds between task/markers (for people: 10 Hz is plenty)


class SimNode(Node):
    def __init__(self):
        super().__init__("sim_node")
        p = declare_params(self, PARAMS)
        self.p = p
        world = load_world_param(p.world, p.robot_count)
        self._check_camera(world)
        # Lockstep sends the state once per control period, so it steps whole periods, as the env.
        step_s = world.control_dt if p.lockstep and p.mode == "sim" else step_for_rate(world, p.odom_rate_hz)
        try:
            self.fleet = Fleet(world, p.seed, step_s, p.cmd_timeout_s)
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
        try:
            self.topics = task_topics(self.fleet.task)
        except TaskMessageError as err:
            raise ParameterError(self.get_name(), [f"'world': {err}"]) from None
        self.task_pubs = {
            t.name: self.create_publisher(t.msg_type, t.name, GOAL_QOS if t.robot is not None else TASK_QOS)
            for t in self.topics.topics()
        }
        self.markers_pub = self.create_publisher(MarkerArray, MARKERS_TOPIC, TASK_QOS)
        self._start_wall = now_s(self)
        self._time_offset_s = 0.0  # simulated time of earlier episodes: the clock never runs back
        self._next_scan = 0.0
        self._next_image = 0.0
        self._next_odom = 0.0
        self._next_markers_wall = 0.0
        if self.twin:
            self.run = None
            self._publish_episode_start(self._start_wall)
            self._twin_states = np.full((len(self.robots), 6), np.nan)
            for r in self.robots:
                self.create_subscription(Odometry, f"{r.name}/twin/odom", self._on_twin(r.index), SENSOR_SUB_QOS)
            self.create_timer(1.0 / p.odom_rate_hz, self._tick_twin)
        else:
            self.run = TaskRun(self.fleet, p.seed)
            self.odom_pubs = [self.create_publisher(Odometry, f"{r.name}/odom", SENSOR_PUB_QOS) for r in self.robots]
            self.clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS)
            self.tf = frames.TfBroadcaster(self)
            self._publish_static_tf(self._start_wall)
            self.status_pub = self.create_publisher(DiagnosticArray, STATUS_TOPIC, STATUS_QOS)
            self._next_status = 0.0
            self._commanded = np.zeros(len(self.robots), dtype=bool)
            self._waiting_since = time.monotonic()
            for r in self.robots:
                self.create_subscription(Twist, f"{r.name}/cmd_vel", self._on_cmd(r.index, r.name), COMMAND_SUB_QOS)
            self._publish_episode_start(self._stamp())
            self._publish_state(self._stamp(), boundary=True)
            self.pacer = self._make_pacer()
            rtf = p.real_time_factor
            period = self.fleet.step_s / rtf if rtf > 0 else (0.05 if p.lockstep else 0.001)
            self.create_timer(period, self._tick_sim)
        odom_hz = min(p.odom_rate_hz, 1.0 / self.fleet.step_s)
        self.get_logger().info(
            f"world {world.name}: {len(self.robots)} robots on {world.backend}, mode {p.mode}, "
            f"real-time factor {p.real_time_factor:g}, control period {world.control_dt:g} s, "
            f"step {self.fleet.step_s:.4g} s, odometry {odom_hz:g} Hz"
            + (", lockstep" if p.lockstep and not self.twin else "")
        )

    def _check_camera(self, world) -> None:
        if not self.p.camera:
            return
        if world.sensors.camera is None:
            raise ParameterError(self.get_name(), [f"'camera': world {world.name} has no sensors.camera"])
        if not backend_class(world.backend).capabilities.cameras:
            raise ParameterError(
                self.get_name(),
                [
                    f"'camera': the {world.backend} engine of world {world.name} ({world.source}) renders no "
                    "camera images; use a world on the pybullet backend for cameras, or camera:=false"
                ],
            )

    # ---- sim mode: commands and stepping ---------------------------------------------------
    def _on_cmd(self, index: int, name: str):
        def callback(msg: Twist) -> None:
            if self.run.state is EpisodeState.WAITING and not self.p.lockstep:
                self._start_episode()
            v, w = conv.twist_command(msg)
            result = self.fleet.command(index, v, w)
            if result.verdict is not Verdict.ACCEPTED and self.throttle.ready(f"{name}/{result.verdict}", now_s(self)):
                self.get_logger().warning(f"{name}/cmd_vel: {result.reason}")
            self._commanded[index] = True
            if self._lockstepping() and self.p.real_time_factor == 0:
                self._guarded(self._lockstep_advance)

        return callback

    def _start_episode(self) -> None:
        """The episode's clock starts with the first command: a controller that takes a
        while to come up finds the world as the env's ``reset`` leaves it, at episode time 0."""
        self.run.start()
        self.get_logger().info(f"episode {self.run.episode} (seed {self.run.seed}) started by the first command")
        self._publish_status(self._stamp())

    def _lockstepping(self) -> bool:
        return self.p.lockstep and not self.run.over

    def _tick_sim(self) -> None:
        if self._lockstepping():
            self._guarded(self._lockstep_advance)
        else:
            self._guarded(self._free_advance)

    def _guarded(self, advance) -> None:
        """Run a stepping function; a failure ends the node with one clear message."""
        try:
            advance()
        except Exception as err:  # the node's top level: report it for people, then stop
            self.get_logger().debug(traceback.format_exc())
            self.get_logger().error(f"world {self.world.name}: simulation stopped: {type(err).__name__}: {err}")
            request_stop(exit_code=1)

    def _free_advance(self) -> None:
        """Real time (× real_time_factor) or as fast as possible, never in long bursts."""
        pacer = self.pacer
        if pacer is None:
            for _ in range(10):
                self._step()
            return
        due, slipped = pacer.due()
        if slipped and self.throttle.ready("slip", time.monotonic()):
            self.get_logger().warning(f"cannot keep real-time factor {pacer.real_time_factor:g}: simulated time slips")
        for _ in range(due):
            self._step()
            pacer.took(1)
            if self.pacer is not pacer:  # the episode ended: paced afresh
                return

    def _make_pacer(self) -> Pacer | None:
        """Pacing from now on: the real-time factor (None: as fast as possible); an episode
        held at its end runs at real time at most."""
        rtf = self.p.real_time_factor
        if self.run.over and self.p.episode_end == "hold":
            rtf = min(rtf, 1.0) if rtf > 0 else 1.0
        return Pacer(self.fleet.step_s, rtf, MAX_CATCH_UP_S) if rtf > 0 else None

    def _lockstep_advance(self) -> None:
        """One control period once every robot has been commanded (and, with a real-time
        factor, once it is due); the state is sent again while commands are missing."""
        wall = time.monotonic()
        if not self._commanded.all():
            if wall - self._waiting_since > REPUBLISH_S:
                self._waiting_since = wall
                # Sent again only while no command came at all (a controller starting up, or
                # one that missed it): a repeat never races commands already on their way.
                if not self._commanded.any():
                    self._publish_state(self._stamp(), boundary=True)
                missing = [r.name for r in self.robots if not self._commanded[r.index]]
                if self.throttle.ready("lockstep", wall):
                    self.get_logger().warning(
                        f"lockstep: waiting for cmd_vel from {', '.join(missing)} "
                        f"(simulated time held at {self.fleet.time_s:.2f} s)"
                    )
            return
        block = self.run.steps_per_control
        if self.pacer is not None and not self.pacer.block_due(block):
            return  # with a real-time factor: not before its time
        self._commanded[:] = False
        if self.run.state is EpisodeState.WAITING:
            self._start_episode()
        pacer = self.pacer
        for _ in range(block):
            self._step()
        if pacer is not None:
            pacer.took(block)
        self._waiting_since = time.monotonic()

    def _step(self) -> None:
        """One engine step, then what is due: the task at the end of a control period,
        clock, odometry, sensors, task state, markers, status."""
        self.fleet.step()
        boundary = self.run.at_control_boundary()
        if boundary and self.run.running:
            finished = self.run.end_of_control_period()
            for i in np.flatnonzero(finished):
                if not self.run.over:
                    self.get_logger().info(f"{self.robots[i].name}: done with its task: parked")
            if self.run.over:
                self._end_episode()
                return
        self._publish_state(self._stamp(), boundary)

    def _stamp(self) -> float:
        return self._start_wall + self._time_offset_s + self.fleet.time_s

    # ---- episodes ----------------------------------------------------------------------------
    def _end_episode(self) -> None:
        run = self.run
        stamp = self._stamp()
        metrics = run.metrics()
        self._publish_status(stamp)
        self._publish_state(stamp, boundary=True)
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        self.get_logger().info(
            f"episode {run.episode} (seed {run.seed}) {run.state.value} at {run.time_s:.2f} s: "
            + ", ".join(f"{k}={v:.4g}" for k, v in shown.items())
        )
        if self.p.episode_end == "reset":
            # The reset takes one control period of simulated time: no two states share a stamp.
            self._time_offset_s += self.fleet.time_s + self.world.control_dt
            self.fleet.reset(run.seed + 1)
            self._next_scan = self._next_image = self._next_odom = 0.0
            self.run = TaskRun(self.fleet, run.seed + 1, run.episode + 1)
            self.run.start()  # its controller is there already
            self._publish_episode_start(self._stamp())
            self._publish_state(self._stamp(), boundary=True)
        else:
            self.get_logger().info("episode over: every robot held (episode_end: hold)")
            self.fleet.parked[:] = True
        self.pacer = self._make_pacer()
        self._waiting_since = time.monotonic()

    def _publish_episode_start(self, stamp: float) -> None:
        """The task's per-episode state (latched), fresh markers and a running status."""
        for topic, msg in self.topics.static_messages(stamp).items():
            self.task_pubs[topic].publish(msg)
        self.markers_pub.publish(marker_array(self.topics, stamp, clear=True))
        self._next_markers_wall = time.monotonic() + MARKER_PERIOD_S
        if self.run is not None:
            self._publish_status(stamp)

    def _publish_status(self, stamp: float) -> None:
        run = self.run
        msg = status_message(
            stamp,
            self.world.name,
            run.task.name,
            run.episode,
            run.seed,
            run.state.value,
            run.time_s,
            run.metrics(),
        )
        self.status_pub.publish(msg)
        self._next_status = self.fleet.time_s + self.p.status_period_s

    # ---- publishing --------------------------------------------------------------------------
    def _publish_state(self, stamp: float, boundary: bool) -> None:
        """What is due at ``stamp``; at the end of a control period in lockstep, everything a
        controller needs (task state, scans, odometry), the clock last."""
        t = self.fleet.time_s
        # Lockstep: the state goes out once per control period, whole, so that a controller
        # can tell a complete one by its stamps; otherwise each stream at its own rate.
        lockstep = self._lockstepping()
        if lockstep and not boundary:
            self._publish_clock(stamp)
            return
        if boundary:
            for topic, msg in self.topics.dynamic_messages(stamp).items():
                self.task_pubs[topic].publish(msg)
        self._publish_sensors(stamp, lockstep=lockstep)
        if lockstep or t >= self._next_odom - 1e-9:
            self._next_odom = t + 1.0 / self.p.odom_rate_hz
            self._publish_odom(stamp)
            self._publish_tf(stamp)
        wall = time.monotonic()
        if wall >= self._next_markers_wall:
            self._next_markers_wall = wall + MARKER_PERIOD_S
            self.markers_pub.publish(marker_array(self.topics, stamp))
        if t >= self._next_status - 1e-9 and not self.run.over:
            self._publish_status(stamp)
        self._publish_clock(stamp)

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
    def _publish_sensors(self, stamp: float, lockstep: bool = False) -> None:
        t = self.fleet.time_s if not self.twin else stamp
        if self.scan_pubs and (lockstep or t >= self._next_scan - 1e-9):
            self._next_scan = t + 1.0 / self.p.scan_rate_hz
            ranges = self.fleet.backend.lidar()[0]
            lidar = self.world.sensors.lidar
            for r, pub in zip(self.robots, self.scan_pubs, strict=True):
                prefix = self.frame_prefixes[r.index]
                pub.publish(conv.laser_scan(stamp, prefix, ranges[r.index], lidar, self.p.scan_rate_hz))
        if self.image_pubs and self.camera_rate > 0 and t >= self._next_image - 1e-9:
            self._next_image = t + 1.0 / self.camera_rate
            for r, pub in zip(self.robots, self.image_pubs, strict=True):
                frame = self.fleet.backend.render(r.index)
                pub.publish(conv.rgb_image(stamp, f"{self.frame_prefixes[r.index]}/camera", frame.rgb))

    def on_shutdown(self) -> None:
        self.fleet.close()


main = main_for(SimNode, "sim_node")
