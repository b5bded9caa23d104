"""Traffic for benchmarks/site_link.py: a ROS node playing one site's side of the load.

robot side: per robot, odometry at 30 Hz (header stamp = send time) and a 320×240 RGB camera
at 10 Hz (frames rendered from worlds/navigation.yaml with sensor noise, cycled); logs every
cmd_vel it receives. twin side: per robot, cmd_vel at 20 Hz carrying a sequence number in
angular.x (a test pattern: a ground robot ignores roll rate); logs every odometry message
and camera frame it receives. Logs are written as .npz on SIGINT.

    python benchmarks/link_traffic.py robot|twin OUT.npz [--robots 4] [--cameras 4] [--frames F.npy]

``--frames`` reads the camera frames from a file (``camera_frames`` saved with ``np.save``)
instead of rendering them at start-up.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ros_nodes import conversions as conv

QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
PUB_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


def camera_frames(count: int = 20) -> list[np.ndarray]:
    """Frames as a Husky's camera sees the navigation world while driving, plus noise."""
    from policies.base import PolicyContext
    from policies.registry import make_policy
    from sim_bridge.env import MultiRobotEnv
    from worlds import load_world, load_world_data

    data = load_world("navigation").to_data()
    data["sensors"]["camera"] = {"width": 320, "height": 240, "fov_deg": 70.0}
    env = MultiRobotEnv(load_world_data(data, "navigation with a 320x240 camera"))
    policy = make_policy("scripted", PolicyContext.from_task(env.task))
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(count):
        for _ in range(4):
            obs, *_ = env.step(policy.act(obs))
        rgb = env.backend.render(0).rgb.astype(np.float32)
        frames.append(np.clip(rgb + rng.normal(0.0, 3.0, rgb.shape), 0, 255).astype(np.uint8))
    env.close()
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("side", choices=["robot", "twin"])
    parser.add_argument("out", help="where to write the log (.npz)")
    parser.add_argument("--robots", type=int, default=4, help="robots (default 4)")
    parser.add_argument("--cameras", type=int, default=None, help="robots with a camera (default: all)")
    parser.add_argument("--frames", help="camera frames saved with np.save (default: render them now)")
    args = parser.parse_args()
    side, out, robots = args.side, args.out, args.robots
    cameras = robots if args.cameras is None else min(args.cameras, robots)
    frames = []
    if side == "robot" and cameras > 0:
        frames = list(np.load(args.frames)) if args.frames else camera_frames()
    rclpy.init()
    node = rclpy.create_node(f"link_traffic_{side}")
    log: dict[str, list] = {"odom": [], "camera": [], "cmd": [], "cmd_sent": [], "odom_sent": []}
    names = [f"robot_{i}" for i in range(robots)]
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *a: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    if side == "robot":
        odom_pubs = [node.create_publisher(Odometry, f"/{n}/odom", PUB_QOS) for n in names]
        cam_pubs = [node.create_publisher(Image, f"/{n}/camera/image_raw", PUB_QOS) for n in names[:cameras]]
        for i, n in enumerate(names):
            node.create_subscription(
                Twist, f"/{n}/cmd_vel", lambda m, i=i: log["cmd"].append((time.time(), i, m.angular.x)), QOS
            )
        k = {"odom": 0, "cam": 0}

        def send_odom():
            t = time.time()
            for i, pub in enumerate(odom_pubs):
                pub.publish(conv.odometry(t, names[i], 0.01 * k["odom"], float(i), 0.0, 0.5, 0.0, 0.1))
                log["odom_sent"].append((t, i, k["odom"]))
            k["odom"] += 1

        def send_camera():
            t = time.time()
            frame = frames[k["cam"] % len(frames)]
            for i, pub in enumerate(cam_pubs):
                pub.publish(conv.rgb_image(t, f"{names[i]}/camera", frame))
            k["cam"] += 1

        node.create_timer(1 / 30, send_odom)
        if cam_pubs:
            node.create_timer(1 / 10, send_camera)
    else:
        cmd_pubs = [node.create_publisher(Twist, f"/{n}/cmd_vel", PUB_QOS) for n in names]
        for i, n in enumerate(names):
            node.create_subscription(
                Odometry,
                f"/{n}/odom",
                lambda m, i=i: log["odom"].append((time.time(), i, conv.seconds(m.header.stamp))),
                QOS,
            )
            node.create_subscription(
                Image,
                f"/{n}/camera/image_raw",
                lambda m, i=i: log["camera"].append((time.time(), i, conv.seconds(m.header.stamp), m.width)),
                QOS,
            )
        seq = {"n": 0}

        def send_cmd():
            t = time.time()
            for i, pub in enumerate(cmd_pubs):
                msg = conv.twist(0.5, 0.1)
                msg.angular.x = float(seq["n"])
                pub.publish(msg)
                log["cmd_sent"].append((t, i, float(seq["n"])))
            seq["n"] += 1

        node.create_timer(1 / 20, send_cmd)
    print("ready", flush=True)
    try:
        while not stop["now"]:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        np.savez(out, **{k: np.array(v, dtype=float) for k, v in log.items()})
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
