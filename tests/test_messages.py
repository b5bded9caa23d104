"""Local messages (``worlds.tasks.messages``) and coverage's use of them: delivery in range,
points re-expressed in each receiver's frame, coverage's "a free landmark I am not taking"
protocol, and the greedy baseline acting on what it hears."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test
from task_helpers import shipped_world_data, snapshot
from test_task_coverage import LANDMARKS, STARTS

from policies.base import PolicyContext
from policies.rollout import run_episodes
from policies.scripted_coverage import CoveragePolicy
from sim_bridge.env import MultiRobotEnv
from worlds import load_world_data, make_task
from worlds.tasks.messages import deliver, inbox_size


def _deliver(poses, points, valid, k, range_m):
    poses = np.asarray(poses, dtype=float)[None]
    points = np.asarray(points, dtype=float)[None]
    out = np.zeros((1, poses.shape[1], inbox_size(k, points.shape[2])))
    deliver(poses, points, np.asarray(valid)[None], k, range_m, out)
    return out[0]


def test_a_message_reaches_the_robots_in_range_in_their_own_frames():
    # robot_0 at the origin facing +x; robot_1 2 m east facing +y; robot_2 2 m north facing -x;
    # robot_3 far away. robot_1 says "1 m ahead of me" = (2, 1) on the map.
    poses = [[0.0, 0.0, 0.0], [2.0, 0.0, math.pi / 2], [0.0, 2.0, math.pi], [9.0, 9.0, 0.0]]
    points = np.zeros((4, 2, 2))
    points[1, 0] = [1.0, 0.0]
    valid = np.zeros((4, 2), dtype=bool)
    valid[1, 0] = True
    out = _deliver(poses, points, valid, k=2, range_m=3.0).reshape(4, 2, 9)
    # robot_0 hears robot_1 and robot_2 (both 2 m; robot_1 first by index), in its frame.
    np.testing.assert_allclose(out[0, 0], [2.0, 0.0, 1.0, 2.0, 1.0, 1.0, 0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(out[0, 1, :3], [0.0, 2.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(out[0, 1, 3:], 0.0)  # robot_2 says nothing
    # robot_2 faces -x: robot_1 is at (-2, 2) in its frame and the point (2, 1) at (-2, 1).
    heard = {tuple(np.round(slot[:2], 6)): slot for slot in out[2]}
    np.testing.assert_allclose(heard[(-2.0, 2.0)][3:6], [-2.0, 1.0, 1.0], atol=1e-9)
    # robot_3 is out of everyone's range: it hears nothing, and nobody hears it.
    np.testing.assert_allclose(out[3], 0.0)
    assert not any(np.allclose(slot[:2], [9.0, 9.0]) for slot in out[:3].reshape(-1, 9))
    # k = 1: only the nearest sender.
    nearest = _deliver(poses, points, valid, k=1, range_m=3.0)
    np.testing.assert_allclose(nearest[1, :3], [0.0, 2.0, 1.0], atol=1e-9)  # robot_1 faces +y: robot_0 on its left


def _talking_task(relay_radius_m=5.0):
    data = shipped_world_data("coverage")
    data["robots"][0]["count"] = 3
    data["robots"][0]["spawn"] = {"poses": [[0.0, 0.0, 0.0], [2.0, 0.0, 90.0], [0.0, -2.2, 0.0]]}
    data["task"]["params"].update(landmarks=3, relay_radius_m=relay_radius_m, relay_senders=2)
    task = make_task(load_world_data(data, "three.yaml"))
    task._draw_landmarks = lambda rng: LANDMARKS.copy()
    task.reset(np.random.default_rng(0), STARTS[None])
    return task


def test_coverage_robots_report_a_free_landmark_they_are_not_taking():
    task = _talking_task()
    assert task.observation_slices()["messages"] == slice(41, 53)
    obs = task.observe(snapshot(STARTS))[0]
    heard = obs[:, task.observation_slices()["messages"]].reshape(3, 2, 6)
    # Landmark 2 is covered by robot_2. robot_0 (covering none) is taking landmark 0, the nearest
    # free one it sees, and reports landmark 1; robot_1 takes landmark 1 and reports landmark 0;
    # robot_2 covers landmark 2 and reports the nearest free one it sees, landmark 1.
    # robot_0 hears robot_1 (2 m) and robot_2 (2.2 m):
    np.testing.assert_allclose(heard[0], [[2.0, 0.0, 1.0, 0.0, 3.0, 1.0], [0.0, -2.2, 1.0, 4.0, 0.0, 1.0]], atol=1e-5)
    # robot_1 faces +y: robot_0 is on its left, (0, 2) in its frame, and landmark 1 on its right, (0, -2).
    np.testing.assert_allclose(heard[1], [[0.0, 2.0, 1.0, 0.0, -2.0, 1.0], [-2.2, 2.0, 1.0, 0.0, -2.0, 1.0]], atol=1e-5)
    lo, hi = task.observation_bounds()
    assert np.all(obs >= lo) and np.all(obs <= hi)
    # Out of range (2.5 m): robot_1 hears robot_0 only.
    short = _talking_task(relay_radius_m=2.5)
    heard = short.observe(snapshot(STARTS))[0][:, short.observation_slices()["messages"]].reshape(3, 2, 6)
    np.testing.assert_allclose(heard[1, 1], 0.0)


def test_a_talking_coverage_env_keeps_the_pettingzoo_api_and_its_bounds():
    data = shipped_world_data("coverage")
    data["task"]["params"]["relay_radius_m"] = 5.0
    env = MultiRobotEnv(load_world_data(data, "coverage, relay 5 m"))
    try:
        parallel_api_test(env, num_cycles=50)
        obs, _ = env.reset(seed=2)
        rng = np.random.default_rng(2)
        heard = 0.0
        for _ in range(40):
            for agent, o in obs.items():
                assert env.observation_space(agent).contains(o), agent
                heard += o[env.task.observation_slices()["messages"]][5::6].sum()
            obs, *_ = env.step({a: rng.uniform(-1.0, 1.0, 2).astype(np.float32) for a in env.agents})
        assert heard > 0  # reports were heard
    finally:
        env.close()


def test_without_messages_the_observation_is_as_shipped():
    task = make_task(load_world_data(shipped_world_data("coverage"), "coverage.yaml"))
    assert "messages" not in task.observation_slices() and task.observation_size == 41


def test_the_baseline_drives_to_a_reported_landmark_when_it_has_nothing_else():
    task = _talking_task()
    context = PolicyContext.from_task(task)
    policy = CoveragePolicy(context)
    obs = np.zeros(task.observation_size, dtype=np.float32)
    obs[context.observation_slices["lidar"]] = 5.0  # open space, nothing in view
    searching = policy.act({"robot_0": obs})["robot_0"]
    assert policy.searching("robot_0")
    heard = obs.copy()
    heard[context.observation_slices["messages"]][:6] = [1.0, 1.0, 1.0, 3.0, 4.0, 1.0]
    told = policy.act({"robot_0": heard})["robot_0"]
    assert not policy.searching("robot_0")  # not a search: steering leaves it alone
    assert told[0] / told[1] == pytest.approx(3.0 / 4.0, rel=1e-3) and np.linalg.norm(told) > 0.5
    assert not np.allclose(told, searching)


def test_messages_cover_the_landmark_a_search_misses():
    # Episodes (of seeds 0..99) where the baseline without messages leaves a landmark uncovered
    # that a robot busy with its own landmark had seen.
    seeds = [20, 22, 29, 34, 57, 59]
    rates = {}
    for radius in (0.0, 5.0):
        data = shipped_world_data("coverage")
        data["task"]["params"]["relay_radius_m"] = radius
        env = MultiRobotEnv(load_world_data(data, f"coverage, relay {radius} m"))
        try:
            results = run_episodes(env, CoveragePolicy(PolicyContext.from_task(env.task)), seeds)
        finally:
            env.close()
        rates[radius] = np.mean([r.metrics["success_rate"] for r in results])
    assert rates[0.0] == 0.0  # every one of them fails without messages
    assert rates[5.0] >= 4 / 6, rates  # most are covered with them (all 6 when measured)
