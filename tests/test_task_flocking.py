"""Flocking task: world file, env APIs, observation, reward and metric maths on constructed
snapshots, the batched env, and the boids baseline against standing still."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import REPO
from pettingzoo.test import parallel_api_test
from task_helpers import first_world, shipped_world_data, snapshot

from policies.base import PolicyContext
from policies.registry import make_policy
from policies.rollout import run_episodes, summarise
from sim_bridge.batched_env import BatchedEnv
from sim_bridge.env import MultiRobotEnv
from worlds import WorldFileError, load_world, load_world_data, make_task
from worlds.tasks.navigation import neighbour_features

FLOCKING = REPO / "worlds" / "flocking.yaml"
GOAL = np.array([5.0, 0.0])
STARTS = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, math.pi / 2], [0.0, 1.0, 0.0]])


def _three_robot_task():
    """Three robots at STARTS, the flock's goal at GOAL, default parameters."""
    data = shipped_world_data("flocking")
    data["robots"][0]["count"] = 3
    data["sensors"]["lidar"]["beams"] = 16  # pooled 2:1, to test the pooling
    data["robots"][0]["spawn"] = {"poses": [[0.0, 0.0, 0.0], [1.0, 0.0, 90.0], [0.0, 1.0, 0.0]]}
    task = make_task(load_world_data(data, "three.yaml"))
    task._draw_goals = lambda rng, count: np.tile(GOAL, (count, 1))
    task.reset(np.random.default_rng(0), STARTS[None])
    return task


# ---- world file and env APIs --------------------------------------------------------------


def test_world_file_loads():
    world = load_world("flocking")
    assert world.task.name == "flocking" and world.backend == "kinematic"
    assert world.num_robots == 8
    assert all(r.model.holonomic for r in world.robot_entries())
    task = make_task(world)
    assert set(task.observation_slices()) == {"velocity", "goal", "neighbours", "lidar"}
    assert task.observation_size == 2 + 3 + 5 * 4 + 8


def test_pettingzoo_parallel_api():
    env = MultiRobotEnv(load_world("flocking"))
    try:
        assert env.backend.name == "kinematic"
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()


def test_observations_stay_inside_the_bounds():
    env = MultiRobotEnv(FLOCKING)
    rng = np.random.default_rng(3)
    try:
        obs, _ = env.reset(seed=3)
        for _ in range(60):
            for agent, o in obs.items():
                assert env.observation_space(agent).contains(o), agent
            obs, *_ = env.step({a: rng.uniform(-1.0, 1.0, 2).astype(np.float32) for a in env.agents})
    finally:
        env.close()


def test_same_seed_same_episode():
    env = MultiRobotEnv(FLOCKING)
    try:
        a, _ = env.reset(seed=5)
        goal = env.task.goals.copy()
        env.reset(seed=6)
        assert not np.array_equal(goal, env.task.goals)
        b, _ = env.reset(seed=5)
        np.testing.assert_array_equal(goal, env.task.goals)
        for agent in a:
            np.testing.assert_array_equal(a[agent], b[agent])
    finally:
        env.close()


# ---- observation maths ------------------------------------------------------------------


def test_goal_is_a_unit_vector_in_the_robot_frame_with_its_distance():
    task = _three_robot_task()
    obs = task.observe(snapshot(STARTS))[0]
    goal = task.observation_slices()["goal"]
    np.testing.assert_allclose(obs[0, goal], [1.0, 0.0, 5.0], atol=1e-6)
    # robot_1 faces +y: a goal 4 m east is on its right.
    np.testing.assert_allclose(obs[1, goal], [0.0, -1.0, 4.0], atol=1e-6)
    np.testing.assert_allclose(obs[2, goal], [5 / math.sqrt(26), -1 / math.sqrt(26), math.sqrt(26)], atol=1e-6)


