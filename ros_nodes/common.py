"""Pieces every sern node shares: QoS profiles, the world parameter, robot selection."""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from worlds import WorldSpec, load_world, with_robot_count
from worlds.spec import RobotEntry

# REP-2003. Drivers and simulators publish sensor data (odometry, scans, images, the twins'
# poses) with the system-default profile, reliable and volatile, so every subscriber
# matches, a plain `create_subscription(Odometry, "robot_0/odom", cb, 10)` included.
SENSOR_PUB_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# sern's own consumers subscribe with the sensor-data profile (best effort: a late sample is
# worth less than the next one, and no retransmission holds the stream up), with a deeper
# queue than rclpy's qos_profile_sensor_data (5) so a bridge that stalls on a delayed link
# loses nothing.
SENSOR_SUB_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
# The best-effort subscription profile under its older name (tests and benchmarks use it).
STATE_QOS = SENSOR_SUB_QOS
# Commands: robots read best effort, which matches reliable and best-effort senders alike
# (a plain `create_publisher(Twist, "robot_0/cmd_vel", 10)` drives them); sern sends reliable.
COMMAND_SUB_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
COMMAND_PUB_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Goals: latched, so a node that starts late still gets them.
GOAL_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
DIAGNOSTICS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
# /clock: reliable so plain subscribers get it too; rclpy's and rclcpp's time sources read
# it best effort, which a reliable writer serves. Depth 1: only the latest time matters.
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
# /initialpose (RViz's "2D Pose Estimate", Nav2): RViz publishes it reliable, volatile.
INITIAL_POSE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


class RobotSelectionError(ValueError):
    pass


def select_robots(world: WorldSpec, names: list[str]) -> list[RobotEntry]:
    """The world's robots named in ``names`` (all of them when empty), in index order."""
    entries = world.robot_entries()
    if not names:
        return entries
    known = {r.name: r for r in entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RobotSelectionError(
            f"'robots': {', '.join(unknown)} not in world {world.name} (robots: {', '.join(known)})"
        )
    return [known[n] for n in sorted(set(names), key=lambda n: known[n].index)]


def now_s(node: Node) -> float:
    """The node's clock in seconds (wall time, or /clock with use_sim_time)."""
    return node.get_clock().now().nanoseconds * 1e-9


def load_world_param(name: str, robot_count: int = 0) -> WorldSpec:
    """The world a ``world`` parameter names (a path or a shipped world's name), with
    ``robot_count`` robots in its first group when non-zero."""
    return with_robot_count(load_world(name), robot_count)
