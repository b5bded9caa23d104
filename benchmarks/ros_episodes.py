"""The shipped policies in the ROS graph, against the same episodes in-process.

For each task world and seed: ``sern launch sim_launch.yaml world:=W policy:=learned
seed:=S lockstep:=true real_time_factor:=0`` (or ``--policy scripted``; sim_node and
policy_node, two processes over
DDS; lockstep: each control period waits for the policy's commands, so the run is as fast as
the graph allows and loses no step), read ``task/status`` until the episode ends; then the
same seed in-process (``MultiRobotEnv`` and the same policy, as ``sern eval`` runs it).
Speed is the episode's control periods per wall second, from its first command to its end.

    .venv/bin/python benchmarks/ros_episodes.py [--worlds flocking,coverage] [--seeds 1000,1001]
        [--policy scripted] [--domain 118]

Prints one line per episode, then one JSON line: {"episodes": N, "graph_success": fraction,
"env_success": fraction, "same_outcome": fraction (success and headline metric within 2 %),
"steps_per_s_median": …, "per_world": {W: {...}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numba
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor

from policies.base import PolicyContext
from policies.registry import make_policy
from policies.rollout import run_episode
from ros_nodes.task_topics import STATUS_QOS, STATUS_TOPIC, parse_status
from sim_bridge.env import MultiRobotEnv
from worlds import load_world, make_task

BIN = Path(sys.executable).parent
WORLDS = ["navigation", "flocking", "coverage", "foraging", "pursuit", "transport"]


def graph_episode(world: str, policy: str, seed: int, domain: int, timeout_s: float) -> dict:
    """The final ``task/status`` of one launched episode, with wall times."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    args = [str(BIN / "sern"), "launch", "sim_launch.yaml", f"world:={world}", f"policy:={policy}", f"seed:={seed}"]
    launch = subprocess.Popen(
        [*args, "lockstep:=true", "real_time_factor:=0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("ros_episodes_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    seen: dict[str, tuple[float, object]] = {}

    def on_status(msg):
        status = parse_status(msg)
        if status is not None and status.state not in seen:
            seen[status.state] = (time.monotonic(), status)

    node.create_subscription(DiagnosticArray, STATUS_TOPIC, on_status, STATUS_QOS)
    launched = time.monotonic()
    try:
        while not ({"succeeded", "failed"} & set(seen)) and time.monotonic() - launched < timeout_s:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        launch.send_signal(signal.SIGINT)
        try:
            launch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()
    end = seen.get("succeeded") or seen.get("failed")
    if end is None:
        return {"timeout_s": timeout_s}
    started = seen.get("running", (launched, None))[0]
    status = end[1]
    return {"status": status, "wall_s": end[0] - started, "launch_to_end_s": end[0] - launched}


def env_episode(world: str, policy: str, seed: int) -> dict:
    env = MultiRobotEnv(load_world(world))
    try:
        return run_episode(env, make_policy(policy, PolicyContext.from_task(env.task)), seed).metrics
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated task worlds")
    parser.add_argument("--seeds", default="1000", help="comma-separated episode seeds")
    parser.add_argument("--policy", default="learned", help="learned (the shipped checkpoints), scripted or a path")
    parser.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "118")))
    parser.add_argument("--timeout-s", type=float, default=600.0, help="wall seconds allowed per episode")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the policy node runs it
    numba.set_num_threads(1)
    rows, per_world = [], {}
    for world in args.worlds.split(","):
        headline, _ = make_task(load_world(world)).headline_metric
        for seed in (int(s) for s in args.seeds.split(",")):
            graph = graph_episode(world, args.policy, seed, args.domain, args.timeout_s)
            ref = env_episode(world, args.policy, seed)
            if "status" not in graph:
                row = {"world": world, "seed": seed, "graph_success": False, "timeout_s": args.timeout_s}
            else:
                m, control_dt = graph["status"].metrics, load_world(world).control_dt
                steps = graph["status"].time_s / control_dt
                same = m["success_rate"] == ref["success_rate"] and _close(m.get(headline), ref.get(headline))
                row = {
                    "world": world,
                    "seed": seed,
                    "graph_success": m["success_rate"] >= 1.0,
                    "env_success": ref["success_rate"] >= 1.0,
                    "headline": headline,
                    "graph": m.get(headline),
                    "env": ref.get(headline),
                    "same_outcome": bool(same),
                    "episode_s": graph["status"].time_s,
                    "wall_s": round(graph["wall_s"], 2),
                    "launch_to_end_s": round(graph["launch_to_end_s"], 2),
                    "steps_per_s": round(steps / graph["wall_s"], 1),
                }
            rows.append(row)
            per_world.setdefault(world, []).append(row)
            print(json.dumps(row), flush=True)
    done = [r for r in rows if "steps_per_s" in r]
    print(
        json.dumps(
            {
                "episodes": len(rows),
                "graph_success": sum(r["graph_success"] for r in rows) / len(rows),
                "env_success": sum(r.get("env_success", False) for r in rows) / len(rows),
                "same_outcome": sum(r.get("same_outcome", False) for r in rows) / len(rows),
                "steps_per_s_median": statistics.median(r["steps_per_s"] for r in done) if done else None,
                "per_world": {
                    w: {
                        "graph_success": sum(r["graph_success"] for r in rs) / len(rs),
                        "same_outcome": sum(r.get("same_outcome", False) for r in rs) / len(rs),
                        "steps_per_s": [r.get("steps_per_s") for r in rs],
                    }
                    for w, rs in per_world.items()
                },
            }
        )
    )


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= max(0.1, 0.02 * abs(b))


if __name__ == "__main__":
    main()
