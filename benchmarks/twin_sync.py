"""Twin synchronisation over a clean and an impaired link, against naive sync, in one run.

Two sites on one machine (network namespaces joined by sern's userspace link relay, real
UDP packets): site A runs the robot stand-in (4 Huskies in worlds/open_field.yaml, with
tyre, mass, motor-lag and slip differences from the twin model) and logs the robots'
odometry where it is produced (the truth); site B runs two twin bridges side by side, the
predictor–corrector (twin/odom) and naive sync (twin set to the last pose received,
twin_naive/odom), and a monitor that drives every robot along curved paths (0.2–1 m/s)
and logs both twins. Timeline:

  clean link ........................ CLEAN_S
  100 ms ± 20 ms each way, 5 % loss . IMPAIRED_S, with a 3 s outage in the middle

Errors are twin pose vs the robot's pose at the twin pose's stamp. Recovery is the time
after the outage until every twin stays under 2 cm. The odom→twin latency is measured at
site B on the clean link. Needs root (network namespaces).

    sudo .venv/bin/python benchmarks/twin_sync.py [--clean-s 25] [--impaired-s 40]

Ends with one JSON line: {"clean_p95_cm", "clean_yaw_p95_deg", "impaired_p95_cm",
"impaired_max_cm", "impaired_yaw_p95_deg", "recovery_s", "naive_p95_cm",
"odom_to_twin_ms_median"}.
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

from sim_bridge import twin_eval
from sim_bridge.netem.namespaces import EmulatedLink, available
from sim_bridge.processes import stop_processes

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "worlds" / "open_field.yaml"
BIN = Path(sys.executable).parent
IMPAIRED = {"delay_ms": 100.0, "jitter_ms": 20.0, "loss": 0.05}
OUTAGE_S = 3.0


def node(name: str, *params: str) -> list[str]:
    cmd = [sys.executable, str(BIN / name), "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return cmd


def run_experiment(workdir: Path, clean_s: float, impaired_s: float, domain: int = 77) -> dict:
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET",
        "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4",
        "PYTHONUNBUFFERED": "1",
    }
    truth_file, twin_file = workdir / "truth.npz", workdir / "twins.npz"
    marks: dict[str, float] = {}
    logs = []
    with EmulatedLink() as link:
        procs = []

        def start(site, cmd, label):
            log = open(workdir / f"{label}.log", "w")  # noqa: SIM115 - closed below
            logs.append(log)
            procs.append(subprocess.Popen(link.run_in(site, cmd), env=env, stdout=log, stderr=subprocess.STDOUT))

        start("a", node("robot_stand_in", f"world:={WORLD}", "scan_rate_hz:=0.0"), "stand_in")
        start("a", node("twin_monitor", f"world:={WORLD}", f"output:={truth_file}"), "truth")
        start("b", node("twin_bridge", f"world:={WORLD}", "method:=predictive"), "bridge")
        start(
            "b",
            node("twin_bridge", f"world:={WORLD}", "method:=naive", "output:=twin_naive/odom")
            + ["-r", "__node:=twin_bridge_naive"],
            "bridge_naive",
        )
        start(
            "b",
            node(
                "twin_monitor",
                f"world:={WORLD}",
                f"output:={twin_file}",
                "drive:=curves",
                "twin_topics:=[twin/odom, twin_naive/odom]",
            ),
            "twins",
        )
        try:
            time.sleep(6.0)  # discovery, and the robots getting under way
            dead = [p.args for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a process ended early ({dead[0][-6:]}); see the logs in {workdir}")
            marks["clean_start"] = time.time()
            time.sleep(clean_s)
            marks["clean_end"] = time.time()
            link.set(**IMPAIRED)
            time.sleep(2.0)
            marks["impaired_start"] = time.time()
            time.sleep(impaired_s / 2)
            link.set(down=True)
            marks["outage_start"] = time.time()
            time.sleep(OUTAGE_S)
            link.set(down=False)
            marks["outage_end"] = time.time()
            time.sleep(impaired_s / 2)
            marks["impaired_end"] = time.time()
            marks["link_stats"] = link.stats()
        finally:
            stop_processes(procs, timeout_s=15)
            for log in logs:
                log.close()
    for f in (truth_file, twin_file):
        if not f.exists():
            raise RuntimeError(f"{f.name} was not written; see the logs in {workdir}")
    return {"truth": dict(np.load(truth_file)), "twins": dict(np.load(twin_file)), "marks": marks}


def measure_latency(samples: int = 600, domain: int = 78) -> np.ndarray:
    """Odom → twin latency on one host, end to end: this process publishes robot_0's
    odometry (a new position each time, robot at rest) and times how long until the twin
    bridge's twin/odom shows that position. Returns milliseconds per message."""
    import rclpy
    from nav_msgs.msg import Odometry

    from ros_nodes import conversions as conv
    from ros_nodes.common import STATE_QOS

    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    bridge = subprocess.Popen(
        node("twin_bridge", f"world:={WORLD}", "only_robots:=[robot_0]"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    probe = rclpy.create_node("latency_probe", context=ctx)
    pub = probe.create_publisher(Odometry, "robot_0/odom", STATE_QOS)
    seen: dict[int, float] = {}

    def on_twin(msg: Odometry) -> None:
        k = round(msg.pose.pose.position.x * 1000.0)
        seen.setdefault(k, time.perf_counter())

    probe.create_subscription(Odometry, "robot_0/twin/odom", on_twin, STATE_QOS)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(probe)
    sent: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 20.0
        while probe.count_subscribers("robot_0/odom") == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for k in range(1, samples + 1):
            sent[k] = time.perf_counter()
            pub.publish(conv.odometry(time.time(), "robot_0", k / 1000.0, 0.0, 0.0, 0.0, 0.0, 0.0))
            end = time.perf_counter() + 1.0 / 60
            while time.perf_counter() < end:
                executor.spin_once(timeout_sec=max(0.0, end - time.perf_counter()))
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=ctx)
        bridge.send_signal(2)
        bridge.wait(timeout=10)
    return np.array([(seen[k] - sent[k]) * 1000.0 for k in sent if k in seen and k > 10])


def analyse(data: dict) -> dict:
    truth = data["truth"]["odom"]
    twins = data["twins"]
    m = data["marks"]
    out: dict = {}
    for key, label in (("twin_odom", "predictive"), ("twin_naive_odom", "naive")):
        errors = twin_eval.twin_errors(truth, twins[key])
        # After the outage, give the link time to bring measurements back before the
        # "impaired" figures resume; recovery is judged separately.
        impaired = np.concatenate(
            [
                np.flatnonzero((errors.t >= m["impaired_start"]) & (errors.t < m["outage_start"])),
                np.flatnonzero((errors.t >= m["outage_end"] + 2.0) & (errors.t < m["impaired_end"])),
            ]
        )
        imp = twin_eval.TwinErrors(
            errors.t[impaired], errors.robot[impaired], errors.position_m[impaired], errors.yaw_deg[impaired]
        )
        out[label] = {
            "clean": errors.window(m["clean_start"], m["clean_end"]).summary(),
            "impaired": imp.summary(),
            "outage": errors.window(m["outage_start"], m["outage_end"]).summary(),
            "recovery_s": twin_eval.recovery_time(errors, m["outage_end"]),
        }
    odom_b = twins["odom"]
    clean_odom = odom_b[(odom_b[:, twin_eval.RECV] >= m["clean_start"]) & (odom_b[:, twin_eval.RECV] < m["clean_end"])]
    under_load = twin_eval.reaction_latency_ms(clean_odom, twins["twin_odom"])
    out["odom_to_twin_under_load_ms"] = {
        "median": float(np.median(under_load)),
        "p95": float(np.percentile(under_load, 95)),
    }
    latency = data["latency_ms"]
    out["odom_to_twin_ms"] = {
        "samples": len(latency),
        "median": float(np.median(latency)) if len(latency) else float("nan"),
        "p95": float(np.percentile(latency, 95)) if len(latency) else float("nan"),
    }
    # What the link did: one-way delay of odometry measured at site B.
    imp_odom = odom_b[
        (odom_b[:, twin_eval.RECV] >= m["impaired_start"]) & (odom_b[:, twin_eval.RECV] < m["outage_start"])
    ]
    out["link"] = {
        "clean_delay_ms_median": float(np.median(clean_odom[:, 0] - clean_odom[:, 1]) * 1000),
        "impaired_delay_ms_median": float(np.median(imp_odom[:, 0] - imp_odom[:, 1]) * 1000),
        "relay": m.get("link_stats"),
    }
    return out


def report(r: dict) -> dict:
    p, n = r["predictive"], r["naive"]
    print(f"{'':24} {'predictive':>12} {'naive':>12} {'naive/pred':>11}")
    for phase in ("clean", "impaired"):
        for stat, unit in (("p95_cm", "cm"), ("max_cm", "cm"), ("yaw_p95_deg", "deg")):
            a, b = p[phase][stat], n[phase][stat]
            print(
                f"{phase + ' ' + stat:24} {a:>10.2f} {unit:>1} {b:>10.2f} {unit:>1} {b / a if a else float('inf'):>10.1f}x"
            )
    print(f"{'outage max_cm':24} {p['outage']['max_cm']:>12.2f} {n['outage']['max_cm']:>12.2f}")
    print(f"{'recovery_s (< 2 cm)':24} {p['recovery_s']:>12.2f} {n['recovery_s']:>12.2f}")
    lat = r["odom_to_twin_ms"]
    print(f"odom → twin update: median {lat['median']:.2f} ms, p95 {lat['p95']:.2f} ms ({lat['samples']} messages)")
    busy = r["odom_to_twin_under_load_ms"]
    print(f"  (during the run above, 8 processes on 2 cores: median {busy['median']:.2f} ms, p95 {busy['p95']:.2f} ms)")
    link = r["link"]
    print(
        f"link: clean delay {link['clean_delay_ms_median']:.1f} ms, impaired delay {link['impaired_delay_ms_median']:.1f} ms "
        f"(median one-way, odometry stamp to receipt)"
    )
    return {
        "clean_p95_cm": round(p["clean"]["p95_cm"], 3),
        "clean_yaw_p95_deg": round(p["clean"]["yaw_p95_deg"], 3),
        "impaired_p95_cm": round(p["impaired"]["p95_cm"], 3),
        "impaired_max_cm": round(p["impaired"]["max_cm"], 3),
        "impaired_yaw_p95_deg": round(p["impaired"]["yaw_p95_deg"], 3),
        "recovery_s": round(p["recovery_s"], 3),
        "naive_p95_cm": round(n["impaired"]["p95_cm"], 3),
        "odom_to_twin_ms_median": round(lat["median"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean-s", type=float, default=25.0, help="seconds measured on the clean link")
    parser.add_argument("--impaired-s", type=float, default=40.0, help="seconds measured on the impaired link")
    parser.add_argument("--keep", type=Path, help="keep logs and raw data in this folder")
    args = parser.parse_args()
    ok, why = available()
    if not ok:
        print(f"twin_sync: cannot run: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sern_twin_sync_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data = run_experiment(workdir, args.clean_s, args.impaired_s)
        data["latency_ms"] = measure_latency()
        results = analyse(data)
        (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(report(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
