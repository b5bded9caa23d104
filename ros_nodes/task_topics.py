"""A task's state on ROS topics: what each task's observation needs beyond the robots' own
odometry and scans, in standard messages, map frame, REP-103 units (m, m/s, rad).

The sim node builds the messages from its task (``static_messages`` once per episode,
``dynamic_messages`` every control period); the policy node writes each message it receives
back into its own copy of the task (``apply``) and calls the task's own ``observe``, so a
robot's observation in the graph is computed by the same code as in the env.

========== ============================ ==================================== ===========
task       topic                        message                              when
========== ============================ ==================================== ===========
navigation ``robot_<i>/goal_pose``      geometry_msgs/PoseStamped            episode
flocking   ``task/goal``                geometry_msgs/PoseStamped            episode
coverage   ``task/landmarks``           geometry_msgs/PoseArray              episode
foraging   ``task/nest``                geometry_msgs/PoseStamped            episode
foraging   ``task/items``               sensor_msgs/PointCloud2: x, y, z,    control
                                        carrier (int32: robot index, -1 on
                                        the floor); delivered items left out
pursuit    ``task/evaders``             sensor_msgs/PointCloud2: x, y, z,    control
                                        vx, vy (map frame); captured ones
                                        left out
transport  ``task/goal``                geometry_msgs/PoseStamped            episode
transport  ``task/object``              nav_msgs/Odometry (child frame       control
                                        ``object``, not rotating: its twist
                                        is the map-frame velocity)
all        ``task/markers``             visualization_msgs/MarkerArray       ≤ 10 Hz
all        ``task/status``              diagnostic_msgs/DiagnosticArray      1 Hz, start, end
========== ============================ ==================================== ===========

Point sets with per-point attributes (a carrier, a velocity) are ``PointCloud2`` (float64
fields), the standard message for points with named fields (radar drivers publish
velocities the same way); a single moving body is ``Odometry``. Every task topic is
reliable and transient-local with depth 1: it is a state, so a late subscriber gets the
current one and a slow one the newest; ``task/status`` keeps 10, so that no episode's end is
lost behind the next one's start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ros_nodes import conversions as conv
from worlds.tasks import Task

MAP_FRAME = "map"
TASK_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# Statuses are events as well as a state: an episode's end must not be replaced by the next
# episode's start before a reader has it, so keep a few (a late reader gets the recent ones).
STATUS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
MARKERS_TOPIC = "task/markers"
STATUS_TOPIC = "task/status"
STATUS_NAME = "sern task"


class TaskMessageError(ValueError):
    """A task message that does not fit the task (a count or field the world cannot have)."""


@dataclass(frozen=True)
class TaskTopic:
    """One topic of a task's state: its name, message type, and whether it changes during
    an episode (``dynamic``: published every control period) or only between episodes."""

    name: str
    msg_type: type
    dynamic: bool = False
    robot: int | None = None  # a per-robot topic (navigation goals): the robot's index


# ---- standard messages from and to arrays ---------------------------------------------------
def pose_array(stamp_s: float, points: np.ndarray) -> PoseArray:
    msg = PoseArray()
    msg.header.stamp = conv.time_msg(stamp_s)
    msg.header.frame_id = MAP_FRAME
    msg.poses = [_pose(x, y) for x, y in np.asarray(points, dtype=float).reshape(-1, 2)]
    return msg


def pose_array_points(msg: PoseArray) -> np.ndarray:
    return np.array([(p.position.x, p.position.y) for p in msg.poses], dtype=float).reshape(-1, 2)


def point_stamped_pose(stamp_s: float, xy: np.ndarray) -> PoseStamped:
    return conv.pose_stamped(stamp_s, MAP_FRAME, float(xy[0]), float(xy[1]))


def pose_xy(msg: PoseStamped) -> np.ndarray:
    return np.array([msg.pose.position.x, msg.pose.position.y], dtype=float)


_FIELD_TYPES = {np.dtype(np.float64): PointField.FLOAT64, np.dtype(np.int32): PointField.INT32}
_FIELD_DTYPES = {v: k for k, v in _FIELD_TYPES.items()}


def point_cloud(stamp_s: float, columns: dict[str, np.ndarray]) -> PointCloud2:
    """An unorganised cloud in the map frame, one point per row of ``columns`` (name → (M,)
    float64 or int32 values; ``x``, ``y``, ``z`` first)."""
    names = list(columns)
    dtype = np.dtype([(n, np.asarray(columns[n]).dtype) for n in names])
    rows = len(next(iter(columns.values()))) if columns else 0
    data = np.zeros(rows, dtype=dtype)
    for n in names:
        data[n] = columns[n]
    msg = PointCloud2()
    msg.header.stamp = conv.time_msg(stamp_s)
    msg.header.frame_id = MAP_FRAME
    msg.height, msg.width = 1, rows
    msg.fields = [
        PointField(name=n, offset=dtype.fields[n][1], datatype=_FIELD_TYPES[dtype.fields[n][0]], count=1) for n in names
    ]
    msg.is_bigendian = False
    msg.point_step = dtype.itemsize
    msg.row_step = dtype.itemsize * rows
    msg.is_dense = True
    msg.data = data.tobytes()
    return msg


def cloud_columns(msg: PointCloud2, want: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named fields of a cloud as arrays; a missing field or a bad layout is an error."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in want if n not in fields]
    if missing:
        raise TaskMessageError(f"point cloud has no field {', '.join(missing)} (fields: {', '.join(fields) or 'none'})")
    try:
        dtype = np.dtype(
            {
                "names": list(want),
                "formats": [_FIELD_DTYPES[fields[n].datatype] for n in want],
                "offsets": [fields[n].offset for n in want],
                "itemsize": msg.point_step,
            }
        )
    except KeyError:
        raise TaskMessageError("point cloud fields must be float64 or int32") from None
    count = msg.width * msg.height
    if msg.is_bigendian or len(msg.data) < count * msg.point_step:
        raise TaskMessageError(f"point cloud of {count} points has {len(msg.data)} bytes of data")
    data = np.frombuffer(bytes(msg.data[: count * msg.point_step]), dtype=dtype, count=count)
    return {n: np.array(data[n]) for n in want}


def body_odometry(stamp_s: float, child: str, xy: np.ndarray, velocity: np.ndarray) -> Odometry:
    """A non-rotating body's pose and map-frame velocity as Odometry (``map`` → ``child``)."""
    msg = Odometry()
    msg.header.stamp = conv.time_msg(stamp_s)
    msg.header.frame_id = MAP_FRAME
    msg.child_frame_id = child
    msg.pose.pose = _pose(*xy)
    msg.twist.twist.linear.x = float(velocity[0])
    msg.twist.twist.linear.y = float(velocity[1])
    return msg


