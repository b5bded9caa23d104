"""``sern demo``: the twin demo, headless. Stand-in robots, their twins, the twin bridge and
the policy on a world (launch/twin_launch.yaml), for about a minute: until every robot
reaches its goal or ``--seconds`` pass. Then it prints the twins' sync error (median, p95,
max), the link delay and the task's metrics, and writes ``metrics.json``, a plot of
physical vs twin trajectories and one of the sync error over time.

With ``--delay-ms/--jitter-ms/--loss`` (root only) the robots and the twins live on two
emulated sites joined by that link (network namespaces, real packets).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sern.errors import UsageError
from worlds import WorldFileError, load_world


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the twin demo headless (robots, twins, bridge, policy) and report sync and task metrics",
        description=__doc__.split("\n\n")[0].replace("``", "'"),
        epilog="Example:  sern demo --seconds 60 --out runs/twin    (root: add --delay-ms 100 --jitter-ms 20 --loss 0.05)",
    )
    p.add_argument("--world", default="navigation", help="world file or shipped world (default navigation)")
    p.add_argument("--seconds", type=float, default=60.0, help="longest run, in seconds (default 60)")
    p.add_argument("--seed", type=int, default=0, help="episode seed (starts, goals)")
    p.add_argument("--out", type=Path, default=Path("runs/twin_demo"), help="output folder (default runs/twin_demo)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="one-way link delay between robots and twins (root)")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="± uniform jitter on that delay (root)")
    p.add_argument("--loss", type=float, default=0.0, help="packet loss fraction each way (root)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        world = load_world(args.world)
    except WorldFileError as err:
        raise UsageError(str(err)) from None
    if args.seconds <= 0:
        raise UsageError("--seconds must be > 0")
    impaired = args.delay_ms > 0 or args.jitter_ms > 0 or args.loss > 0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "graph.log"
    data_path = (out / "poses.npz").resolve()
    if data_path.exists():
        data_path.unlink()
    world_arg = str(Path(world.source).resolve()) if Path(world.source).exists() else args.world
    domain = int(os.environ.get("ROS_DOMAIN_ID") or random.randint(100, 199))
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    bindir = Path(sys.executable).parent
    launch = [str(bindir / "sern"), "launch", "twin_launch.yaml", f"world:={world_arg}", f"seed:={args.seed}"]
    monitor = [
        str(bindir / "twin_monitor"),
        "--ros-args",
        "-p",
        f"world:={world_arg}",
        "-p",
        f"output:={data_path}",
        "-p",
        "twin_topics:=[twin/odom]",
    ]
    print(
        f"twin demo: {world.name}, {world.num_robots} robots, up to {args.seconds:g} s; log in {log_path}", flush=True
    )
    link = None
    if impaired:
        from sim_bridge.netem.namespaces import EmulatedLink, LinkError, available

        ok, why = available()
        if not ok:
            raise UsageError(f"--delay-ms/--jitter-ms/--loss emulate a link and {why}")
        try:
            link = EmulatedLink({"delay_ms": args.delay_ms, "jitter_ms": args.jitter_ms, "loss": args.loss}).up()
        except LinkError as err:
            raise UsageError(str(err)) from None
        env.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"})
        commands = [link.run_in("a", [*launch, "site:=robot"]), link.run_in("b", [*launch, "site:=twin"])]
        monitor = link.run_in("b", monitor)
        print(f"link: {args.delay_ms:g} ± {args.jitter_ms:g} ms each way, {args.loss:.0%} loss", flush=True)
    else:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        commands = [launch]
    arrived: set[str] = set()
    failed: list[str] = []
    with open(log_path, "w") as log:
        procs = [_start(cmd, env, log, arrived, failed) for cmd in commands]
        mon = subprocess.Popen(monitor, env=env, stdout=log, stderr=subprocess.STDOUT)
        start = time.monotonic()
        all_done_at = None
        try:
            while time.monotonic() - start < args.seconds + 5.0:  # + start-up
                time.sleep(0.5)
                if failed:
                    break
                if len(arrived) >= world.num_robots:
                    all_done_at = all_done_at or time.monotonic()
                    if time.monotonic() - all_done_at > 2.0:
                        break
                elapsed = time.monotonic() - start
                if int(elapsed * 2) % 10 == 0:
                    print(f"  {elapsed:5.1f} s: {len(arrived)}/{world.num_robots} robots at their goals", flush=True)
        except KeyboardInterrupt:
            print("interrupted: stopping and reporting what ran", flush=True)
        finally:
            mon.send_signal(signal.SIGINT)
            for p, _ in procs:
                p.send_signal(signal.SIGINT)
            _wait(mon)
            for p, reader in procs:
                _wait(p)
                reader.join(timeout=5)
            if link is not None:
                link.down()
    if failed:
        print(f"the graph failed: {failed[0]} (see {log_path})", file=sys.stderr)
        return 1
    if not data_path.exists():
        print(f"no poses were recorded (see {log_path})", file=sys.stderr)
        return 1
    report = analyse(world, dict(np.load(data_path)), out)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"wrote {out / 'metrics.json'}, {out / 'twin_trajectories.png'}, {out / 'twin_error.png'}")
    return 0


def _start(cmd, env, log, arrived, failed):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def pump():
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if "reached its goal" in line:
                arrived.add(line.split("]: ")[-1].split(":")[0])
            if "process has died" in line:
                failed.append(line.strip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return proc, reader


def _wait(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def analyse(world, data: dict, out: Path) -> dict:
    from sern.plots import plot_twin_error, plot_twin_trajectories
    from sim_bridge import twin_eval
    from worlds import make_task
    from worlds.geometry import OccupancyGrid

    odom, twin, goals = data["odom"], data["twin_odom"], data["goals"]
    errors = twin_eval.twin_errors(odom, twin)
    sync = errors.summary()
    delay_ms = float(np.median(odom[:, 0] - odom[:, 1]) * 1000.0) if len(odom) else float("nan")
    task = make_task(world)
    tol = float(getattr(task.params, "goal_tolerance_m", 0.5))
    grid = OccupancyGrid(
        world.arena, world.obstacles, inflate_m=min(r.model.width_m for r in world.robot_entries()) / 2
    )
    t0 = odom[:, 1].min() if len(odom) else 0.0
    robots = []
    for r in world.robot_entries():
        rows = odom[odom[:, 2] == r.index]
        rows = rows[np.argsort(rows[:, 1])]
        if len(rows) < 2 or np.isnan(goals[r.index]).any():
            robots.append({"robot": r.name, "success": False})
            continue
        xy = rows[:, 3:5]
        dist = np.linalg.norm(xy - goals[r.index], axis=1)
        reached = np.flatnonzero(dist <= tol)
        end = reached[0] + 1 if len(reached) else len(xy)
        path = float(np.sum(np.linalg.norm(np.diff(xy[:end], axis=0), axis=1)))
        shortest = grid.path_length(xy[0], goals[r.index])
        success = bool(len(reached))
        robots.append(
            {
                "robot": r.name,
                "success": success,
                "time_to_goal_s": round(float(rows[reached[0], 1] - t0), 2) if success else None,
                "path_length_m": round(path, 3),
                "shortest_path_m": round(float(shortest), 3),
                "spl": round(shortest / max(path, shortest), 4) if success else 0.0,
            }
        )
    plot_twin_trajectories(world, odom, twin, goals, out / "twin_trajectories.png")
    plot_twin_error(errors, out / "twin_error.png")
    ttg = [r["time_to_goal_s"] for r in robots if r.get("time_to_goal_s") is not None]
    return {
        "world": world.name,
        "sync": sync,
        "link_delay_ms_median": round(delay_ms, 2),
        "success_rate": float(np.mean([r["success"] for r in robots])),
        "spl": float(np.mean([r.get("spl", 0.0) for r in robots])),
        "time_to_goal_s": float(np.mean(ttg)) if ttg else None,
        "robots": robots,
    }


def print_report(r: dict) -> None:
    s = r["sync"]
    if s.get("samples"):
        print(
            f"twin sync error: median {s['median_cm']:.2f} cm, p95 {s['p95_cm']:.2f} cm, max {s['max_cm']:.2f} cm; "
            f"yaw p95 {s['yaw_p95_deg']:.2f}° ({s['samples']} twin poses)"
        )
    print(f"link delay (odometry stamp → twin site): median {r['link_delay_ms_median']:.1f} ms")
    print(
        f"task: success {r['success_rate']:.0%}, SPL {r['spl']:.2f}"
        + (f", mean time to goal {r['time_to_goal_s']:.1f} s" if r["time_to_goal_s"] else "")
    )
    for robot in r["robots"]:
        status = "reached its goal" if robot["success"] else "did not reach its goal"
        extra = f" in {robot['time_to_goal_s']} s, path {robot['path_length_m']} m" if robot["success"] else ""
        print(f"  {robot['robot']}: {status}{extra}")