def test_own_velocity_and_neighbours_in_the_robot_frame():
    task = _three_robot_task()
    poses = [[0.0, 0.0, 0.0], [1.0, 0.0, math.pi / 2], [0.0, 1.5, 0.0]]
    twists = [[0.3, -0.2, 0.0], [0.5, 0.0, 0.0], [0.0, 0.2, 0.0]]
    obs = task.observe(snapshot(poses, twists))[0]
    s = task.observation_slices()
    np.testing.assert_allclose(obs[0, s["velocity"]], [0.3, -0.2], atol=1e-6)
    nb = obs[0, s["neighbours"]].reshape(-1, 5)
    # Nearest first: robot_1, 1 m ahead, facing +y and driving forward (+y in the map);
    # robot_2, 1.5 m to the left, sliding +y; then padding for the two missing neighbours.
    np.testing.assert_allclose(nb[0], [1.0, 0.0, 0.0, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(nb[1], [0.0, 1.5, 0.0, 0.2, 1.0], atol=1e-6)
    np.testing.assert_allclose(nb[2:], 0.0)
    nb1 = obs[1, s["neighbours"]].reshape(-1, 5)
    np.testing.assert_allclose(nb1[0, :2], [0.0, 1.0], atol=1e-6)  # robot_0 at map (-1, 0): its left
    # The same features as the navigation task's (shared semantics for learned models).
    expected = neighbour_features(np.asarray(poses)[None], np.asarray(twists)[None], 4, 4.0)[0]
    np.testing.assert_allclose(obs[:, s["neighbours"]], expected, atol=1e-5)


def test_neighbours_beyond_the_sensing_radius_are_hidden():
    task = _three_robot_task()
    far = [[-3.5, 0.0, 0.0], [0.0, 0.0, 0.0], [3.5, 0.0, 0.0]]  # the outer two 7 m apart, radius 4 m
    obs = task.observe(snapshot(far))[0]
    nb = obs[:, task.observation_slices()["neighbours"]].reshape(3, -1, 5)
    np.testing.assert_array_equal(nb[:, :, 4].sum(axis=1), [1, 2, 1])  # the outer two miss each other
    np.testing.assert_allclose(nb[0, 0, :2], [3.5, 0.0], atol=1e-6)


def test_lidar_is_min_pooled_and_clipped():
    task = _three_robot_task()
    lidar = np.full((3, 16), np.inf)
    lidar[0, 5] = 1.25  # sector 2 holds beams 4 and 5
    obs = task.observe(snapshot(STARTS, lidar=lidar))[0]
    pooled = obs[0, task.observation_slices()["lidar"]]
    assert pooled.shape == (8,)
    assert pooled[2] == pytest.approx(1.25)
    assert np.all(np.delete(pooled, 2) == pytest.approx(5.0))  # inf → range_max
    lo, hi = task.observation_bounds()
    assert np.all(obs >= lo) and np.all(obs <= hi)


# ---- reward maths -----------------------------------------------------------------------


def test_rewards_progress_cohesion_alignment_separation_collision():
    task = _three_robot_task()
    w = task.params.reward
    # robot_0 gains 0.5 m toward the goal; robot_0 and robot_2 travel +x, robot_1 (facing
    # +y) travels +y; robot_2 touches something.
    poses = [[0.5, 0.0, 0.0], [1.0, 0.0, math.pi / 2], [0.0, 1.0, 0.0]]
    twists = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    r, term = first_world(task.step(snapshot(poses, twists, contacts=[False, False, True])))
    centroid = np.array([1.5, 1.0]) / 3
    spread = np.linalg.norm(np.array(poses)[:, :2] - centroid, axis=1)
    crowd = 1.0 - 0.5 / task.params.safety_distance_m  # robots 0 and 1 are 0.5 m apart
    # alignment: own heading · mean heading of neighbours (all within 4 m)
    align = np.array([0.5, 0.0, 0.5])
    expected = -w.cohesion * spread + w.alignment * align - w.separation * np.array([crowd, crowd, 0.0])
    expected += w.progress * np.array([0.5, 0.0, 0.0]) - w.collision_penalty * np.array([0, 0, 1])
    np.testing.assert_allclose(r, expected, atol=1e-9)
    assert not term.any()
    # The same contact is penalised once.
    r2, _ = first_world(task.step(snapshot(poses, twists, contacts=[False, False, True], t=0.1)))
    assert r2[2] == pytest.approx(expected[2] + w.collision_penalty)


def test_arrival_ends_the_episode_for_the_whole_flock_with_a_bonus():
    task = _three_robot_task()
    poses = [[4.5, 0.0, 0.0], [5.0, 0.5, 0.0], [6.9, 0.0, 0.0]]  # robot_2 1.9 m from the goal
    twists = [[1.0, 0.0, 0.0]] * 3
    r, term = first_world(task.step(snapshot(poses, twists, t=1.0)))
    assert term.all() and task.done()[0]
    assert np.all(r > task.params.reward.goal_bonus - 1.0)
    r, _ = first_world(task.step(snapshot(poses, twists, t=1.05)))
    assert np.all(r == 0.0)  # finished robots earn nothing more
    m = task.episode_metrics()
    assert m["time_to_goal_s"] == pytest.approx(1.0) and m["goal_progress"] == 1.0
    assert task.steps[0] == 1  # steps after the end are not counted


def test_one_robot_outside_the_goal_circle_is_not_arrival():
    task = _three_robot_task()
    _, term = first_world(task.step(snapshot([[4.5, 0.0, 0.0], [5.0, 0.5, 0.0], [7.1, 0.0, 0.0]])))
    assert not term.any() and not task.done()[0]


# ---- episode metrics ----------------------------------------------------------------------


def _run(task, frames):
    for k, (poses, twists) in enumerate(frames):
        task.step(snapshot(poses, twists, t=0.05 * (k + 1)))
    return task.episode_metrics()


def test_metrics_and_success_of_an_aligned_cohesive_flock():
    task = _three_robot_task()
    east = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]  # robot_1 faces +y: body -y is east
    frames = [
        ([[2.0, 0.0, 0.0], [3.0, 0.0, math.pi / 2], [2.0, 1.0, 0.0]], east),
        ([[4.0, 0.0, 0.0], [5.0, 0.0, math.pi / 2], [4.0, 1.0, 0.0]], east),
    ]
    m = _run(task, frames)
    assert m["success_rate"] == 1.0 and m["collision_rate"] == 0.0
    assert m["order_parameter"] == pytest.approx(1.0)
    spread = np.linalg.norm(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]) - [1 / 3, 1 / 3], axis=1).mean()
    assert m["cohesion_m"] == pytest.approx(spread)
    assert m["min_separation_m"] == pytest.approx(1.0)
    assert m["time_to_goal_s"] == pytest.approx(0.1)
    assert m["robots"][0]["path_length_m"] == pytest.approx(4.0)
    assert all(r["success"] for r in m["robots"])


