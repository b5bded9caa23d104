"""Soak: the twin graph with 16 robots across a delayed, lossy site link, for a long time.

Two sites on one machine (network namespaces joined by sern's userspace relay, real
packets; 50 ms each way and 2 % loss by default). The robot site runs ``robot_stand_in``
(16 Huskies far apart in a 100 m field, PyBullet or kinematic) and its ``site_link``; the twin site runs
the other ``site_link`` (user/password authenticated), ``twin_bridge`` and ``twin_sim``
(``sim_node`` in twin mode). A driver at the twin site commands every robot along smooth
curves that stay within 8 m of its start (it steers home from the odometry that crosses
the link), so commands cross one way and odometry, scans and goals the other, for the whole
run. Measured:

- ``rss_growth_pct``: the worst sern process's resident memory growth from the end of the
  warm-up (2 minutes, or half a shorter run) to the end (medians of the samples in the
  minute after the warm-up and the last minute, so one allocation burst does not decide it);
  the benchmark's own probes are not counted;
- ``twin_p95_cm_first`` / ``twin_p95_cm_last``: twin position error p95 (twin pose against the
  robot's pose at the twin pose's stamp, ``sim_bridge.twin_eval``) in the first and the last
  fifth of the run;
- ``diagnostics_gaps``: how often a ``/diagnostics`` status that each site publishes every
  second (site links, twin bridge) went silent for more than 3 s, after the warm-up;
- ``node_restarts``: sern processes that died during the run (each is restarted, so the run
  goes on, and counted).

Needs root (network namespaces). The suite does not run it; ``--minutes`` sets the length:

    sudo .venv/bin/python benchmarks/soak.py [--minutes 20] [--robots 16] [--delay-ms 50] [--loss 0.02]
        [--backend pybullet|kinematic]

16 PyBullet Huskies driving at 240 Hz physics take a whole core by themselves (real-time
factor 1.0 on this 2-core machine), so with both sites on one such machine the stand-in
cannot keep real time and the twin error measures the machine; ``--backend kinematic`` runs
the robots and twins on the vectorised engine instead (the same graph, nodes and link).

The robots are hardware with computers of their own; here their stand-in shares two cores with
everything else, and when it slips (simulated time falls behind the clock while its stamps
stay on the clock) every robot freezes for that long, which no real Husky does and which the
twins then mispredict. So the stand-in runs at a higher scheduling priority (``nice -10``,
``--robot-nice``; 0 turns it off), and ``robot_sim_slipped_s`` reports what slip remains.

Ends with one JSON line: {"minutes", "rss_growth_pct", "twin_p95_cm_first",
"twin_p95_cm_last", "diagnostics_gaps", "node_restarts", ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import numpy as np
import yaml

from sim_bridge.processes import stop_processes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SPACING_M = 25.0  # between robots' home positions: curves within HOME_RADIUS_M never meet
HOME_RADIUS_M = 8.0
GAP_S = 3.0  # a 1 Hz diagnostics status silent this long is a gap
RSS_PERIOD_S = 10.0


# ---- the world and the link ------------------------------------------------------------
def soak_world(robots: int, backend: str = "pybullet") -> dict:
    """Huskies on a square grid, SPACING_M apart, in a field with room around them.
    ``kinematic``: the vectorised engine's accelerate-limited Huskies, at a 60 Hz control
    rate (the stand-in's odometry rate must be a whole number of control periods)."""
    side = math.ceil(math.sqrt(robots))
    half = (side - 1) * SPACING_M / 2
    homes = [[-half + SPACING_M * (k % side), -half + SPACING_M * (k // side), 0.0] for k in range(robots)]
    size = 2 * half + 4 * HOME_RADIUS_M
    return {
        "name": "soak_field",
        "description": f"{robots} Huskies {SPACING_M:g} m apart for the soak benchmark",
        "backend": backend,
        "physics_rate_hz": 240,
        "control_rate_hz": 20 if backend == "pybullet" else 60,
        "seed": 0,
        "arena": {"size_m": [size, size]},
        "robots": [{"model": "husky", "count": robots, "spawn": {"poses": homes}}],
        "sensors": {"lidar": {"beams": 36, "fov_deg": 360, "range_max_m": 10.0, "height_m": 0.2}},
        "task": {
            "name": "navigation",
            "params": {
                "goals": {"poses": [[x + 4.0, y] for x, y, _ in homes]},
                "lidar_obs_beams": 36,
                "max_episode_s": 3600,  # the longest a world allows; the soak's robots never finish
            },
        },
    }


def drive_command(
    t: float, index: int, x: float, y: float, yaw: float, home: tuple[float, float]
) -> tuple[float, float]:
    """Smooth speed and turn-rate variations (as twin_monitor's curves), steering back
    towards home when further than HOME_RADIUS_M from it."""
    phase = 1.3 * index
    v = 0.6 + 0.4 * math.sin(0.35 * t + phase)
    w = 0.25 + 0.55 * math.sin(0.5 * t + 2.0 * phase)
    dx, dy = home[0] - x, home[1] - y
    if math.hypot(dx, dy) > HOME_RADIUS_M:
        err = (math.atan2(dy, dx) - yaw + math.pi) % (2 * math.pi) - math.pi
        w = max(-1.0, min(1.0, 1.5 * err))
    return v, w


# ---- probes (run inside a site's namespace: this file with --role) -----------------------
def run_probe(role: str, out: Path, world_file: Path, windows: list[tuple[float, float]]) -> int:
    """``robot``: log odometry (the truth) inside ``windows``; ``twin``: drive the robots,
    log twin poses inside ``windows``. Both log every /diagnostics status's arrival.

    A probe is an instrument, and on a shared machine its CPU is taken from the graph it
    measures: it subscribes to the measured poses only inside the windows and spins the
    events executor the nodes use."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data

    from ros_nodes import conversions as conv
    from ros_nodes.common import DIAGNOSTICS_QOS
    from ros_nodes.runtime import make_executor

    world = yaml.safe_load(world_file.read_text())
    homes = [(p[0], p[1]) for p in world["robots"][0]["spawn"]["poses"]]
    rows = array("d")  # recv, stamp, robot, x, y, yaw, v, w (sim_bridge.twin_eval's columns)
    diag: dict[str, array] = {}
    state: dict[int, tuple[float, float, float]] = {}
    stop = {"now": False}

    rclpy.init()
    node = rclpy.create_node(f"soak_probe_{role}")
    executor = make_executor()
    executor.add_node(node)
    try:
        topic = "odom" if role == "robot" else "twin/odom"

        def on_pose(index: int):
            def callback(msg: Odometry) -> None:
                stamp, x, y, yaw, v, w = conv.odometry_state(msg)
                rows.extend((time.time(), stamp, index, x, y, yaw, v, w))

            return callback

        def on_odom(index: int):
            def callback(msg: Odometry) -> None:
                _, x, y, yaw, _, _ = conv.odometry_state(msg)
                state[index] = (x, y, yaw)

            return callback

        def on_diag(msg: DiagnosticArray) -> None:
            now = time.time()
            for status in msg.status:
                diag.setdefault(status.name, array("d")).append(now)

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, DIAGNOSTICS_QOS)
        if role == "twin":
            pubs = [node.create_publisher(Twist, f"robot_{i}/cmd_vel", 10) for i in range(len(homes))]
            for i in range(len(homes)):
                node.create_subscription(Odometry, f"robot_{i}/odom", on_odom(i), qos_profile_sensor_data)
            t0 = time.time()

            def drive() -> None:
                t = time.time() - t0
                for i, pub in enumerate(pubs):
                    x, y, yaw = state.get(i, (homes[i][0], homes[i][1], 0.0))
                    pub.publish(conv.twist(*drive_command(t, i, x, y, yaw, homes[i])))

            node.create_timer(0.05, drive)
        measuring: list = []

        def follow_windows() -> None:
            now = time.time()
            inside = any(a <= now < b for a, b in windows)
            if inside and not measuring:
                measuring.extend(
                    node.create_subscription(Odometry, f"robot_{i}/{topic}", on_pose(i), qos_profile_sensor_data)
                    for i in range(len(homes))
                )
            elif not inside and measuring:
                for sub in measuring:
                    node.destroy_subscription(sub)
                measuring.clear()

        node.create_timer(0.2, follow_windows)
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
        while not stop["now"]:
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    np.savez(
        out,
        poses=np.frombuffer(rows, dtype=float).reshape(-1, 8),
        diag_names=np.array(list(diag), dtype=object),
        **{f"diag_{k}": np.frombuffer(v, dtype=float) for k, v in enumerate(diag.values())},
    )
    return 0


# ---- the run ----------------------------------------------------------------------------
def rss_kib(pid: int) -> float:
    """Resident set size of a live process (KiB), NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    except OSError:
        pass
    return math.nan


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Process:
    """A node at one site, restarted (and counted) if it dies."""

    def __init__(self, label: str, site: str, cmd: list[str], counted: bool, nice: int = 0):
        self.label, self.site, self.counted = label, site, counted
        self.cmd = ["nice", "-n", str(nice), *cmd] if nice else cmd
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.rss: list[tuple[float, float]] = []  # (time, KiB) of the current incarnation


def node_cmd(name: str, *params: str, rename: str = "") -> list[str]:
    cmd = [sys.executable, str(BIN / name), "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return cmd + (["-r", f"__node:={rename}"] if rename else [])


def run(args, workdir: Path) -> dict:
    from sim_bridge.netem.namespaces import EmulatedLink

    world = workdir / "soak_field.yaml"
    world.write_text(yaml.safe_dump(soak_world(args.robots, args.backend), sort_keys=False))
    (workdir / "accepted").write_text("twin:soak-twin-secret\n")
    (workdir / "robot_pw").write_text("soak-robot-secret\n")
    (workdir / "twin_pw").write_text("soak-twin-secret\n")
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(args.domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "PYTHONUNBUFFERED": "1",
    }
    seconds = args.minutes * 60.0
    settle_s = 15.0  # discovery, the link coming up, the robots under way
    warmup_s = min(120.0, seconds / 2)
    logs = []
    with EmulatedLink({"delay_ms": args.delay_ms, "loss": args.loss}) as link:
        a = link.address["a"]
        endpoints = f"['tcp/{a}:7447', 'udp/{a}:7448']"
        t_start = time.time() + settle_s
        fifth = seconds / 5
        windows = [(t_start, t_start + fifth), (t_start + seconds - fifth, t_start + seconds)]
        win_arg = json.dumps(windows)
        link_common = [f"config:={ROOT / 'config' / 'site_link.yaml'}"]
        procs = [
            Process("robot_stand_in", "a", node_cmd("robot_stand_in", f"world:={world}"), True, nice=args.robot_nice),
            Process(
                "site_link_robot",
                "a",
                node_cmd(
                    "site_link",
                    *link_common,
                    "site:=robot",
                    f"listen:={endpoints}",
                    "user:=robot",
                    f"password_file:={workdir / 'robot_pw'}",
                    f"credentials_file:={workdir / 'accepted'}",
                    rename="site_link_robot",
                ),
                True,
            ),
            Process(
                "site_link_twin",
                "b",
                node_cmd(
                    "site_link",
                    *link_common,
                    "site:=twin",
                    f"connect:={endpoints}",
                    "user:=twin",
                    f"password_file:={workdir / 'twin_pw'}",
                    rename="site_link_twin",
                ),
                True,
            ),
            Process("twin_bridge", "b", node_cmd("twin_bridge", f"world:={world}"), True),
            Process("twin_sim", "b", node_cmd("sim_node", f"world:={world}", "mode:=twin", rename="twin_sim"), True),
        ]
        for role, site in (("robot", "a"), ("twin", "b")):
            cmd = [sys.executable, __file__, "--role", role, "--out", str(workdir / f"probe_{role}.npz")]
            cmd += ["--world-file", str(world), "--windows", win_arg]
            procs.append(Process(f"probe_{role}", site, cmd, False))

        def start(p: Process) -> None:
            log = open(workdir / f"{p.label}.log", "a")  # noqa: SIM115 - closed below
            logs.append(log)
            p.proc = subprocess.Popen(link.run_in(p.site, p.cmd), env=env, stdout=log, stderr=subprocess.STDOUT)
            p.rss = []

        for p in procs:
            start(p)
        try:
            end = t_start + seconds
            report_at = time.time() + 60.0
            while time.time() < end:
                time.sleep(min(RSS_PERIOD_S, max(0.0, end - time.time())))
                now = time.time()
                for p in procs:
                    if p.proc.poll() is not None:
                        if p.proc.returncode == 2:  # a usage error: restarting cannot help
                            raise RuntimeError(f"{p.label} refused its parameters; see {workdir / p.label}.log")
                        print(f"soak: {p.label} ended (code {p.proc.returncode}); restarting it", file=sys.stderr)
                        p.restarts += 1
                        start(p)
                        continue
                    if now >= t_start:
                        p.rss.append((now - t_start, rss_kib(p.proc.pid)))
                if now >= report_at:
                    report_at = now + 60.0
                    done = (now - t_start) / 60.0
                    print(f"soak: {done:.1f} of {args.minutes:g} min", file=sys.stderr)
            stats = link.stats()
            elapsed = time.time() - (t_start - settle_s)  # since the processes started
            cpu_share = {p.label: round(cpu_s(p.proc.pid) / elapsed, 3) for p in procs}
        finally:
            stop_processes([p.proc for p in procs if p.proc], timeout_s=30)
            for log in logs:
                log.close()
    probes = {role: dict(np.load(workdir / f"probe_{role}.npz", allow_pickle=True)) for role in ("robot", "twin")}
    result = analyse(procs, probes, t_start, seconds, warmup_s, windows, stats, args)
    result["cpu_share_by_process"] = cpu_share  # of one core, over the run
    (workdir / "rss.json").write_text(json.dumps({p.label: p.rss for p in procs}))
    result["robot_sim_slipped_s"] = simulated_time_slipped(workdir / "robot_stand_in.log")
    result["silence_stops"] = silence_stops(workdir / "site_link_robot.log")
    return result


def p95_by_period(errors, start: float, end: float, period_s: float = 30.0) -> list[float]:
    """The twin error p95 (cm) of each ``period_s`` of a window: whether a window's figure
    comes from a few bad moments or from all of it."""
    out = []
    for t in np.arange(start, end - period_s / 2, period_s):
        summary = errors.window(t, t + period_s).summary()
        out.append(round(summary["p95_cm"], 2) if summary["samples"] else None)
    return out


def rss_growth_pct(samples: list[tuple[float, float]], warmup_s: float, seconds: float) -> float:
    """Growth from the median RSS of the minute after the warm-up to that of the last minute."""
    t = np.array([s[0] for s in samples])
    kib = np.array([s[1] for s in samples])
    span = min(60.0, (seconds - warmup_s) / 2)
    early = kib[(t >= warmup_s) & (t < warmup_s + span)]
    late = kib[t >= seconds - span]
    if len(early) == 0 or len(late) == 0:
        return math.nan
    return float((np.median(late) - np.median(early)) / np.median(early) * 100.0)


def diagnostics_gaps(probe: dict, after: float) -> dict[str, int]:
    """Per status name: the silences longer than GAP_S after ``after`` (a time)."""
    gaps = {}
    for k, name in enumerate(probe["diag_names"]):
        t = np.sort(probe[f"diag_{k}"])
        t = t[t >= after]
        if len(t) >= 2:
            gaps[str(name)] = int(np.sum(np.diff(t) > GAP_S))
    return gaps


def silence_stops(log: Path) -> int:
    """How often the robot site's link stopped a robot because its commands fell silent
    (``stop_after_silent_s``; its last throttled warning says how many so far)."""
    found = re.findall(r"silence_stops: (\d+) so far", log.read_text(errors="replace"))
    return int(found[-1]) if found else 0


def simulated_time_slipped(log: Path) -> float:
    """Seconds of simulated time the robot site's stand-in let slip because it could not keep
    real time (its own last warning says; 0 when it kept up). A twin error measured while
    the "robots" slip says more of this machine than of the bridge."""
    found = re.findall(r"slipped ([0-9.]+) s behind the clock", log.read_text(errors="replace"))
    return float(found[-1]) if found else 0.0


def analyse(procs, probes, t_start, seconds, warmup_s, windows, stats, args) -> dict:
    from sim_bridge import twin_eval

    growth = {p.label: rss_growth_pct(p.rss, warmup_s, seconds) for p in procs if p.counted}
    rss_mib = {p.label: round(p.rss[-1][1] / 1024, 1) for p in procs if p.counted and p.rss}
    errors = twin_eval.twin_errors(probes["robot"]["poses"], probes["twin"]["poses"])
    first = errors.window(*windows[0]).summary()
    last = errors.window(*windows[1]).summary()
    by_30s = {name: p95_by_period(errors, *w) for name, w in zip(("first", "last"), windows, strict=True)}
    gaps = {}
    for role in ("robot", "twin"):
        gaps.update(diagnostics_gaps(probes[role], t_start + warmup_s))
    watched = {name: n for name, n in gaps.items() if name.startswith(("site_link", "twin_bridge"))}
    finite = [g for g in growth.values() if math.isfinite(g)]
    return {
        "minutes": args.minutes,
        "robots": args.robots,
        "backend": args.backend,
        "link": {"delay_ms": args.delay_ms, "loss": args.loss, "relay": stats},
        "rss_growth_pct": round(max(finite), 2) if finite else None,
        "rss_growth_pct_by_process": {k: round(v, 2) for k, v in growth.items()},
        "rss_mib_at_end": rss_mib,
        "twin_p95_cm_first": round(first.get("p95_cm", math.nan), 3),
        "twin_p95_cm_last": round(last.get("p95_cm", math.nan), 3),
        "twin_samples": [first.get("samples", 0), last.get("samples", 0)],
        "twin_p95_cm_by_30s": by_30s,
        "diagnostics_gaps": int(sum(watched.values())),
        "diagnostics_statuses": len(watched),
        "diagnostics_gaps_by_status": {k: v for k, v in watched.items() if v},
        "node_restarts": int(sum(p.restarts for p in procs if p.counted)),
        "robot_nice": args.robot_nice,
    }


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the run after start-up")
    parser.add_argument("--robots", type=int, default=16)
    parser.add_argument(
        "--backend",
        choices=["pybullet", "kinematic"],
        default="pybullet",
        help="the robots' (and twins') engine; 16 PyBullet Huskies driving need a whole core",
    )
    parser.add_argument("--delay-ms", type=float, default=50.0, help="one-way delay of the link")
    parser.add_argument("--loss", type=float, default=0.02, help="packet loss of the link, each way")
    parser.add_argument(
        "--robot-nice",
        type=int,
        default=-10,
        help="scheduling niceness of the robots' stand-in (the robots have their own computers; 0: none)",
    )
    parser.add_argument("--domain", type=int, default=91, help="ROS_DOMAIN_ID inside the sites")
    parser.add_argument("--keep", type=Path, help="keep logs and raw data in this folder")
    parser.add_argument("--role", choices=["robot", "twin"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--world-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--windows", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        return run_probe(args.role, args.out, args.world_file, [tuple(w) for w in json.loads(args.windows)])
    if args.minutes <= 0 or args.robots < 1 or not 0 <= args.loss < 1 or args.delay_ms < 0:
        parser.error("--minutes and --robots must be positive, --loss in [0, 1), --delay-ms ≥ 0")
    from sim_bridge.netem.namespaces import available

    ok, why = available()
    if not ok:
        print(f"soak: cannot run: {why}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background (SIGINT ignored)
        signal.signal(sig, _interrupted)
    with tempfile.TemporaryDirectory(prefix="sern_soak_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            results = run(args, workdir)
        except KeyboardInterrupt:  # the nodes and probes got the same SIGINT and are stopped
            print("soak: interrupted; no figures", file=sys.stderr)
            return 130
        (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
