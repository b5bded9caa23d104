"""REP-105 frames and the transforms sern publishes on /tf and /tf_static.

Frame names, per robot ``robot_<i>`` (the frame prefix is the robot's topic namespace):

  ``map``                      the world: goals, obstacles, the twins' simulation
  ``robot_<i>/odom``           where the robot's odometry started; ``map → robot_<i>/odom`` is
                               its start pose (the twin bridge's ``initial_poses``, or
                               ``/initialpose``); the identity in simulation
  ``robot_<i>/base_link``      the robot; ``robot_<i>/odom → robot_<i>/base_link`` from its
                               odometry (the driver, stand-in or simulator publishes it)
  ``robot_<i>/twin/odom``      its virtual twin's odometry origin: the twin lives in the map,
                               so ``map → robot_<i>/twin/odom`` is the identity
  ``robot_<i>/twin/base_link`` the twin; ``robot_<i>/twin/odom → robot_<i>/twin/base_link``
                               from the twin bridge

A robot and its twin never share a frame. Poses are planar (x, y in m, yaw in rad,
counter-clockwise about z, REP-103).

``tf2_msgs`` has no wheel: ``make setup`` generates it (``tools/generate_interfaces.py``).
Where it is missing, ``TfBroadcaster`` says so once and publishes nothing.
"""

from __future__ import annotations

import math

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ros_nodes import conversions as conv

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - make setup generates it
    TFMessage = None

MAP_FRAME = "map"
# The profiles tf2_ros's broadcasters and listeners use.
TF_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
TF_STATIC_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

Pose2D = tuple[float, float, float]  # x (m), y (m), yaw (rad)


def twin_prefix(robot: str) -> str:
    """The frame (and topic) prefix of ``robot``'s virtual twin."""
    return f"{robot}/twin"


def odom_frame(prefix: str) -> str:
    return f"{prefix}/odom"


def base_frame(prefix: str) -> str:
    return f"{prefix}/base_link"


def compose(a: Pose2D, b: Pose2D) -> Pose2D:
    """``a ∘ b``: pose ``b`` given in frame ``a``, expressed in ``a``'s parent frame."""
    ax, ay, ayaw = a
    bx, by, byaw = b
    c, s = math.cos(ayaw), math.sin(ayaw)
    return ax + c * bx - s * by, ay + s * bx + c * by, wrap(ayaw + byaw)


def invert(a: Pose2D) -> Pose2D:
    """The inverse transform: ``compose(a, invert(a))`` is the identity."""
    x, y, yaw = a
    c, s = math.cos(yaw), math.sin(yaw)
    return -c * x - s * y, s * x - c * y, wrap(-yaw)


def wrap(angle: float) -> float:
    """``angle`` in [-π, π)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def transform(stamp_s: float, parent: str, child: str, pose: Pose2D) -> TransformStamped:
    """``parent → child``: where ``child`` is in ``parent`` (a planar pose, z = 0)."""
    msg = TransformStamped()
    msg.header.stamp = conv.time_msg(stamp_s)
    msg.header.frame_id = parent
    msg.child_frame_id = child
    msg.transform.translation.x = float(pose[0])
    msg.transform.translation.y = float(pose[1])
    msg.transform.rotation = conv.yaw_quaternion(float(pose[2]))
    return msg


def transform_pose(msg: TransformStamped) -> Pose2D:
    """The planar pose a transform carries (its yaw about z)."""
    t = msg.transform
    return t.translation.x, t.translation.y, conv.quaternion_yaw(t.rotation)


class TfBroadcaster:
    """Publishes on /tf and /tf_static as tf2_ros's broadcasters do: dynamic transforms as
    they come, and every static transform of this node in one latched message (a late
    listener gets them all, as transient-local depth 1 keeps only the last message)."""

    def __init__(self, node: Node):
        self._node = node
        self._static: dict[str, TransformStamped] = {}
        if TFMessage is None:
            node.get_logger().warning(
                "tf2_msgs is not installed: no transforms on /tf and /tf_static "
                "(make setup generates it: python tools/generate_interfaces.py)"
            )
            self._pub = self._static_pub = None
            return
        self._pub = node.create_publisher(TFMessage, "/tf", TF_QOS)
        self._static_pub = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)

    def send(self, transforms: list[TransformStamped]) -> None:
        if self._pub is not None and transforms:
            self._pub.publish(TFMessage(transforms=transforms))

    def send_static(self, transforms: list[TransformStamped]) -> None:
        """Add or replace static transforms (by child frame) and republish them all."""
        changed = False
        for t in transforms:
            old = self._static.get(t.child_frame_id)
            if old is None or old.header.frame_id != t.header.frame_id or transform_pose(old) != transform_pose(t):
                self._static[t.child_frame_id] = t
                changed = True
        if changed and self._static_pub is not None:
            self._static_pub.publish(TFMessage(transforms=list(self._static.values())))


class MapPoses:
    """What a consumer needs of /tf_static: where each odometry frame sits in ``map``.

    Keeps the ``map → <frame>`` transforms (one level, planar) that the twin bridge or the
    simulator latch on /tf_static, so a node can place a robot's odometry in the map
    without a full tf2 buffer (and without reading the 60 Hz /tf stream)."""

    def __init__(self, node: Node):
        self.origins: dict[str, Pose2D] = {MAP_FRAME: (0.0, 0.0, 0.0)}
        if TFMessage is not None:
            node.create_subscription(TFMessage, "/tf_static", self._on_tf, TF_STATIC_QOS)

    def _on_tf(self, msg) -> None:
        for t in msg.transforms:
            if t.header.frame_id == MAP_FRAME:
                self.origins[t.child_frame_id] = transform_pose(t)

    def in_map(self, frame: str, pose: Pose2D) -> Pose2D | None:
        """``pose`` (in ``frame``) in the map; None while ``map → frame`` is unknown."""
        origin = self.origins.get(frame)
        return None if origin is None else compose(origin, pose)
