"""Images from Unity scenes through ``unity_endpoint`` to ROS: 640×480 RGB frames from two
ROS-TCP clients at once (``RosTcpSceneStandIn`` in the scenes' place, each in its own
process, as two Unity instances would be), published at ``--rate`` Hz each for
``--seconds``, received by a plain rclpy subscriber (sensor-data QoS, as sern's consumers
read) in a third process. Latency is the subscriber's clock minus the stamp the client put
in the image when it sent it (one host, one clock).

    .venv/bin/python benchmarks/unity_endpoint.py [--rate 60] [--seconds 10] [--clients 2]

Ends with one JSON line: {"fps_per_client": [...], "latency_p95_ms", ...}
(goal: ≥ 60 frames/s per client, p95 ≤ 30 ms on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WIDTH, HEIGHT = 640, 480


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_client(port: int, index: int, rate: float, seconds: float, start_at: float) -> None:
    """One scene: register a camera publisher, then send stamped frames at ``rate``."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from sim_bridge.rostcp.scene_stand_in import RosTcpSceneStandIn

    scene = RosTcpSceneStandIn(port)
    topic = f"scene_{index}/camera/image_raw"
    scene.register_publisher(topic, "sensor_msgs/Image", queue_size=10)
    image = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3)
    image.data = np.random.default_rng(index).integers(0, 255, WIDTH * HEIGHT * 3, dtype=np.uint8).tobytes()
    while time.time() < start_at:
        time.sleep(0.01)
    period = 1.0 / rate
    next_at = time.monotonic()
    end = next_at + seconds
    sent = 0
    while time.monotonic() < end:
        now = time.time()
        image.header.stamp.sec, image.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        image.header.frame_id = f"{sent}"
        scene.publish(topic, serialize_message(image))
        sent += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    time.sleep(0.5)
    scene.close()
    print(json.dumps({"sent": sent}), flush=True)


def run_subscriber(clients: int, seconds: float, start_at: float, out: Path) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from ros_nodes.common import SENSOR_SUB_QOS

    rclpy.init()
    node = rclpy.create_node("endpoint_benchmark_sink")
    arrivals: dict[int, list[tuple[float, float]]] = {i: [] for i in range(clients)}

    def on_image(index: int):
        def callback(msg: Image) -> None:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            arrivals[index].append((time.time(), stamp))

        return callback

    for i in range(clients):
        node.create_subscription(Image, f"scene_{i}/camera/image_raw", on_image(i), SENSOR_SUB_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    end = start_at + seconds + 2.0
    while time.time() < end:
        executor.spin_once(timeout_sec=0.05)
    out.write_text(json.dumps({str(k): v for k, v in arrivals.items()}))
    node.destroy_node()
    rclpy.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=60.0, help="frames per second per client")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--role", choices=["client", "subscriber"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        run_client(args.port, args.index, args.rate, args.seconds, args.start_at)
        return 0
    if args.role == "subscriber":
        run_subscriber(args.clients, args.seconds, args.start_at, args.out)
        return 0
    if args.rate <= 0 or args.seconds <= 0 or args.clients < 1:
        parser.error("--rate and --seconds must be positive, --clients at least 1")
    import tempfile

    port = free_port()
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "77"),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTDDS_DEFAULT_PROFILES_FILE": str(ROOT / "config" / "fastdds_large_data.xml"),
    }
    endpoint = subprocess.Popen(
        [str(BIN / "unity_endpoint"), "--ros-args", "-p", f"tcp_port:={port}"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or endpoint.poll() is not None:
                    print("unity_endpoint did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "arrivals.json"
            start_at = time.time() + 5.0  # discovery and connections first
            common = ["--rate", str(args.rate), "--seconds", str(args.seconds), "--start-at", str(start_at)]
            me = [sys.executable, __file__]
            sink = subprocess.Popen(
                [*me, "--role", "subscriber", "--clients", str(args.clients), "--out", str(out), *common], env=env
            )
            clients = [
                subprocess.Popen(
                    [*me, "--role", "client", "--port", str(port), "--index", str(i), *common],
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i in range(args.clients)
            ]
            sent = [
                json.loads(c.communicate(timeout=args.seconds + 60)[0].strip().splitlines()[-1])["sent"]
                for c in clients
            ]
            sink.wait(timeout=args.seconds + 60)
            arrivals = {int(k): np.array(v).reshape(-1, 2) for k, v in json.loads(out.read_text()).items()}
    finally:
        endpoint.terminate()
        endpoint.wait(20)
    fps, latencies = [], []
    for i in range(args.clients):
        got = arrivals[i]
        fps.append(round(len(got) / args.seconds, 1))
        if len(got):
            latencies.append((got[:, 0] - got[:, 1]) * 1000.0)
    lat = np.concatenate(latencies) if latencies else np.array([np.nan])
    result = {
        "image": f"{WIDTH}x{HEIGHT} rgb8",
        "rate_hz": args.rate,
        "seconds": args.seconds,
        "sent_per_client": sent,
        "fps_per_client": fps,
        "delivered": round(sum(len(a) for a in arrivals.values()) / max(sum(sent), 1), 4),
        "latency_median_ms": round(float(np.median(lat)), 2),
        "latency_p95_ms": round(float(np.percentile(lat, 95)), 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