def _pose(x: float, y: float) -> Pose:
    pose = Pose()
    pose.position.x = float(x)
    pose.position.y = float(y)
    pose.orientation.w = 1.0
    return pose


def _count_check(what: str, got: int, allowed: int, exact: bool = False) -> None:
    if got > allowed or (exact and got != allowed):
        need = f"{allowed}" if exact else f"at most {allowed}"
        raise TaskMessageError(f"{what}: {got} in the message, the world has {need} (is it the same world file?)")


# ---- markers, for people (RViz) -------------------------------------------------------------
def _marker(ns: str, kind: int, stamp_s: float, marker_id: int = 0) -> Marker:
    m = Marker()
    m.header.stamp = conv.time_msg(stamp_s)
    m.header.frame_id = MAP_FRAME
    m.ns, m.id, m.type, m.action = ns, marker_id, kind, Marker.ADD
    m.pose.orientation.w = 1.0
    return m


def _rgba(r: float, g: float, b: float, a: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=r, g=g, b=b, a=a)


def disc_marker(ns: str, stamp_s: float, xy, radius_m: float, colour: ColorRGBA, marker_id: int = 0) -> Marker:
    """A flat cylinder of ``radius_m`` at ``xy`` (a goal area, a landmark, the object)."""
    m = _marker(ns, Marker.CYLINDER, stamp_s, marker_id)
    m.pose.position.x, m.pose.position.y, m.pose.position.z = float(xy[0]), float(xy[1]), 0.01
    m.scale.x = m.scale.y = 2.0 * radius_m
    m.scale.z = 0.02
    m.color = colour
    return m


