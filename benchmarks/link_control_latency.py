"""Does camera traffic slow the site link's control traffic? Control latency with and
without 4 cameras crossing, in one run.

Two sites on this machine (two ROS domains, their ``site_link``s joined over loopback
TCP, the checkout's ``config/site_link.yaml``: 5 Mbit/s budget, so the cameras are JPEG-
encoded). The robot site publishes, for 4 robots, odometry at 30 Hz and — in the second
phase only — a 320×240 camera at 10 Hz; the twin site publishes cmd_vel at 20 Hz
(``benchmarks/link_traffic.py``). Control latency is end to end, publisher to subscriber,
over every odometry and cmd_vel message that arrived in the measured window. Each phase
starts every process afresh; ``--rounds`` alternates the phases to spread out the
machine's other load.

    .venv/bin/python benchmarks/link_control_latency.py [--seconds 20] [--rounds 1]
    .venv/bin/python benchmarks/link_control_latency.py --site-link-repo /path/to/other/checkout

``--site-link-repo`` runs the site links from another checkout (e.g. an older version, to
compare); the traffic and the measurement stay this checkout's.

Ends with one JSON line: {control_p95_ms_without_cameras, control_p95_ms_with_cameras,
added_p95_ms (with − without), within_5ms, cmd_p95_ms_*, odom_p95_ms_*, camera_fps,
control_delivered_* (of the control messages published, the fraction that arrived)}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sim_bridge.processes import stop_processes

ROOT = Path(__file__).resolve().parents[1]
TRAFFIC = ROOT / "benchmarks" / "link_traffic.py"
DOMAINS = (int(os.environ.get("SERN_BENCH_DOMAIN", "230")), int(os.environ.get("SERN_BENCH_DOMAIN", "230")) + 1)
SITE_LINK = "import sys; from ros_nodes.site_link import main; sys.argv[0] = 'site_link'; main()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_phase(workdir: Path, tag: str, cameras: int, warmup_s: float, seconds: float, repo: Path, frames: Path) -> dict:
    port = _free_port()
    endpoint = f"['tcp/127.0.0.1:{port}']"
    procs, logs = [], []

    def start(domain: int, cmd: list[str], label: str, pythonpath: Path = ROOT) -> None:
        env = {
            **os.environ,
            "ROS_DOMAIN_ID": str(domain),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "PYTHONPATH": str(pythonpath),
            # Camera-sized messages between processes on one site.
            "FASTDDS_DEFAULT_PROFILES_FILE": str(ROOT / "config" / "fastdds_large_data.xml"),
        }
        log = open(workdir / f"{tag}_{label}.log", "w")  # noqa: SIM115 - closed below
        logs.append(log)
        procs.append(subprocess.Popen(cmd, env=env, cwd=repo, stdout=log, stderr=subprocess.STDOUT))

    for site, domain, where in (("robot", DOMAINS[0], "listen"), ("twin", DOMAINS[1], "connect")):
        params = [f"site:={site}", f"config:={repo / 'config' / 'site_link.yaml'}", f"{where}:={endpoint}"]
        args = [arg for p in params for arg in ("-p", p)]
        start(domain, [sys.executable, "-c", SITE_LINK, "--ros-args", *args], f"link_{site}", repo)
    robot_log, twin_log = workdir / f"{tag}_robot.npz", workdir / f"{tag}_twin.npz"
    robot_side = [
        sys.executable,
        str(TRAFFIC),
        "robot",
        str(robot_log),
        "--cameras",
        str(cameras),
        "--frames",
        str(frames),
    ]
    start(DOMAINS[0], robot_side, "robot")
    start(DOMAINS[1], [sys.executable, str(TRAFFIC), "twin", str(twin_log)], "twin")
    try:
        # Start-up takes seconds on a loaded machine: the warm-up counts from the traffic's start.
        deadline = time.monotonic() + 180
        while not all("ready" in (workdir / f"{tag}_{side}.log").read_text() for side in ("robot", "twin")):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the traffic did not start in {tag}; see the logs in {workdir}")
            time.sleep(0.2)
        time.sleep(warmup_s)
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a process ended early in {tag}; see the logs in {workdir}")
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
    finally:
        stop_processes(procs)
        for log in logs:
            log.close()
    result = latencies(dict(np.load(robot_log)), dict(np.load(twin_log)), t0, t1)
    if not result["odom_ms"] or not result["cmd_ms"]:
        raise RuntimeError(f"no control traffic crossed in {tag}; see the logs in {workdir}")
    return result


def latencies(robot: dict, twin: dict, t0: float, t1: float) -> dict:
    """Per message, ms from publishing to arrival, within [t0, t1)."""
    odom = twin["odom"]  # (arrival, robot, stamp = publish time)
    odom = odom[(odom[:, 0] >= t0) & (odom[:, 0] < t1)] if len(odom) else odom.reshape(0, 3)
    sent = {(int(r), int(s)): t for t, r, s in twin["cmd_sent"]}
    cmd = [
        (t - sent[(int(r), int(s))]) * 1000.0 for t, r, s in robot["cmd"] if t0 <= t < t1 and (int(r), int(s)) in sent
    ]
    cam = twin["camera"]
    frames = int(np.sum((cam[:, 0] >= t0) & (cam[:, 0] < t1))) if len(cam) else 0
    # Delivery: of the control messages published in the window (less its last second,
    # still in flight), how many arrived at all (a link that drops them looks fast).
    end = t1 - 1.0
    odom_sent = robot["odom_sent"]
    odom_sent = odom_sent[(odom_sent[:, 0] >= t0) & (odom_sent[:, 0] < end)]
    odom_got = set(np.round(twin["odom"][:, 2], 6)) if len(twin["odom"]) else set()
    cmd_window = {k for k, t in sent.items() if t0 <= t < end}
    cmd_got = {(int(r), int(s)) for _, r, s in robot["cmd"]}
    published = len(odom_sent) + len(cmd_window)
    arrived = sum(round(t, 6) in odom_got for t in odom_sent[:, 0]) + len(cmd_window & cmd_got)
    return {
        "odom_ms": ((odom[:, 0] - odom[:, 2]) * 1000.0).tolist(),
        "cmd_ms": cmd,
        "camera_fps": frames / (t1 - t0) / 4,
        "published": published,
        "arrived": arrived,
        "window": [t0, t1],
    }


def p95(values) -> float:
    return float(np.percentile(values, 95)) if len(values) else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (default 20)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two phases this many times")
    parser.add_argument("--site-link-repo", type=Path, default=ROOT, help="run the site links from this checkout")
    parser.add_argument("--keep", type=Path, help="keep the logs in this folder")
    args = parser.parse_args()
    repo = args.site_link_repo.resolve()
    if not (repo / "ros_nodes" / "site_link.py").is_file():
        print(f"link_control_latency: {repo} has no ros_nodes/site_link.py", file=sys.stderr)
        return 2
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="sern_link_latency_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(TRAFFIC.parent))
        from link_traffic import camera_frames

        frames = workdir / "frames.npy"
        np.save(frames, np.stack(camera_frames()))  # rendered once, not at every start
        for r in range(args.rounds):
            for phase, cameras in (("without", 0), ("with", 4)):
                runs[phase].append(run_phase(workdir, f"{phase}_{r}", cameras, args.warmup, args.seconds, repo, frames))
    if args.keep:
        (args.keep / "runs.json").write_text(json.dumps(runs))
    merged = {
        phase: {k: [x for run in rs for x in run[k]] for k in ("odom_ms", "cmd_ms")} for phase, rs in runs.items()
    }
    summary = {}
    print(f"site links from {repo}")
    print(f"{'cameras':8} {'control p50':>12} {'control p95':>12} {'cmd p95':>9} {'odom p95':>9} {'messages':>9}")
    for phase, m in merged.items():
        control = m["odom_ms"] + m["cmd_ms"]
        summary[f"control_p95_ms_{phase}_cameras"] = round(p95(control), 3)
        summary[f"cmd_p95_ms_{phase}_cameras"] = round(p95(m["cmd_ms"]), 3)
        summary[f"odom_p95_ms_{phase}_cameras"] = round(p95(m["odom_ms"]), 3)
        p50 = float(np.percentile(control, 50)) if control else float("inf")
        print(
            f"{'4' if phase == 'with' else 'none':8} {p50:>12.2f} {p95(control):>12.2f} "
            f"{p95(m['cmd_ms']):>9.2f} {p95(m['odom_ms']):>9.2f} {len(control):>9}"
        )
    added = summary["control_p95_ms_with_cameras"] - summary["control_p95_ms_without_cameras"]
    summary["added_p95_ms"] = round(added, 3)
    summary["within_5ms"] = bool(added <= 5.0)
    summary["camera_fps"] = round(float(np.mean([run["camera_fps"] for run in runs["with"]])), 2)
    for phase, rs in runs.items():
        delivered = sum(r["arrived"] for r in rs) / max(1, sum(r["published"] for r in rs))
        summary[f"control_delivered_{phase}_cameras"] = round(delivered, 4)
    print("(control: odometry robot→twin and cmd_vel twin→robot, end to end; cameras: 4 × 320×240 at 10 Hz)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
