"""Pieces every sern node shares: QoS profiles, the world parameter, robot selection."""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from worlds import WorldSpec, load_world, with_robot_count
from worlds.spec import RobotEntry

# Robot state streams: best effort (a late odometry message is worth less than the next
# one), deep enough for a delayed link.
STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
# Commands: best-effort readers accept reliable and best-effort writers alike.
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
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


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
