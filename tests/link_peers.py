"""ROS peers for site-link tests that run inside a network namespace (an emulated site),
where the test's own rclpy node cannot reach: run as scripts, they log to an .npz file on
SIGINT/SIGTERM.

    python tests/link_peers.py commander OUT.npz [RATE_HZ]
        publishes /robot_0/cmd_vel (v = 0.5 m/s) at RATE_HZ (default 20), a sequence number
        from 1 in angular.x (a ground robot ignores roll rate; 0 is left for the all-zero
        stop a site link publishes when commands go silent); logs (wall time sent, seq)
    python tests/link_peers.py recorder OUT.npz
        logs every /robot_0/cmd_vel that reaches the robot's site (wall time, seq) and the
        robot's odometry (stamp, forward speed, wall time received) and the site link's
        ``stale_dropped`` count (wall time, count); prints "robot driving" once 20 commands
        arrived and the robot's last 10 odometry messages say it drives faster than 0.4 m/s
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.signals import SignalHandlerOptions

from ros_nodes import conversions as conv
from ros_nodes.common import COMMAND_PUB_QOS, COMMAND_SUB_QOS, DIAGNOSTICS_QOS, STATE_QOS


def main() -> int:
    role, out = sys.argv[1], sys.argv[2]
    rate_hz = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    log: dict[str, list] = {"sent": [], "received": [], "odom": [], "stale_dropped": []}
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *a: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # ours end the loop cleanly
    node = rclpy.create_node(f"link_peer_{role}")
    if role == "commander":
        pub = node.create_publisher(Twist, "/robot_0/cmd_vel", COMMAND_PUB_QOS)
        seq = {"n": 1}

        def send() -> None:
            msg = conv.twist(0.5, 0.0)
            msg.angular.x = float(seq["n"])
            log["sent"].append((time.time(), seq["n"]))
            pub.publish(msg)
            seq["n"] += 1

        node.create_timer(1.0 / rate_hz, send)
    elif role == "recorder":

        def on_cmd(msg: Twist) -> None:
            log["received"].append((time.time(), msg.angular.x))

        def on_odom(msg: Odometry) -> None:
            log["odom"].append((conv.seconds(msg.header.stamp), msg.twist.twist.linear.x, time.time()))
            recent = log["odom"][-10:]
            if not driving["yet"] and len(log["received"]) >= 20 and all(v > 0.4 for _, v, _ in recent):
                driving["yet"] = True
                print("robot driving", flush=True)

        driving = {"yet": False}

        node.create_subscription(Twist, "/robot_0/cmd_vel", on_cmd, COMMAND_SUB_QOS)

        def on_diagnostics(msg: DiagnosticArray) -> None:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                if ": link to " in status.name and "stale_dropped" in values:
                    log["stale_dropped"].append((time.time(), float(values["stale_dropped"])))

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, DIAGNOSTICS_QOS)
        node.create_subscription(Odometry, "/robot_0/odom", on_odom, STATE_QOS)
    else:
        print(f"link_peers: unknown role {role!r}; use commander or recorder", file=sys.stderr)
        return 2
    print("ready", flush=True)
    try:
        while not stop["now"]:
            rclpy.spin_once(node, timeout_sec=0.02)
    finally:
        np.savez(out, **{k: np.array(v, dtype=float).reshape(-1, 3 if k == "odom" else 2) for k, v in log.items()})
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
