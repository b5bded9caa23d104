"""Coverage task: world file, env APIs, observation, reward and metric maths on constructed
snapshots, the batched env, and the greedy baseline against standing still."""

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

COVERAGE = REPO / "worlds" / "coverage.yaml"
# Three robots; robot_1 faces +y. Landmark 2 is covered by robot_2 from the start.
STARTS = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, math.pi / 2], [0.0, -2.2, 0.0]])
LANDMARKS = np.array([[0.0, 3.0], [4.0, 0.0], [0.0, -2.0]])


def _three_robot_task():
    data = shipped_world_data("coverage")
    data["robots"][0]["count"] = 3
    data["sensors"]["lidar"]["beams"] = 16  # pooled 2:1, to test the pooling
    data["robots"][0]["spawn"] = {"poses": [[0.0, 0.0, 0.0], [2.0, 0.0, 90.0], [0.0, -2.2, 0.0]]}
    data["task"]["params"]["landmarks"] = 3
    task = make_task(load_world_data(data, "three.yaml"))
    task._draw_landmarks = lambda rng: LANDMARKS.copy()
    task.reset(np.random.default_rng(0), STARTS[None])
    return task


# ---- world file and env APIs --------------------------------------------------------------


def test_world_file_loads():
    world = load_world("coverage")
    assert world.task.name == "coverage" and world.backend == "kinematic"
    assert world.num_robots == 6
    assert all(r.model.holonomic for r in world.robot_entries())
    task = make_task(world)
    assert set(task.observation_slices()) == {"velocity", "landmarks", "neighbours", "lidar"}
    assert task.observation_size == 2 + 4 * 4 + 5 * 3 + 8


def test_pettingzoo_parallel_api():
    env = MultiRobotEnv(load_world("coverage"))
    try:
        assert env.backend.name == "kinematic"
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()


def test_observations_stay_inside_the_bounds():
    env = MultiRobotEnv(COVERAGE)
    rng = np.random.default_rng(4)
    try:
        obs, _ = env.reset(seed=4)
        for _ in range(60):
            for agent, o in obs.items():
                assert env.observation_space(agent).contains(o), agent
            obs, *_ = env.step({a: rng.uniform(-1.0, 1.0, 2).astype(np.float32) for a in env.agents})
    finally:
        env.close()


def test_same_seed_same_landmarks():
    env = MultiRobotEnv(COVERAGE)
    try:
        a, _ = env.reset(seed=7)
        landmarks = env.task.landmarks.copy()
        env.reset(seed=8)
        assert not np.array_equal(landmarks, env.task.landmarks)
        b, _ = env.reset(seed=7)
        np.testing.assert_array_equal(landmarks, env.task.landmarks)
        for agent in a:
            np.testing.assert_array_equal(a[agent], b[agent])
        # Landmarks keep their distance from each other and stay in their region.
        gaps = np.linalg.norm(landmarks[0, :, None] - landmarks[0, None], axis=-1)[~np.eye(6, dtype=bool)]
        assert gaps.min() >= env.task.params.landmark_separation_m
        assert np.abs(landmarks).max() <= 5.0
    finally:
        env.close()


# ---- observation maths ------------------------------------------------------------------


def _landmark_slots(task, obs, robot):
    return obs[robot, task.observation_slices()["landmarks"]].reshape(-1, 4)


