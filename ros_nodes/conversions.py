"""Between standard ROS messages and sern's arrays (REP-103 units, REP-105 frames)."""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Quaternion, Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image, LaserScan

from worlds.spec import Lidar


def time_msg(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=min(round((seconds - sec) * 1e9), 999_999_999))


def seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def quaternion_yaw(q: Quaternion) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def odometry(
    stamp_s: float, frame_prefix: str, x: float, y: float, yaw: float, v: float, vy: float, w: float
) -> Odometry:
    """Odometry with frame prefix ``robot_<i>`` (or ``robot_<i>/twin``): pose in
    ``<prefix>/odom`` (m, rad), twist in ``<prefix>/base_link`` (m/s forward and left, rad/s)."""
    msg = Odometry()
    msg.header.stamp = time_msg(stamp_s)
    msg.header.frame_id = f"{frame_prefix}/odom"
    msg.child_frame_id = f"{frame_prefix}/base_link"
    msg.pose.pose.position.x = float(x)
    msg.pose.pose.position.y = float(y)
    msg.pose.pose.orientation = yaw_quaternion(float(yaw))
    msg.twist.twist.linear.x = float(v)
    msg.twist.twist.linear.y = float(vy)
    msg.twist.twist.angular.z = float(w)
    return msg


def odometry_state(msg: Odometry) -> tuple[float, float, float, float, float, float]:
    """(stamp s, x, y, yaw, v, ω) from an Odometry message."""
    p = msg.pose.pose
    t = msg.twist.twist
    return (
        seconds(msg.header.stamp),
        p.position.x,
        p.position.y,
        quaternion_yaw(p.orientation),
        t.linear.x,
        t.angular.z,
    )


def twist_command(msg: Twist) -> tuple[float, float]:
    return msg.linear.x, msg.angular.z


def twist(v: float, w: float) -> Twist:
    msg = Twist()
    msg.linear.x = float(v)
    msg.angular.z = float(w)
    return msg


def laser_scan(stamp_s: float, frame_prefix: str, ranges: np.ndarray, lidar: Lidar, rate_hz: float) -> LaserScan:
    """A LaserScan in ``<frame_prefix>/base_link``, beams counter-clockwise from
    ``angle_min`` about z with 0 straight ahead (REP-103); no return is +inf (REP-117)."""
    angles = lidar.angles()
    msg = LaserScan()
    msg.header.stamp = time_msg(stamp_s)
    msg.header.frame_id = f"{frame_prefix}/base_link"
    msg.angle_min = float(angles[0])
    msg.angle_max = float(angles[-1])
    msg.angle_increment = float(angles[1] - angles[0]) if len(angles) > 1 else 0.0
    msg.time_increment = 0.0
    msg.scan_time = 1.0 / rate_hz if rate_hz > 0 else 0.0
    msg.range_min = float(lidar.range_min_m)
    msg.range_max = float(lidar.range_max_m)
    msg.ranges = np.asarray(ranges, dtype=np.float32).tolist()
    return msg


def scan_ranges(msg: LaserScan, lidar: Lidar) -> np.ndarray:
    """The scan's ranges resampled onto the world's lidar beam angles (nearest beam);
    out-of-range or missing returns become ``range_max``."""
    r = np.asarray(msg.ranges, dtype=float)
    bad = ~np.isfinite(r) | (r > msg.range_max) | (r < msg.range_min)
    r = np.where(bad, lidar.range_max_m, r)
    want = lidar.angles()
    if len(r) == len(want) and msg.angle_increment and abs(msg.angle_min - want[0]) < 1e-4:
        return r
    if len(r) == 0 or msg.angle_increment == 0:
        return np.full(len(want), lidar.range_max_m)
    idx = np.round((want - msg.angle_min) / msg.angle_increment).astype(int)
    inside = (idx >= 0) & (idx < len(r))
    out = np.full(len(want), lidar.range_max_m)
    out[inside] = r[idx[inside]]
    return out


def rgb_image(stamp_s: float, frame_id: str, rgb: np.ndarray) -> Image:
    msg = Image()
    msg.header.stamp = time_msg(stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def pose_stamped(stamp_s: float, frame_id: str, x: float, y: float, yaw: float = 0.0) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = time_msg(stamp_s)
    msg.header.frame_id = frame_id
    msg.pose.position.x = float(x)
    msg.pose.position.y = float(y)
    msg.pose.orientation = yaw_quaternion(yaw)
    return msg
