"""The env contract: PettingZoo parallel API, Gymnasium single-robot API, agent names,
action handling, episode ends and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from conftest import NAVIGATION, open_world
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from sim_bridge.backends import CommandError
from sim_bridge.env import MultiRobotEnv, SingleRobotEnv
from worlds import load_world_text


def _open_env(**overrides) -> MultiRobotEnv:
    return MultiRobotEnv(load_world_text(yaml.safe_dump(open_world(**overrides)), source="test_open.yaml"))


def test_pettingzoo_parallel_api():
    env = MultiRobotEnv(NAVIGATION)
    try:
        parallel_api_test(env, num_cycles=300)
    finally:
        env.close()


def test_gymnasium_single_robot_api():
    env = SingleRobotEnv(load_world_text(yaml.safe_dump(open_world()), source="test_open.yaml"))
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_single_robot_env_refuses_teams():
    with pytest.raises(ValueError, match="needs a world with one robot; this one has 4"):
        SingleRobotEnv(NAVIGATION)


def test_agents_match_ros_namespaces_and_spaces():
    env = MultiRobotEnv(NAVIGATION)
    try:
        assert env.possible_agents == ["robot_0", "robot_1", "robot_2", "robot_3"]
        space = env.action_space("robot_2")
        np.testing.assert_allclose(space.low, [-1.0, -2.0])
        np.testing.assert_allclose(space.high, [1.0, 2.0])
        obs, _ = env.reset(seed=0)
        layout = env.task.observation_slices()
        assert env.observation_space("robot_0").shape == (3 + 2 + 60 + 15,)
        assert set(layout) == {"goal", "velocity", "lidar", "neighbours"}
        for agent, o in obs.items():
            assert env.observation_space(agent).contains(o)
        with pytest.raises(KeyError, match="unknown agent 'robot_9'"):
            env.action_space("robot_9")
    finally:
        env.close()


def test_nan_action_is_refused_with_the_robot_named():
    env = _open_env()
    try:
        env.reset(seed=0)
        with pytest.raises(CommandError, match=r"robot_0: action .* is not finite"):
            env.step({"robot_0": np.array([math.nan, 0.0])})
        with pytest.raises(CommandError, match=r"robot_0: an action is \(v m/s, ω rad/s\)"):
            env.step({"robot_0": np.zeros(3)})
    finally:
        env.close()


def test_reaching_the_goal_ends_the_robot_and_scores_it():
    # One robot 4 m from its goal, driven straight at it.
    env = _open_env()
    try:
        obs, _ = env.reset(seed=0)
        goal_dist = float(obs["robot_0"][2])
        assert goal_dist == pytest.approx(math.hypot(4.0, -3.0), abs=0.05)  # goal (4, -3) from (0, 0)
        total, steps = 0.0, 0
        done = False
        while not done:
            o = obs["robot_0"]
            bearing = math.atan2(o[1], o[0])
            obs, rew, term, trunc, info = env.step({"robot_0": np.array([1.0, 2.0 * bearing])})
            total += rew["robot_0"]
            steps += 1
            done = term["robot_0"] or trunc["robot_0"]
        assert term["robot_0"] and not trunc["robot_0"]
        assert env.agents == []
        metrics = info["robot_0"]["episode"]
        assert metrics["success_rate"] == 1.0 and metrics["collisions"] == 0
        assert 0.8 < metrics["spl"] <= 1.0
        assert metrics["robots"][0]["path_length_m"] >= 5.0 - 0.5 - 0.05
        # progress reward ≈ metres gained, plus the goal bonus, minus time
        assert total == pytest.approx((goal_dist - 0.5) + 10.0 - 0.01 * steps, abs=0.3)
        with pytest.raises(RuntimeError, match="call reset"):
            env.step({"robot_0": np.zeros(2)})
    finally:
        env.close()


def test_time_limit_truncates_and_idle_robots_fail():
    env = _open_env()
    try:
        env.reset(seed=0)
        steps = 0
        while env.agents:
            _, _, term, trunc, info = env.step({"robot_0": np.zeros(2)})
            steps += 1
        assert trunc["robot_0"] and not term["robot_0"]
        assert steps == env.max_steps == 60 * 20
        assert info["robot_0"]["episode"]["success_rate"] == 0.0
    finally:
        env.close()


def test_same_seed_same_episode():
    env = MultiRobotEnv(NAVIGATION)
    try:
        a, _ = env.reset(seed=11)
        goals_a = env.task.goals.copy()
        env.reset(seed=12)
        b, _ = env.reset(seed=11)
        np.testing.assert_array_equal(goals_a, env.task.goals)
        for agent in a:
            np.testing.assert_array_equal(a[agent], b[agent])
    finally:
        env.close()