def test_a_disordered_flock_fails_even_on_arrival():
    task = _three_robot_task()
    # Each robot travels a different way: order parameter |(1,0)+(0,1)+(-1,0)|/3 = 1/3.
    twists = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]
    m = _run(task, [([[4.0, 0.0, 0.0], [5.0, 0.0, math.pi / 2], [4.0, 1.0, 0.0]], twists)])
    assert m["order_parameter"] == pytest.approx(1 / 3)
    assert m["time_to_goal_s"] is not None and m["success_rate"] == 0.0


def test_a_straggler_beyond_the_cohesion_radius_fails_the_flock():
    task = _three_robot_task()
    east = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]
    frames = [
        ([[2.0, 0.0, 0.0], [3.0, 0.0, math.pi / 2], [-6.0, 1.0, 0.0]], east),  # robot_2 left behind
        ([[4.0, 0.0, 0.0], [5.0, 0.0, math.pi / 2], [4.0, 1.0, 0.0]], east),
    ]
    m = _run(task, frames)
    assert m["max_spread_m"] > task.params.cohesion_radius_m
    assert m["time_to_goal_s"] is not None and m["success_rate"] == 0.0


def test_idle_flock_metrics():
    task = _three_robot_task()
    m = _run(task, [(STARTS, None)] * 3)
    assert m["order_parameter"] == 0.0 and m["goal_progress"] == pytest.approx(0.0)
    assert m["success_rate"] == 0.0 and m["time_to_goal_s"] is None


# ---- checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"goal_region": {"min": [5.0, -6.0], "max": [12.0, 6.0]}}, "task.params.goal_region", "outside the arena"),
        ({"goal_radius_m": 0.3}, "task.params.goal_radius_m", "cannot hold 8 robots"),
        ({"lidar_obs_beams": 5}, "task.params.lidar_obs_beams", "must divide sensors.lidar.beams"),
        ({"min_order_parameter": 1.5}, "task.params.min_order_parameter", ""),
    ],
)
def test_impossible_params_are_reported(change, key, reason):
    data = shipped_world_data("flocking")
    data["task"]["params"].update(change)
    with pytest.raises(WorldFileError) as err:
        load_world_data(data, "bad_flocking.yaml")
    text = str(err.value)
    assert key in text and reason in text


# ---- batched env and baseline -----------------------------------------------------------


def test_batched_env_runs_and_restarts_worlds():
    data = shipped_world_data("flocking")
    data["task"]["params"]["max_episode_s"] = 1.0
    env = BatchedEnv(load_world_data(data, "short_flocking.yaml"), 8, seed=0)
    obs = env.reset()
    lo, hi = env.task.observation_bounds()
    rng = np.random.default_rng(0)
    ended = []
    for _ in range(25):
        out = env.step(rng.uniform(-1, 1, (8, env.num_agents, 2)))
        assert out.obs.shape == (8, 8, env.obs_dim) and out.obs.dtype == np.float32
        assert np.all(out.obs >= lo) and np.all(out.obs <= hi)
        assert np.isfinite(out.rewards).all()
        ended += out.episodes
    assert obs.shape == (8, 8, env.obs_dim)
    assert len(ended) == 8  # every world hit the 20-step limit once
    assert all(0.0 <= e["order_parameter"] <= 1.0 and e["success_rate"] == 0.0 for e in ended)


def test_boids_baseline_beats_standing_still():
    env = MultiRobotEnv(FLOCKING)
    try:
        ctx = PolicyContext.from_task(env.task)
        boids = summarise(run_episodes(env, make_policy("scripted", ctx), seeds=[0, 1, 2]))
        idle = summarise(run_episodes(env, make_policy("idle", ctx), seeds=[0]))
    finally:
        env.close()
    assert idle["success_rate"] == 0.0 and idle["goal_progress"] == pytest.approx(0.0)
    assert boids["success_rate"] >= 2 / 3, boids["per_episode"]
    assert boids["goal_progress"] > 0.9 and boids["order_parameter"] > 0.9
    assert boids["collisions"] == 0
