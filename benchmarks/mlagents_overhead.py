"""What ML-Agents' protocol costs per step: a 4-robot navigation world on the kinematic
engine stepped directly (``MultiRobotEnv``) and through ``backend: unity`` ↔ ``sern
serve-mlagents`` (mlagents-envs' ``UnityEnvironment`` on one side, the peer in its own
process on the other: real gRPC on loopback), with the same seeded random commands.

Rounds alternate direct / via and the median of each is kept. The machine must be otherwise
idle (two cores: the peer and the client each take one).

    .venv/bin/python benchmarks/mlagents_overhead.py [--steps 2000] [--rounds 3]

Ends with one JSON line: {"direct_sps", "via_mlagents_sps", "overhead_ms_per_step",
"floor_ms_per_step"} (goal: the protocol adds at most 1 ms per step). ``floor_ms_per_step`` is
what mlagents-envs' ``UnityEnvironment`` and gRPC cost alone: a null Unity side (in its own
process) answers every step at once with the same four agents' 80-float observations, and
the client only sets actions, steps and reads the steps, as the world's env does.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from sim_bridge.env import MultiRobotEnv
from sim_bridge.mlagents.world_env import UnityWorldEnv
from worlds import load_world

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def steps_per_second(env, steps: int, seed: int) -> float:
    """Steps per second over ``steps`` control periods of random commands (episodes restart)."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        if not env.agents:
            env.reset()
        env.step({a: rng.uniform(env.action_space(a).low, env.action_space(a).high) for a in env.agents})
    return steps / (time.perf_counter() - t0)


def null_unity_side(port: int) -> None:
    """A Unity side that simulates nothing: four agents, the same output every step."""
    import grpc
    from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
    from mlagents_envs.communicator_objects.unity_to_external_pb2_grpc import UnityToExternalProtoStub

    from sim_bridge.mlagents.world_peer import RETRY_OPTIONS

    stub = UnityToExternalProtoStub(grpc.insecure_channel(f"localhost:{port}", options=RETRY_OPTIONS))
    hello = UnityMessageProto()
    hello.header.status = 200
    init = hello.unity_output.rl_initialization_output
    init.name, init.communication_version, init.package_version = "null", "1.5.0", "3.0.0"
    init.capabilities.baseRLCapabilities = True
    stub.Exchange(hello, wait_for_ready=True, timeout=60)
    empty = UnityMessageProto()
    empty.header.status = 200
    reply = stub.Exchange(empty)
    out = UnityMessageProto()
    out.header.status = 200
    for i in range(4):
        info = out.unity_output.rl_output.agentInfos["null?team=0"].value.add()
        info.id = i
        obs = info.observations.add()
        obs.shape.append(80)
        obs.float_data.data.extend([0.5] * 80)
    brain = out.unity_output.rl_initialization_output.brain_parameters.add()
    brain.brain_name = "null?team=0"
    brain.action_spec.num_continuous_actions = 2
    while reply.header.status == 200:
        try:
            reply = stub.Exchange(out)
        except grpc.RpcError:
            return


def floor_ms_per_step(steps: int) -> float:
    """ms per step of mlagents-envs' client against the null Unity side."""
    from mlagents_envs.base_env import ActionTuple
    from mlagents_envs.environment import UnityEnvironment

    port = free_port()
    peer = subprocess.Popen([sys.executable, __file__, "--null-unity-side", str(port)], cwd=ROOT)
    env = UnityEnvironment(file_name=None, base_port=port, timeout_wait=60)
    try:
        env.reset()
        actions = ActionTuple(continuous=np.zeros((4, 2), np.float32))
        for k in range(steps + 100):
            if k == 100:
                t0 = time.perf_counter()
            env.set_actions("null?team=0", actions)
            env.step()
            env.get_steps("null?team=0")
        return (time.perf_counter() - t0) / steps * 1000.0
    finally:
        env.close()
        peer.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="control steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--null-unity-side", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.null_unity_side:
        null_unity_side(args.null_unity_side)
        return 0
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sern_mlagents_") as tmp:
        data = load_world("navigation").to_data()
        data["backend"] = "kinematic"
        data["unity"] = {"base_port": port, "timeout_s": 60.0}
        path = Path(tmp) / "navigation.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        world = load_world(path)
        cmd = [sys.executable, "-m", "sern.cli", "serve-mlagents", str(path), "--port", str(port), "--quiet"]
        peer = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        direct = MultiRobotEnv(world)
        via = UnityWorldEnv(world)
        try:
            steps_per_second(via, 100, seed=0)  # warm both up (first episode, numba, gRPC)
            steps_per_second(direct, 100, seed=0)
            direct_sps, via_sps = [], []
            for r in range(args.rounds):
                direct_sps.append(steps_per_second(direct, args.steps, seed=r))
                via_sps.append(steps_per_second(via, args.steps, seed=r))
        finally:
            via.close()
            direct.close()
            peer.communicate(timeout=60)
    floor = statistics.median(floor_ms_per_step(args.steps) for _ in range(args.rounds))
    d, v = statistics.median(direct_sps), statistics.median(via_sps)
    result = {
        "world": "navigation (4 robots, kinematic)",
        "steps": args.steps,
        "rounds": args.rounds,
        "direct_sps": round(d, 1),
        "via_mlagents_sps": round(v, 1),
        "overhead_ms_per_step": round(1000.0 / v - 1000.0 / d, 3),
        "floor_ms_per_step": round(floor, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
