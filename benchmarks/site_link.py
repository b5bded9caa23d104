"""The MMCF-adapted site link against a static "plain ROS" configuration, on real packets.

Two sites on one machine (network namespaces joined by sern's userspace relay). The robot
site publishes, for 4 robots, odometry at 30 Hz and a 320×240 camera at 10 Hz; the twin site
publishes cmd_vel at 20 Hz. A ``site_link`` at each site carries them over Zenoh (TCP for
reliable traffic, UDP for best effort). For each link profile the same load runs twice,
one after the other: the adaptive link (MMCF) and the static one (everything reliable and
blocking, raw images at full rate, default priority: what a plain ROS bridge does).

  clean      no delay, no loss, 100 Mbit/s          (budget 90 Mbit/s, profile nominal)
  degraded   50 ms each way, 2 % loss, 5 Mbit/s     (budget 4.5 Mbit/s, profile nominal)
  contested  150 ms each way, 10 % loss, 1 Mbit/s   (budget 0.9 Mbit/s, profile contested)

Control topics are odometry and cmd_vel. Measured: their end-to-end latency (p95, over
every message that arrived), delivery of the messages the link put on the wire (receiver
sequence numbers, from the site link's reports) and the rate each arrives at; camera
frames per second per robot; the bandwidth actually on the wire (relay counters) against
the budget. Needs root.

    sudo .venv/bin/python benchmarks/site_link.py [--seconds 15]

Ends with one JSON line: per profile, {latency_p95_ratio (MMCF ÷ plain), control_delivery,
camera_fps, bandwidth_within_budget}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from sim_bridge.netem.namespaces import EmulatedLink, available
from sim_bridge.processes import stop_processes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONDITIONS = {
    "clean": ({"delay_ms": 0.0, "loss": 0.0, "rate_mbit": 100.0}, 90.0, "nominal"),
    "degraded": ({"delay_ms": 50.0, "loss": 0.02, "rate_mbit": 5.0}, 4.5, "nominal"),
    "contested": ({"delay_ms": 150.0, "loss": 0.10, "rate_mbit": 1.0}, 0.9, "contested"),
}
LINK_CONFIG = {
    "sites": ["robot", "twin"],
    "budget_mbps": 5.0,
    "profile": "nominal",
    "topics": [
        {
            "pattern": "/robot_*/odom",
            "type": "nav_msgs/msg/Odometry",
            "from": "robot",
            "class": "state",
            "min_rate_hz": 10,
        },
        {
            "pattern": "/robot_*/cmd_vel",
            "type": "geometry_msgs/msg/Twist",
            "from": "twin",
            "class": "control",
            "min_rate_hz": 10,
        },
        {"pattern": "/robot_*/camera/image_raw", "type": "sensor_msgs/msg/Image", "from": "robot", "class": "image"},
    ],
}


def run_one(workdir: Path, name: str, adaptive: bool, warmup_s: float, seconds: float, domain: int) -> dict:
    impairment, budget, profile = CONDITIONS[name]
    config = workdir / "site_link.yaml"
    config.write_text(yaml.safe_dump(LINK_CONFIG))
    tag = f"{name}_{'mmcf' if adaptive else 'plain'}"
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        # Camera-sized messages between processes on one site (see the file's comment).
        "FASTDDS_DEFAULT_PROFILES_FILE": str(ROOT / "config" / "fastdds_large_data.xml"),
        "FASTRTPS_DEFAULT_PROFILES_FILE": str(ROOT / "config" / "fastdds_large_data.xml"),
    }
    with EmulatedLink(impairment) as link:
        a = link.address["a"]
        common = [
            f"config:={config}",
            f"adaptive:={str(adaptive).lower()}",
            f"budget_mbps:={budget}",
            f"profile:={profile}",
            # Two namespaces of this host, reachable from nowhere else; plaintext on purpose, so
            # the figures measure the MMCF, not encryption (docs/site_link_security.md).
            "insecure:=true",
        ]
        sites = {
            "a": ["site:=robot", f"listen:=['tcp/{a}:7447', 'udp/{a}:7448']"],
            "b": ["site:=twin", f"connect:=['tcp/{a}:7447', 'udp/{a}:7448']"],
        }
        logs, procs = [], []

        def start(site, cmd, label):
            log = open(workdir / f"{tag}_{label}.log", "w")  # noqa: SIM115 - closed below
            logs.append(log)
            procs.append(subprocess.Popen(link.run_in(site, cmd), env=env, stdout=log, stderr=subprocess.STDOUT))

        for site, extra in sites.items():
            params = []
            for p in common + extra:
                params += ["-p", p]
            start(
                site,
                [sys.executable, str(BIN / "site_link"), "--ros-args", *params, "-r", f"__node:=site_link_{site}"],
                f"link_{site}",
            )
        traffic = ROOT / "benchmarks" / "link_traffic.py"
        start("a", [sys.executable, str(traffic), "robot", str(workdir / f"{tag}_robot.npz")], "traffic_robot")
        start("b", [sys.executable, str(traffic), "twin", str(workdir / f"{tag}_twin.npz")], "traffic_twin")
        try:
            time.sleep(warmup_s)
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a process ended early in {tag}; see {workdir}")
            status_before = diagnostics(link, env)
            before = link.stats()
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            after = link.stats()
            status = diagnostics(link, env)
        finally:
            stop_processes(procs)
            for log in logs:
                log.close()
    robot = dict(np.load(workdir / f"{tag}_robot.npz"))
    twin = dict(np.load(workdir / f"{tag}_twin.npz"))
    return analyse(robot, twin, before, after, t0, t1, budget, status_before, status)


def diagnostics(link: EmulatedLink, env: dict) -> str:
    """What `sern link status` says at both sites (kept for the record)."""
    text = []
    for site in ("a", "b"):
        out = subprocess.run(
            link.run_in(site, [str(BIN / "sern"), "link", "status", "--once", "--wait", "5"]),
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        text.append(out.stdout)
    return "\n".join(text)


def analyse(robot, twin, before, after, t0, t1, budget_mbps, status_before: str, status: str) -> dict:
    span = t1 - t0
    odom = twin["odom"]  # (recv, robot, stamp)
    odom = odom[(odom[:, 0] >= t0) & (odom[:, 0] < t1)] if len(odom) else odom
    odom_lat = (odom[:, 0] - odom[:, 2]) * 1000.0 if len(odom) else np.zeros(0)
    sent = twin["cmd_sent"]
    got = robot["cmd"]
    sent_at = {(int(r), int(s)): t for t, r, s in sent}
    cmd_lat = []
    for t, r, s in got:
        if t0 <= t < t1 and (int(r), int(s)) in sent_at:
            cmd_lat.append((t - sent_at[(int(r), int(s))]) * 1000.0)
    cmd_lat = np.array(cmd_lat)
    control = np.concatenate([odom_lat, cmd_lat])
    cam = twin["camera"]
    cam = cam[(cam[:, 0] >= t0) & (cam[:, 0] < t1)] if len(cam) else cam
    wire_bits = 8 * sum(after[d]["bytes_out"] - before[d]["bytes_out"] for d in ("a_to_b", "b_to_a"))
    per_direction = max(8 * (after[d]["bytes_out"] - before[d]["bytes_out"]) / span / 1e6 for d in ("a_to_b", "b_to_a"))
    delivered = link_delivery(status_before, status)
    odom_published = robot["odom_sent"]
    odom_published = odom_published[(odom_published[:, 0] >= t0) & (odom_published[:, 0] < t1)]
    cmd_published = sent[(sent[:, 0] >= t0) & (sent[:, 0] < t1)]
    e2e = (len(odom) + len(cmd_lat)) / max(len(odom_published) + len(cmd_published), 1)
    return {
        "control_latency_ms_p50": float(np.percentile(control, 50)) if len(control) else float("inf"),
        "control_latency_ms_p95": float(np.percentile(control, 95)) if len(control) else float("inf"),
        "odom_rate_hz": len(odom) / span / 4,
        "cmd_rate_hz": len(cmd_lat) / span / 4,
        "control_delivery": delivered,
        "control_e2e_delivery": e2e,
        "camera_fps": len(cam) / span / 4,
        "camera_width": float(np.median(cam[:, 3])) if len(cam) else 0.0,
        "wire_mbps": wire_bits / span / 1e6,
        "busiest_direction_mbps": per_direction,
        "bandwidth_within_budget": per_direction <= budget_mbps,
        "status": status,
    }


def _counts(status: str) -> dict[str, tuple[int, int]]:
    """(received, expected) per control topic from `sern link status` text."""
    out, topic = {}, None
    for line in status.splitlines():
        words = line.split()
        if words and words[0].startswith("/"):
            topic = words[0]
        elif topic and "delivered" in line and "(" in line:
            frac = line.split("delivered ")[1].split("(")[1].split(")")[0]
            try:
                received, expected = (int(float(x)) for x in frac.split("/"))
            except ValueError:
                continue
            if topic.endswith(("/odom", "/cmd_vel")):
                out[topic] = (received, expected)
    return out


def link_delivery(before: str, after: str) -> float | None:
    """Delivery of control messages put on the link during the window (receiver sequence
    numbers, from both site links' reports)."""
    a, b = _counts(before), _counts(after)
    received = sum(b[t][0] - a.get(t, (0, 0))[0] for t in b)
    expected = sum(b[t][1] - a.get(t, (0, 0))[1] for t in b)
    return received / expected if expected > 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per run (default 15)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (default 10)")
    parser.add_argument("--keep", type=Path, help="keep logs in this folder")
    parser.add_argument("--only", choices=list(CONDITIONS), action="append", help="run only these profiles")
    args = parser.parse_args()
    ok, why = available()
    if not ok:
        print(f"site_link: cannot run: {why}", file=sys.stderr)
        return 2
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="sern_site_link_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(args.only or CONDITIONS):
            results[name] = {
                "mmcf": run_one(workdir, name, True, args.warmup, args.seconds, 60 + 2 * i),
                "plain": run_one(workdir, name, False, args.warmup, args.seconds, 61 + 2 * i),
            }
        (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    summary = {}
    print(
        f"{'profile':10} {'':6} {'ctl p50 ms':>10} {'ctl p95 ms':>10} {'odom Hz':>8} {'cmd Hz':>7} {'delivery':>9} "
        f"{'e2e':>6} {'cam fps':>8} {'cam px':>7} {'wire Mbit/s':>12}"
    )
    for name, r in results.items():
        for kind in ("mmcf", "plain"):
            x = r[kind]
            d = "-" if x["control_delivery"] is None else f"{x['control_delivery']:.3f}"
            print(
                f"{name:10} {kind:6} {x['control_latency_ms_p50']:>10.1f} {x['control_latency_ms_p95']:>10.1f} "
                f"{x['odom_rate_hz']:>8.1f} {x['cmd_rate_hz']:>7.1f} {d:>9} {x['control_e2e_delivery']:>6.3f} {x['camera_fps']:>8.2f} "
                f"{x['camera_width']:>7.0f} {x['busiest_direction_mbps']:>12.2f}"
            )
        m, p = r["mmcf"], r["plain"]
        summary[name] = {
            "latency_p95_ratio": round(m["control_latency_ms_p95"] / p["control_latency_ms_p95"], 4)
            if p["control_latency_ms_p95"] not in (0, float("inf"))
            else 0.0,
            "control_delivery": None if m["control_delivery"] is None else round(m["control_delivery"], 4),
            "control_e2e_delivery": round(m["control_e2e_delivery"], 4),
            "camera_fps": round(m["camera_fps"], 2),
            "bandwidth_within_budget": bool(m["bandwidth_within_budget"]),
        }
    print("(ctl: odometry and cmd_vel end to end; delivery: of the control messages the link sent (receiver sequence")
    print(" numbers); e2e: of those published, decimation included; the plain link's p95 is over what arrived at all)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
