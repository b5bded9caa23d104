"""sern worlds over Unity ML-Agents' protocol: ``sern serve-mlagents`` (Unity's side) and
``backend: unity`` (mlagents-envs' ``UnityEnvironment`` as the client), on real gRPC.

No Unity build exists here; ``sern serve-mlagents`` is the peer, and the client side is the
unmodified ``mlagents_envs.environment.UnityEnvironment`` (directly, or under sern's env)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import free_port

from sim_bridge.env import MultiRobotEnv
from sim_bridge.mlagents.world_env import UnityRunError, UnityWorldEnv
from sim_bridge.mlagents.world_peer import WorldPeer
from worlds import load_world
from worlds.spec import WorldSpec

SERN = [sys.executable, "-m", "sern.cli"]


def world_file(tmp_path: Path, name: str, episode_s: float | None = None, **unity) -> Path:
    """A shipped world with shorter episodes and a ``unity`` block, written to ``tmp_path``."""
    data = load_world(name).to_data()
    if episode_s is not None:
        data["task"]["params"]["max_episode_s"] = episode_s
    if unity:
        data["unity"] = unity
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def on_grid(space, rng) -> np.ndarray:
    """A random command whose [-1, 1] image is a multiple of 1/8: it crosses the protocol's
    float32 actions exactly, so both sides command the same (PyBullet's contacts would
    otherwise grow a 1e-8 difference into 1e-4 in a few seconds)."""
    a = rng.integers(-8, 9, size=2) / 8.0
    return space.low + (a + 1.0) * 0.5 * (space.high.astype(float) - space.low)


def serve_in_thread(world: WorldSpec, port: int, backend: str) -> tuple[threading.Thread, WorldPeer, list]:
    peer = WorldPeer(MultiRobotEnv(world, backend=backend))
    failures: list[BaseException] = []

    def serve():
        try:
            peer.serve(port, timeout_s=30)
        except BaseException as err:  # reported by the test
            failures.append(err)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, peer, failures


def serve_cli(world: str | Path, port: int, *extra: str) -> subprocess.Popen:
    cmd = [*SERN, "serve-mlagents", str(world), "--port", str(port), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sern(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SERN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("name", "backend"), [("navigation", "kinematic"), ("flocking", "kinematic"), ("navigation", "pybullet")]
)
def test_a_served_world_gives_what_it_gives_directly(tmp_path, name, backend):
    """Same world, seeds and actions: the same observations, rewards, ends, poses and
    metrics through backend unity ↔ serve-mlagents as on the engine directly (rewards to
    float32, what the protocol carries), including an episode the Unity side restarts on its own."""
    world = load_world(world_file(tmp_path, name, episode_s=3.0, base_port=(port := free_port()), timeout_s=30))
    thread, peer, failures = serve_in_thread(world, port, backend)
    via = UnityWorldEnv(world)
    direct = MultiRobotEnv(world, backend=backend)
    rng = np.random.default_rng(1)
    steps = 0
    try:
        for seed in (11, None, 12):
            obs_via, _ = via.reset(seed=seed)
            obs_direct, _ = direct.reset(seed=seed)
            assert via.agents == direct.agents
            for agent in direct.agents:
                np.testing.assert_array_equal(obs_via[agent], obs_direct[agent])
            while direct.agents:
                actions = {a: on_grid(direct.action_space(a), rng) for a in direct.agents}
                got, want = via.step(actions), direct.step(actions)
                steps += 1
                for part in range(4):  # observations, rewards, terminations, truncations
                    assert set(got[part]) == set(want[part])
                for agent in want[0]:
                    np.testing.assert_array_equal(got[0][agent], want[0][agent])
                    assert got[1][agent] == pytest.approx(want[1][agent], rel=1e-6, abs=1e-9)  # float32
                    assert (got[2][agent], got[3][agent]) == (want[2][agent], want[3][agent])
                assert via.agents == direct.agents
                np.testing.assert_array_equal(via.snapshot.poses, direct.snapshot.poses)
            got_m, want_m = via.episode_metrics(), direct.episode_metrics()
            assert got_m.keys() == want_m.keys()
            for key, value in want_m.items():
                assert got_m[key] == value, key
            assert via.drawables().keys() == direct.drawables().keys()
    finally:
        via.close()
        direct.close()
        thread.join(10)
    assert not failures and not thread.is_alive()
    assert peer.stats.steps == steps and peer.stats.episodes == 3
    assert peer.stats.time_scale == 20.0  # the engine configuration channel arrived


def test_the_unmodified_unity_environment_drives_sern_serve_mlagents(tmp_path):
    """mlagents-envs' own client (as mlagents-learn uses it) against the CLI peer: specs,
    500 random-action steps with episode ends and a reset, stats, and a clean close."""
    from mlagents_envs.base_env import ActionTuple
    from mlagents_envs.environment import UnityEnvironment
    from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel

    port = free_port()
    peer = serve_cli(world_file(tmp_path, "navigation", episode_s=4.0), port, "--backend", "kinematic")
    stats = StatsSideChannel()
    env = UnityEnvironment(file_name=None, base_port=port, worker_id=0, seed=7, timeout_wait=30, side_channels=[stats])
    try:
        env.reset()
        assert list(env.behavior_specs) == ["navigation?team=0"]
        spec = env.behavior_specs["navigation?team=0"]
        observation_size = MultiRobotEnv(load_world("navigation"), backend="kinematic").task.observation_size
        assert [o.shape for o in spec.observation_specs] == [(observation_size,)]
        assert spec.action_spec.continuous_size == 2 and spec.action_spec.discrete_size == 0
        decisions, terminals = env.get_steps("navigation?team=0")
        assert sorted(decisions.agent_id) == [0, 1, 2, 3] and len(terminals) == 0
        rng = np.random.default_rng(0)
        ended, interrupted, rewards = 0, 0, []
        for step in range(500):
            if step == 250:
                env.reset()  # a reset mid-episode: every agent asks again, none ends
                decisions, terminals = env.get_steps("navigation?team=0")
                assert len(decisions) == 4 and len(terminals) == 0
            continuous = rng.uniform(-1, 1, size=(len(decisions), 2)).astype(np.float32)
            env.set_actions("navigation?team=0", ActionTuple(continuous=continuous))
            env.step()
            decisions, terminals = env.get_steps("navigation?team=0")
            ended += len(terminals)
            interrupted += int(np.sum(terminals.interrupted))
            rewards.extend(decisions.reward.tolist())
            assert np.all(np.isfinite(decisions.obs[0]))
        recorded = stats.get_and_reset_stats()
    finally:
        env.close()
    _out, err = peer.communicate(timeout=30)
    assert peer.returncode == 0, err
    # 80 steps an episode (4 s at 20 Hz): 500 steps with a reset at 250 end at least 4 episodes
    # of 4 robots; a robot that reaches its goal ends early (terminated), the rest at the limit.
    assert ended >= 16 and 0 < interrupted <= ended
    assert any(r != 0 for r in rewards)
    assert {"Episode/success_rate", "Episode/collisions", "Episode/path_length_m"} <= set(recorded)
    assert "trainer closed after 500 steps" in err


def test_sern_run_backend_unity_against_serve_mlagents_matches_the_engine(tmp_path):
    """The acceptance's command, on the Editor's port (5004) as documented: the same
    episodes and metrics as running the world on the engine itself."""

    def run_navigation(backend: str) -> subprocess.CompletedProcess:
        out = tmp_path / ("via" if backend == "unity" else "direct")
        args = ["--policy", "scripted", "--episodes", "2", "--seed", "3", "--quiet", "--out", str(out)]
        return sern("run", "worlds/navigation.yaml", "--backend", backend, *args)

    peer = serve_cli("navigation", 5004, "--backend", "kinematic")
    try:
        via = run_navigation("unity")
    finally:
        _out, err = peer.communicate(timeout=30)
    assert via.returncode == 0, via.stderr + err
    direct = run_navigation("kinematic")
    assert direct.returncode == 0, direct.stderr
    got = json.loads((tmp_path / "via" / "metrics.json").read_text())
    want = json.loads((tmp_path / "direct" / "metrics.json").read_text())
    assert got["backend"] == "unity"
    for a, b in zip(got["per_episode"], want["per_episode"], strict=True):
        assert a["seed"] == b["seed"]
        assert a["success_rate"] == b["success_rate"] and a["collisions"] == b["collisions"]
        assert a["path_length_m"] == pytest.approx(b["path_length_m"], abs=1e-3)
    assert want["success_rate"] > 0  # the comparison compares something


def test_no_peer_is_a_clear_failure_within_the_timeout(tmp_path):
    port = free_port()
    started = time.monotonic()
    done = sern(
        "run",
        str(world_file(tmp_path, "navigation", base_port=port, timeout_s=2.0)),
        "--backend",
        "unity",
        "--quiet",
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 1
    assert f"did not connect to port {port} within 2 s" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30


def test_a_port_in_use_is_a_usage_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("localhost", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = sern(
            "run",
            str(world_file(tmp_path, "navigation", base_port=port, timeout_s=5.0)),
            "--backend",
            "unity",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
        )
    assert done.returncode == 2
    assert f"port {port} is in use" in done.stderr and "unity.worker_id" in done.stderr


@pytest.mark.parametrize(
    ("served", "client_unity", "expected"),
    [
        ("navigation", {"behaviour": "wildfire"}, "no behaviour 'wildfire' on the Unity side; it has navigation"),
        ("flocking", {}, "does not fit task 'navigation'"),
    ],
)
def test_a_behaviour_that_is_missing_or_does_not_fit_is_named(tmp_path, served, client_unity, expected):
    port = free_port()
    peer = serve_cli(served, port, "--backend", "kinematic", "--quiet")
    try:
        client = world_file(tmp_path, "navigation", base_port=port, timeout_s=30, **client_unity)
        done = sern("run", str(client), "--backend", "unity", "--quiet", "--out", str(tmp_path / "out"))
    finally:
        peer.communicate(timeout=30)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "unity.behaviour" in done.stderr and "Traceback" not in done.stderr


def test_a_peer_that_dies_mid_episode_is_a_run_error(tmp_path):
    port = free_port()
    world = load_world(world_file(tmp_path, "navigation", base_port=port, timeout_s=60.0))
    peer = serve_cli(world.source, port, "--backend", "kinematic", "--quiet")
    env = UnityWorldEnv(world)
    env._unity._communicator.timeout_wait = 2  # ML-Agents' one timeout: 60 s to start, 2 s per step here
    try:
        env.reset(seed=0)
        env.step({a: np.zeros(2) for a in env.agents})
        peer.kill()
        peer.wait(10)
        started = time.monotonic()
        with pytest.raises(UnityRunError, match=f"Unity side on port {port}"):
            env.step({a: np.zeros(2) for a in env.agents})
        assert time.monotonic() - started < 10
    finally:
        env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_serve_mlagents_without_a_trainer_gives_up_after_its_timeout():
    port = free_port()
    started = time.monotonic()
    done = sern("serve-mlagents", "navigation", "--port", str(port), "--timeout-s", "1.5", "--backend", "kinematic")
    assert done.returncode == 1
    assert f"no ML-Agents trainer listened on localhost:{port} within 1.5 s" in done.stderr
    assert time.monotonic() - started < 30


def test_serve_mlagents_refuses_to_serve_unity_itself():
    done = sern("serve-mlagents", "navigation", "--backend", "unity")
    assert done.returncode == 2 and "serve the world on an engine sern runs itself" in done.stderr


@pytest.mark.parametrize(
    ("unity", "where"),
    [
        ({"time_scale": 1000.0}, "unity.time_scale"),
        ({"worker_id": 3}, "worker_id must be 0 without a build"),
        ({"env_params": {"difficulty": "hard"}}, "unity.env_params.difficulty"),
        ({"behavior": "x"}, "unity.behavior"),
    ],
)
def test_bad_unity_blocks_are_refused_with_their_line(tmp_path, unity, where):
    path = world_file(tmp_path, "navigation", **unity)
    done = sern("check", str(path))
    assert done.returncode == 2
    assert where in done.stderr and f"{path}:" in done.stderr


def small_navigation(tmp_path: Path, port: int) -> Path:
    """tests/test_training.py's small world (two Huskies, goals 3–5 m ahead: learnable fast),
    with a ``unity`` block."""
    from test_training import small_world

    data = small_world().to_data()
    data["unity"] = {"base_port": port, "timeout_s": 60.0}
    path = tmp_path / "small_navigation.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
def test_mappo_trains_through_the_protocol_and_the_return_rises(tmp_path):
    """``sern train --backend unity``'s loop (policies.mappo.train) on a world served by
    ``sern serve-mlagents`` in another process: a short real run, and the return rises."""
    from policies.mappo import train
    from policies.train_config import TrainConfig

    port = free_port()
    world_path = small_navigation(tmp_path, port)
    peer = serve_cli(world_path, port, "--quiet")
    config = TrainConfig(backend="unity", num_worlds=1, total_agent_steps=8_000, rollout_steps=200, seed=1)
    try:
        result = train(load_world(world_path), config, out=tmp_path / "small", progress=False)
    finally:
        _, err = peer.communicate(timeout=60)
    assert peer.returncode == 0, err
    returns = [h["return"] for h in result.history if "return" in h]
    assert len(returns) >= 15
    first, last = np.mean(returns[:5]), np.mean(returns[-5:])
    assert last > first + 1.0, (first, last)  # seed 1: about -6.9 → -2.4
    sidecar = json.loads((tmp_path / "small.json").read_text())
    assert sidecar["train_config"]["backend"] == "unity"


def test_sern_train_backend_unity_takes_one_world():
    done = sern("train", "navigation", "--backend", "unity", "--worlds", "4")
    assert done.returncode == 2 and "backend unity trains on one Unity world" in done.stderr


def fake_unity_build(tmp_path: Path, world: Path) -> Path:
    """An executable that stands where a Unity build would: ``sern serve-mlagents`` under a
    name ML-Agents launches like a build (``--mlagents-port P -nographics -batchmode``)."""
    build = tmp_path / "SernWorld.x86_64"
    build.write_text(f'#!/bin/sh\nexec {sys.executable} -m sern.cli serve-mlagents {world} --quiet "$@"\n')
    build.chmod(0o755)
    return build


def build_processes(build: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", str(build.parent / "navigation.yaml")], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_a_launched_build_runs_and_is_reaped_even_after_ctrl_c(tmp_path):
    """``unity.build``: sern launches the build on 5005 + worker_id, runs the episodes, and
    leaves no build process behind, also when the run is interrupted."""
    import signal

    served = world_file(tmp_path, "navigation", episode_s=3.0)
    data = yaml.safe_load(served.read_text())
    data["backend"] = "kinematic"
    served.write_text(yaml.safe_dump(data, sort_keys=False))
    build = fake_unity_build(tmp_path, served)
    client = tmp_path / "client.yaml"
    data["backend"] = "unity"
    data["unity"] = {"build": build.name, "worker_id": 7, "base_port": free_port() - 7, "timeout_s": 60.0}
    client.write_text(yaml.safe_dump(data, sort_keys=False))
    done = sern("run", str(client), "--episodes", "2", "--policy", "scripted", "--quiet", "--out", str(tmp_path / "a"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["episodes"] == 2
    assert build_processes(build) == []

    run = subprocess.Popen(
        [
            *SERN,
            "run",
            str(client),
            "--episodes",
            "50",
            "--policy",
            "scripted",
            "--quiet",
            "--out",
            str(tmp_path / "b"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not build_processes(build) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert build_processes(build), "the build was never launched"
    time.sleep(3.0)  # episodes under way
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    deadline = time.monotonic() + 10
    while build_processes(build) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert build_processes(build) == [], "the build outlived the run"