def spheres_marker(ns: str, stamp_s: float, points: np.ndarray, diameter_m: float, colour: ColorRGBA) -> Marker:
    """Points as one sphere list (a fixed marker count however many points there are)."""
    m = _marker(ns, Marker.SPHERE_LIST, stamp_s)
    m.scale.x = m.scale.y = m.scale.z = diameter_m
    m.color = colour
    m.points = [Point(x=float(x), y=float(y), z=diameter_m / 2) for x, y in np.asarray(points).reshape(-1, 2)]
    return m


GOAL_COLOUR = _rgba(0.1, 0.8, 0.2, 0.5)
ITEM_COLOUR = _rgba(0.95, 0.75, 0.1)
BODY_COLOUR = _rgba(0.85, 0.2, 0.2)


# ---- the tasks ------------------------------------------------------------------------------
class TaskTopics:
    """The topics of one task's state; subclasses write the per-task parts."""

    task_name: ClassVar[str]

    def __init__(self, task: Task):
        self.task = task

    def topics(self) -> list[TaskTopic]:
        """Every topic of this task's state (static first)."""
        return []

    def static_messages(self, stamp_s: float) -> dict[str, Any]:
        """Topic → message for what is fixed for the episode (sim side)."""
        return {}

    def dynamic_messages(self, stamp_s: float) -> dict[str, Any]:
        """Topic → message for what changes every control period (sim side)."""
        return {}

    def apply(self, topic: str, msg) -> None:
        """Write a received message into the task (policy side); ``TaskMessageError`` if it
        cannot be this task's."""
        raise TaskMessageError(f"the {self.task_name} task has no topic {topic}")

    def markers(self, stamp_s: float) -> list[Marker]:
        return []


class NavigationTopics(TaskTopics):
    task_name = "navigation"

    def topics(self) -> list[TaskTopic]:
        return [TaskTopic(f"{r.name}/goal_pose", PoseStamped, robot=r.index) for r in self.task.robots]

    def static_messages(self, stamp_s: float) -> dict[str, Any]:
        goals = self.task.goals[0]
        return {f"{r.name}/goal_pose": point_stamped_pose(stamp_s, goals[r.index]) for r in self.task.robots}

    def apply(self, topic: str, msg) -> None:
        robot = next((r for r in self.task.robots if topic == f"{r.name}/goal_pose"), None)
        if robot is None:
            super().apply(topic, msg)
        self.task.goals[0, robot.index] = pose_xy(msg)

    def markers(self, stamp_s: float) -> list[Marker]:
        tol = self.task.params.goal_tolerance_m
        return [disc_marker("goals", stamp_s, g, tol, GOAL_COLOUR, i) for i, g in enumerate(self.task.goals[0])]


class FlockingTopics(TaskTopics):
    task_name = "flocking"

    def topics(self) -> list[TaskTopic]:
        return [TaskTopic("task/goal", PoseStamped)]

    def static_messages(self, stamp_s: float) -> dict[str, Any]:
        return {"task/goal": point_stamped_pose(stamp_s, self.task.goals[0])}

    def apply(self, topic: str, msg) -> None:
        if topic != "task/goal":
            super().apply(topic, msg)
        self.task.goals[0] = pose_xy(msg)

    def markers(self, stamp_s: float) -> list[Marker]:
        return [disc_marker("goal", stamp_s, self.task.goals[0], self.task.params.goal_radius_m, GOAL_COLOUR)]


class CoverageTopics(TaskTopics):
    task_name = "coverage"

    def topics(self) -> list[TaskTopic]:
        return [TaskTopic("task/landmarks", PoseArray)]

    def static_messages(self, stamp_s: float) -> dict[str, Any]:
        return {"task/landmarks": pose_array(stamp_s, self.task.landmarks[0])}

    def apply(self, topic: str, msg) -> None:
        if topic != "task/landmarks":
            super().apply(topic, msg)
        points = pose_array_points(msg)
        _count_check("landmarks", len(points), self.task.params.landmarks, exact=True)
        self.task.landmarks[0] = points

    def markers(self, stamp_s: float) -> list[Marker]:
        covered = self.task.covered[0]
        r = self.task.params.cover_radius_m
        return [
            disc_marker("landmarks", stamp_s, p, r, GOAL_COLOUR if covered[k] else BODY_COLOUR, k)
            for k, p in enumerate(self.task.landmarks[0])
        ]