def test_landmarks_nearest_first_in_the_robot_frame_with_taken_flags():
    task = _three_robot_task()
    obs = task.observe(snapshot(STARTS))[0]
    # robot_0: landmark 2 (2 m, taken by robot_2), then 0 (3 m), then 1 (4 m), then padding.
    np.testing.assert_allclose(
        _landmark_slots(task, obs, 0),
        [[0.0, -2.0, 1.0, 1.0], [0.0, 3.0, 0.0, 1.0], [4.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]],
        atol=1e-6,
    )
    # robot_1 faces +y: landmark 1, 2 m east, is on its right; landmark 2 is behind-left.
    np.testing.assert_allclose(
        _landmark_slots(task, obs, 1)[:3],
        [[0.0, -2.0, 0.0, 1.0], [-2.0, 2.0, 1.0, 1.0], [3.0, 2.0, 0.0, 1.0]],
        atol=1e-6,
    )
    # robot_2 covers landmark 2 itself: not "taken by another"; landmark 0 is 5.2 m away: unseen.
    np.testing.assert_allclose(
        _landmark_slots(task, obs, 2),
        [[0.0, 0.2, 0.0, 1.0], [4.0, 2.2, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        atol=1e-6,
    )


def test_neighbours_velocity_and_lidar():
    task = _three_robot_task()
    twists = [[0.4, 0.1, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]
    lidar = np.full((3, 16), np.inf)
    lidar[1, 15] = 0.7  # last sector: beams 14 and 15
    obs = task.observe(snapshot(STARTS, twists, lidar=lidar))[0]
    s = task.observation_slices()
    np.testing.assert_allclose(obs[0, s["velocity"]], [0.4, 0.1], atol=1e-6)
    nb = obs[0, s["neighbours"]].reshape(-1, 5)
    # robot_1 2 m ahead driving +y in the map; robot_2 2.2 m to the right; padding.
    np.testing.assert_allclose(nb[0], [2.0, 0.0, 0.0, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(nb[1], [0.0, -2.2, 0.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(nb[2], 0.0)
    pooled = obs[1, s["lidar"]]
    assert pooled[7] == pytest.approx(0.7) and np.all(pooled[:7] == pytest.approx(5.0))
    lo, hi = task.observation_bounds()
    assert np.all(obs >= lo) and np.all(obs <= hi)


# ---- reward and metric maths ------------------------------------------------------------


def test_rewards_progress_coverage_holding_and_collision():
    task = _three_robot_task()
    w = task.params.reward
    # Before: nearest robot to each landmark is 3, 2 and 0.2 m away.
    cost0 = (3.0 + 2.0 + 0.2) / 3
    # robot_0 drives onto landmark 0; robot_1 touches something.
    poses = [[0.0, 2.8, 0.0], [2.0, 0.0, math.pi / 2], [0.0, -2.2, 0.0]]
    r, term = first_world(task.step(snapshot(poses, contacts=[False, True, False])))
    cost1 = (0.2 + 2.0 + 0.2) / 3
    shared = w.progress * (cost0 - cost1) + w.covered * 2 / 3
    np.testing.assert_allclose(r, [shared + w.holding, shared - w.collision_penalty, shared + w.holding], atol=1e-9)
    assert not term.any() and not task.done()[0]
    r, _ = first_world(task.step(snapshot(poses, contacts=[False, True, False], t=0.1)))
    np.testing.assert_allclose(r, [w.covered * 2 / 3 + w.holding, w.covered * 2 / 3, w.covered * 2 / 3 + w.holding])


def test_only_the_nearest_robot_holds_a_shared_landmark():
    task = _three_robot_task()
    poses = [[0.0, -1.75, 0.0], [2.0, 0.0, math.pi / 2], [0.0, -2.2, 0.0]]  # 0.25 m and 0.2 m away
    task.step(snapshot(poses))
    np.testing.assert_array_equal(task.holding[0], [False, False, True])


def test_metrics_time_to_full_coverage_and_success_at_the_end():
    task = _three_robot_task()
    task.step(snapshot([[0.0, 2.8, 0.0], [2.0, 0.0, math.pi / 2], [0.0, -2.2, 0.0]], t=0.05))
    task.step(snapshot([[0.0, 2.8, 0.0], [4.0, 0.1, math.pi / 2], [0.0, -2.2, 0.0]], t=0.10))
    m = task.episode_metrics()
    assert m["success_rate"] == 1.0 and m["coverage_fraction"] == 1.0
    assert m["time_to_full_coverage_s"] == pytest.approx(0.10)
    assert m["mean_coverage_fraction"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert m["landmark_distance_m"] == pytest.approx((0.2 + 0.1 + 0.2) / 3)
    assert all(r["success"] for r in m["robots"])
    assert m["robots"][1]["path_length_m"] == pytest.approx(math.hypot(2.0, 0.1))
    # Leaving a landmark before the end loses the episode; the first full cover stays recorded.
    task.step(snapshot([[0.0, 1.0, 0.0], [4.0, 0.1, math.pi / 2], [0.0, -2.2, 0.0]], t=0.15))
    m = task.episode_metrics()
    assert m["success_rate"] == 0.0 and m["coverage_fraction"] == pytest.approx(2 / 3)
    assert m["time_to_full_coverage_s"] == pytest.approx(0.10)
    assert [r["success"] for r in m["robots"]] == [False, True, True]
    assert m["collision_rate"] == 0.0 and m["collisions"] == 0


# ---- checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"landmarks": 7}, "task.params.landmarks", "need 7 robots"),
        ({"landmark_region": {"min": [-5.0, -5.0], "max": [7.0, 5.0]}}, "task.params.landmark_region", "outside"),
        ({"landmark_region": {"min": [-0.5, -0.5], "max": [0.5, 0.5]}}, "task.params.landmark_region", "cannot hold"),
        ({"lidar_obs_beams": 5}, "task.params.lidar_obs_beams", "must divide sensors.lidar.beams"),
        ({"cover_radius_m": 0.0}, "task.params.cover_radius_m", ""),
    ],
)
def test_impossible_params_are_reported(change, key, reason):
    data = shipped_world_data("coverage")
    data["task"]["params"].update(change)
    with pytest.raises(WorldFileError) as err:
        load_world_data(data, "bad_coverage.yaml")
    text = str(err.value)
    assert key in text and reason in text


def test_more_landmarks_than_robots_is_fine_when_one_robot_can_cover_two():
    data = shipped_world_data("coverage")
    data["task"]["params"].update({"landmarks": 7, "landmark_separation_m": 0.7})
    assert make_task(load_world_data(data, "dense.yaml")).params.landmarks == 7


# ---- batched env and baseline -----------------------------------------------------------


def test_batched_env_runs_and_restarts_worlds():
    data = shipped_world_data("coverage")
    data["task"]["params"]["max_episode_s"] = 1.0
    env = BatchedEnv(load_world_data(data, "short_coverage.yaml"), 8, seed=0)
    obs = env.reset()
    lo, hi = env.task.observation_bounds()
    rng = np.random.default_rng(0)
    ended = []
    for _ in range(25):
        out = env.step(rng.uniform(-1, 1, (8, env.num_agents, 2)))
        assert out.obs.shape == (8, 6, env.obs_dim) and out.obs.dtype == np.float32
        assert np.all(out.obs >= lo) and np.all(out.obs <= hi)
        assert np.isfinite(out.rewards).all() and out.active.all()
        ended += out.episodes
    assert obs.shape == (8, 6, env.obs_dim)
    assert len(ended) == 8  # every world hit the 20-step limit once
    assert all(0.0 <= e["coverage_fraction"] <= 1.0 for e in ended)


def test_greedy_baseline_beats_standing_still():
    env = MultiRobotEnv(COVERAGE)
    try:
        ctx = PolicyContext.from_task(env.task)
        greedy = summarise(run_episodes(env, make_policy("scripted", ctx), seeds=range(4)))
        idle = summarise(run_episodes(env, make_policy("idle", ctx), seeds=range(4)))
    finally:
        env.close()
    assert idle["success_rate"] == 0.0 and idle["mean_coverage_fraction"] == 0.0
    assert greedy["success_rate"] >= 0.5, greedy["per_episode"]
    assert greedy["mean_coverage_fraction"] > 0.6
    assert greedy["landmark_distance_m"] < 0.5 * idle["landmark_distance_m"]
    assert greedy["collisions"] == 0
