"""Pursuit task: the shipped world, the env contract, the evaders' flight, capture, reward
and metric maths on constructed snapshots, batches, and the scripted baseline against
standing still."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test
from task_helpers import disc_world, snapshot

from policies.base import PolicyContext
from policies.registry import make_policy
from policies.rollout import run_episodes, summarise
from sim_bridge.batched_env import BatchedEnv
from sim_bridge.env import MultiRobotEnv
from worlds import WorldFileError, load_world, load_world_data, make_task

STARTS = [[-3.0, 0.0, 0.0], [-3.0, 2.0, 0.0]]


def _world(**params) -> dict:
    """A 10 m arena, two pursuers on the west side facing +x, one evader."""
    region = {"min": [2.0, -1.0], "max": [3.0, 1.0]}
    return disc_world("pursuit", 10.0, STARTS, {"evaders": 1, "evader_region": region, **params})


def _task(evader=(0.0, 0.0)):
    """The two-pursuer task with its evader moved to ``evader``, at rest."""
    task = make_task(load_world_data(_world(), source="t.yaml"))
    task.reset(np.random.default_rng(0), np.array([STARTS]))
    task.evader_pos[0] = [evader]
    return task


def test_shipped_world_loads():
    world = load_world("pursuit")
    task = make_task(world)
    assert world.backend == "kinematic" and world.num_robots == 4 and task.params.evaders == 2
    assert task.observation_size == 2 + 4 + 5 * 2 + 5 * 3
    assert list(task.observation_slices()) == ["velocity", "walls", "evaders", "neighbours"]
    fastest = max(r.limits.max_linear_speed_mps for r in task.robots)
    assert task.params.evader_speed_mps < fastest


def test_pettingzoo_parallel_api():
    env = MultiRobotEnv(load_world("pursuit"))
    try:
        assert env.backend.name == "kinematic"
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()


def test_observations_stay_in_bounds():
    env = MultiRobotEnv(load_world("pursuit"))
    try:
        obs, _ = env.reset(seed=4)
        rng = np.random.default_rng(0)
        for _ in range(60):
            for agent, o in obs.items():
                assert env.observation_space(agent).contains(o), agent
            obs, *_ = env.step({a: env.action_space(a).sample() * rng.uniform() for a in env.agents})
    finally:
        env.close()


def test_same_seed_same_evaders():
    env = MultiRobotEnv(load_world("pursuit"))
    try:
        env.reset(seed=7)
        a = env.task.evader_pos.copy(), env.task.wander_heading.copy()
        env.reset(seed=8)
        env.reset(seed=7)
        np.testing.assert_array_equal(a[0], env.task.evader_pos)
        np.testing.assert_array_equal(a[1], env.task.wander_heading)
    finally:
        env.close()


def test_evaders_are_seen_in_the_robot_frame_within_range():
    task = _task(evader=(-3.0, 1.0))
    task.evader_vel[0] = [[0.5, 0.0]]
    s = task.observation_slices()
    # robot_0 at (-3, 0) faces +y: the evader 1 m north is 1 m ahead, moving to its right.
    obs = task.observe(snapshot([[-3.0, 0.0, math.pi / 2], STARTS[1]]))[0]
    np.testing.assert_allclose(obs[0, s["evaders"]][:5], [1.0, 0.0, 0.0, -0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(obs[0, s["evaders"]][5:], 0.0)  # one evader: padding
    # robot_1 at (-3, 2) facing +x sees it 1 m to its right; its neighbour robot_0 2 m right.
    np.testing.assert_allclose(obs[1, s["evaders"]][:5], [0.0, -1.0, 0.5, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(obs[1, s["neighbours"]][:5], [0.0, -2.0, 0.0, 0.0, 1.0], atol=1e-6)
    far = task.observe(snapshot([[-3.0, -4.5, 0.0], [2.0, 4.5, 0.0]]))[0]
    np.testing.assert_allclose(far[:, s["evaders"]], 0.0)  # beyond the 4 m sensing radius
    captured = _task(evader=(-3.0, 1.0))
    captured.captured[0] = True
    np.testing.assert_allclose(captured.observe(snapshot(STARTS))[0][:, s["evaders"]], 0.0)


def test_evader_flees_and_the_walls_hold_it():
    task = _task(evader=(0.0, 0.0))
    for k in range(20):  # a pursuer 1.5 m to its west
        task.step(snapshot([[-1.5, 0.0, 0.0], [-4.0, 4.0, 0.0]], t=0.05 * (k + 1)))
    assert task.evader_vel[0, 0, 0] > 0.6  # running east, away from it
    assert np.linalg.norm(task.evader_vel[0, 0]) <= task.params.evader_speed_mps + 1e-9
    task = _task(evader=(4.5, 0.0))
    for k in range(30):  # pinned against the east wall by a pursuer to its west
        task.step(snapshot([[3.0, 0.0, 0.0], [-4.0, 4.0, 0.0]], t=0.05 * (k + 1)))
    assert task.evader_pos[0, 0, 0] <= 5.0 - 0.15 + 1e-9
    assert abs(task.evader_vel[0, 0, 1]) > 0.5  # it slides along the wall
    far = _task(evader=(0.0, 0.0))
    far.step(snapshot(STARTS))
    assert np.linalg.norm(far.evader_vel[0, 0]) <= far.params.wander_fraction * far.params.evader_speed_mps + 1e-9


def test_capture_rewards_and_metrics():
    task = _task(evader=(0.0, 0.0))
    # robot_0 closes 1 m on the evader (which barely moves from rest); robot_1 hits a wall.
    task.step(snapshot([[-2.0, 0.0, 0.0], STARTS[1]]))
    r, term = (a[0] for a in task.step(snapshot([[-1.0, 0.0, 0.0], STARTS[1]], contacts=[False, True], t=0.1)))
    assert r[0] == pytest.approx(1.0 - 0.01, abs=0.02)
    assert r[1] == pytest.approx(-2.0 - 0.01, abs=0.02)
    assert not term.any()
    # Within the capture radius: every pursuer earns the bonus, and the episode ends.
    ex, ey = task.evader_pos[0, 0]
    r, term = (a[0] for a in task.step(snapshot([[ex - 0.2, ey, 0.0], STARTS[1]], contacts=[False, True], t=0.15)))
    assert term.all() and task.done()[0]
    assert r[0] > 10.0 and r[1] == pytest.approx(10.0 - 0.01, abs=0.05)
    m = task.episode_metrics()
    assert m["success_rate"] == 1.0 and m["captures"] == 1 and m["capture_fraction"] == 1.0
    assert m["time_to_capture_s"] == pytest.approx(0.15) and m["time_to_capture_all_s"] == pytest.approx(0.15)
    assert m["robots"][0]["captures"] == 1 and m["robots"][1]["captures"] == 0
    assert m["collisions"] == 1 and m["collision_rate"] == 0.5
    r, term = (a[0] for a in task.step(snapshot(STARTS, t=0.2)))
    np.testing.assert_allclose(r, 0.0)
    assert not term.any()


def test_impossible_params_are_errors_naming_the_key():
    with pytest.raises(WorldFileError, match=r"task\.params\.evader_speed_mps: must be below the pursuers' top speed"):
        load_world_data(_world(evader_speed_mps=1.2), source="t.yaml")
    with pytest.raises(WorldFileError, match=r"task\.params\.evader_region: region .* reaches outside the arena"):
        load_world_data(_world(evader_region={"min": [2.0, 2.0], "max": [6.0, 3.0]}), source="t.yaml")


def test_batched_env_runs_and_restarts_finished_worlds():
    env = BatchedEnv("pursuit", 8, seed=0)
    env.reset(seed=0)
    lo, hi = env.task.observation_bounds()
    rng = np.random.default_rng(0)
    for _ in range(20):
        step = env.step(rng.uniform(-1, 1, (8, env.num_agents, 2)))
        assert step.obs.shape == (8, 4, env.obs_dim) and step.obs.dtype == np.float32
        assert np.all(step.obs >= lo) and np.all(step.obs <= hi)
        assert np.isfinite(step.rewards).all() and step.active.all()
    env.task.captured[5] = True  # world 5's evaders are all caught
    step = env.step(np.zeros((8, 4, 2)))
    assert step.world_done.tolist() == [w == 5 for w in range(8)] and step.terminated[5].all()
    assert step.episodes[0]["success_rate"] == 1.0
    assert not env.task.captured[5].any()  # restarted


def test_scripted_baseline_beats_standing_still():
    env = MultiRobotEnv(load_world("pursuit"))
    try:
        ctx = PolicyContext.from_task(env.task)
        scripted = summarise(run_episodes(env, make_policy("scripted", ctx), seeds=[0, 1, 2]))
        idle = summarise(run_episodes(env, make_policy("idle", ctx), seeds=[0, 1, 2]))
    finally:
        env.close()
    assert idle["capture_fraction"] == 0.0 and idle["success_rate"] == 0.0
    assert scripted["capture_fraction"] >= 0.75, scripted["per_episode"]
    assert scripted["success_rate"] >= 2 / 3, scripted["per_episode"]