class ForagingTopics(TaskTopics):
    task_name = "foraging"

    def topics(self) -> list[TaskTopic]:
        return [TaskTopic("task/nest", PoseStamped), TaskTopic("task/items", PointCloud2, dynamic=True)]

    def static_messages(self, stamp_s: float) -> dict[str, Any]:
        return {"task/nest": point_stamped_pose(stamp_s, self.task.nest)}

    def dynamic_messages(self, stamp_s: float) -> dict[str, Any]:
        from worlds.tasks.foraging import DELIVERED

        state, pos, carrying = self.task.item_state[0], self.task.item_pos[0], self.task.carrying[0]
        carrier = np.full(len(state), -1, dtype=np.int32)
        for robot, item in enumerate(carrying):
            if item >= 0:
                carrier[item] = robot
        keep = state != DELIVERED
        columns = {
            "x": pos[keep, 0],
            "y": pos[keep, 1],
            "z": np.zeros(int(keep.sum())),
            "carrier": carrier[keep],
        }
        return {"task/items": point_cloud(stamp_s, columns)}

    def apply(self, topic: str, msg) -> None:
        from worlds.tasks.foraging import CARRIED, DELIVERED, FLOOR

        task = self.task
        if topic == "task/nest":
            task.nest = pose_xy(msg)
            return
        if topic != "task/items":
            super().apply(topic, msg)
        cols = cloud_columns(msg, ("x", "y", "carrier"))
        xy = np.stack([cols["x"], cols["y"]], axis=-1)
        carrier = cols["carrier"].astype(int)
        _count_check("items", len(xy), task.params.items)
        bad = carrier[(carrier >= task.num_robots) | (carrier < -1)]
        if len(bad):
            raise TaskMessageError(f"items: carrier {int(bad[0])} is not a robot of this world")
        # Items on the floor first, in the message's order (the task breaks distance ties by
        # index), then carried ones; the rest of the task's slots are delivered.
        floor = carrier < 0
        order = np.concatenate([np.flatnonzero(floor), np.flatnonzero(~floor)])
        n = len(order)
        task.item_pos[0, :n] = xy[order]
        task.item_state[0, :n] = np.where(floor[order], FLOOR, CARRIED)
        task.item_state[0, n:] = DELIVERED
        task.carrying[0] = -1
        for slot in range(int(floor.sum()), n):
            task.carrying[0, carrier[order[slot]]] = slot

    def markers(self, stamp_s: float) -> list[Marker]:
        from worlds.tasks.foraging import FLOOR

        p = self.task.params
        floor = self.task.item_state[0] == FLOOR
        return [
            disc_marker("nest", stamp_s, self.task.nest, p.nest_radius_m, GOAL_COLOUR),
            spheres_marker("items", stamp_s, self.task.item_pos[0][floor], 0.2, ITEM_COLOUR),
        ]


class PursuitTopics(TaskTopics):
    task_name = "pursuit"

    def topics(self) -> list[TaskTopic]:
        return [TaskTopic("task/evaders", PointCloud2, dynamic=True)]

    def dynamic_messages(self, stamp_s: float) -> dict[str, Any]:
        free = ~self.task.captured[0]
        pos, vel = self.task.evader_pos[0][free], self.task.evader_vel[0][free]
        columns = {"x": pos[:, 0], "y": pos[:, 1], "z": np.zeros(len(pos)), "vx": vel[:, 0], "vy": vel[:, 1]}
        return {"task/evaders": point_cloud(stamp_s, columns)}

    def apply(self, topic: str, msg) -> None:
        if topic != "task/evaders":
            super().apply(topic, msg)
        cols = cloud_columns(msg, ("x", "y", "vx", "vy"))
        n = len(cols["x"])
        task = self.task
        _count_check("evaders", n, task.params.evaders)
        task.evader_pos[0, :n] = np.stack([cols["x"], cols["y"]], axis=-1)
        task.evader_vel[0, :n] = np.stack([cols["vx"], cols["vy"]], axis=-1)
        task.captured[0, :n] = False
        task.captured[0, n:] = True

    def markers(self, stamp_s: float) -> list[Marker]:
        from worlds.tasks.pursuit import EVADER_RADIUS_M

        free = ~self.task.captured[0]
        return [spheres_marker("evaders", stamp_s, self.task.evader_pos[0][free], 2 * EVADER_RADIUS_M, BODY_COLOUR)]


class TransportTopics(TaskTopics):
    task_name = "transport"

    def topics(self) -> list[TaskTopic]:
        return [TaskTopic("task/goal", PoseStamped), TaskTopic("task/object", Odometry, dynamic=True)]

    def static_messages(self, stamp_s: float) -> dict[str, Any]:
        return {"task/goal": point_stamped_pose(stamp_s, self.task.goal[0])}

    def dynamic_messages(self, stamp_s: float) -> dict[str, Any]:
        return {"task/object": body_odometry(stamp_s, "object", self.task.object_pos[0], self.task.object_vel[0])}

    def apply(self, topic: str, msg) -> None:
        if topic == "task/goal":
            self.task.goal[0] = pose_xy(msg)
            return
        if topic != "task/object":
            super().apply(topic, msg)
        p, v = msg.pose.pose.position, msg.twist.twist.linear
        self.task.object_pos[0] = (p.x, p.y)
        self.task.object_vel[0] = (v.x, v.y)

    def markers(self, stamp_s: float) -> list[Marker]:
        p = self.task.params
        return [
            disc_marker("goal", stamp_s, self.task.goal[0], p.goal_radius_m, GOAL_COLOUR),
            disc_marker("object", stamp_s, self.task.object_pos[0], p.object_radius_m, BODY_COLOUR),
        ]


TASK_TOPICS: dict[str, type[TaskTopics]] = {
    cls.task_name: cls
    for cls in (NavigationTopics, FlockingTopics, CoverageTopics, ForagingTopics, PursuitTopics, TransportTopics)
}


def task_topics(task: Task) -> TaskTopics:
    """The topics of ``task``'s state; a task without them is an error naming the ones that have."""
    try:
        return TASK_TOPICS[task.name](task)
    except KeyError:
        raise TaskMessageError(
            f"no ROS topics for task {task.name!r}; tasks with them: {', '.join(sorted(TASK_TOPICS))}"
        ) from None


def marker_array(topics: TaskTopics, stamp_s: float, clear: bool = False) -> MarkerArray:
    """The task's markers; ``clear`` first deletes every marker (a new episode)."""
    msg = MarkerArray()
    if clear:
        wipe = Marker()
        wipe.header.frame_id = MAP_FRAME
        wipe.action = Marker.DELETEALL
        msg.markers.append(wipe)
    msg.markers.extend(topics.markers(stamp_s))
    return msg


# ---- episode status -------------------------------------------------------------------------
def status_message(
    stamp_s: float, world: str, task: str, episode: int, seed: int, state: str, time_s: float, metrics: dict
) -> DiagnosticArray:
    """``task/status``: one DiagnosticStatus with the episode's index, seed, state
    (waiting for a first command, running, succeeded, failed), simulated time and the task's metrics (scalars as values,
    everything as JSON under ``metrics``)."""
    level = DiagnosticStatus.WARN if state == "failed" else DiagnosticStatus.OK
    values = {"task": task, "episode": str(episode), "seed": str(seed), "state": state, "time_s": f"{time_s:.3f}"}
    for key, value in metrics.items():
        value = value.item() if isinstance(value, np.generic) else value
        if isinstance(value, bool | int | float) or value is None:
            values[key] = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
    values["metrics"] = json.dumps(metrics, separators=(",", ":"), default=_plain)
    status = DiagnosticStatus(level=level, name=STATUS_NAME, message=f"episode {episode} {state}", hardware_id=world)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = conv.time_msg(stamp_s)
    msg.status = [status]
    return msg


@dataclass(frozen=True)
class EpisodeStatus:
    """What ``task/status`` says, parsed."""

    episode: int
    seed: int
    state: str
    time_s: float
    metrics: dict

    @property
    def over(self) -> bool:
        return self.state in ("succeeded", "failed")


def parse_status(msg: DiagnosticArray) -> EpisodeStatus | None:
    """The episode status in a ``task/status`` message (None if it has none)."""
    for status in msg.status:
        if status.name != STATUS_NAME:
            continue
        values = {kv.key: kv.value for kv in status.values}
        try:
            return EpisodeStatus(
                episode=int(values["episode"]),
                seed=int(values["seed"]),
                state=values["state"],
                time_s=float(values["time_s"]),
                metrics=json.loads(values.get("metrics", "{}")),
            )
        except (KeyError, ValueError):
            return None
    return None


def _plain(value):
    """numpy scalars as Python ones, for JSON."""
    return value.item() if hasattr(value, "item") else str(value)
