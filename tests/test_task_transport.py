"""Transport task: the shipped world, the env contract, the pushing model, reward and metric
maths on constructed snapshots, batches, and the scripted baseline against standing still."""

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

STARTS = [[-3.0, -2.0, 0.0], [-3.0, 2.0, 0.0]]
REACH = 0.5 + 0.15  # object radius + disc radius: centre distance at contact
DT = 0.05


def _world(**params) -> dict:
    """An 8 m arena, two disc robots on the west side facing +x."""
    regions = {
        "object_region": {"min": [-1.0, -1.0], "max": [0.0, 1.0]},
        "goal_region": {"min": [2.0, -1.0], "max": [3.0, 1.0]},
    }
    return disc_world("transport", 8.0, STARTS, {**regions, **params})


def _task(obj=(0.0, 0.0), goal=(3.0, 0.0)):
    """The two-robot task with the object at ``obj`` and the goal at ``goal``."""
    task = make_task(load_world_data(_world(), source="t.yaml"))
    task.reset(np.random.default_rng(0), np.array([STARTS]))
    task.object_pos[0], task.goal[0] = obj, goal
    task.start_distance_m[0] = math.dist(obj, goal)
    return task


def _behind(angle_deg: float, overlap: float, centre=(0.0, 0.0)) -> list[float]:
    """A robot pose ``overlap`` metres into the object, ``angle_deg`` off dead astern (-x)."""
    a = math.radians(180.0 + angle_deg)
    d = REACH - overlap
    return [centre[0] + d * math.cos(a), centre[1] + d * math.sin(a), 0.0]


def test_shipped_world_loads():
    world = load_world("transport")
    task = make_task(world)
    assert world.backend == "kinematic" and world.num_robots == 4
    assert task.observation_size == 2 + 4 + 5 + 3 + 5 * 3
    assert list(task.observation_slices()) == ["velocity", "walls", "object", "goal", "neighbours"]


def test_pettingzoo_parallel_api():
    env = MultiRobotEnv(load_world("transport"))
    try:
        assert env.backend.name == "kinematic"
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()


def test_observations_stay_in_bounds_and_episodes_repeat():
    env = MultiRobotEnv(load_world("transport"))
    try:
        obs, _ = env.reset(seed=4)
        drawn = env.task.object_pos.copy(), env.task.goal.copy()
        assert np.linalg.norm(drawn[1] - drawn[0]) >= env.task.params.min_goal_distance_m
        rng = np.random.default_rng(0)
        for _ in range(60):
            for agent, o in obs.items():
                assert env.observation_space(agent).contains(o), agent
            obs, *_ = env.step({a: env.action_space(a).sample() * rng.uniform() for a in env.agents})
        env.reset(seed=5)
        env.reset(seed=4)
        np.testing.assert_array_equal(env.task.object_pos, drawn[0])
        np.testing.assert_array_equal(env.task.goal, drawn[1])
    finally:
        env.close()


def test_object_and_goal_are_seen_in_the_robot_frame():
    task = _task()
    task.object_vel[0] = [0.2, 0.0]
    s = task.observation_slices()
    # robot_0 1 m west of the object, facing +y: the object is 1 m to its right, moving ahead... no:
    # map +x is the robot's -y, so the object is at (0, -1) and moves along -y at 0.2 m/s.
    obs = task.observe(snapshot([[-1.0, 0.0, math.pi / 2], [-3.0, 2.0, 0.0]]))[0]
    np.testing.assert_allclose(obs[0, s["object"]], [0.0, -1.0, 0.0, -0.2, 1.0 - REACH], atol=1e-6)
    np.testing.assert_allclose(obs[0, s["goal"]], [0.0, -3.0, 3.0], atol=1e-6)  # goal 3 m beyond the object
    np.testing.assert_allclose(obs[1, s["goal"]], [3.0, 0.0, 3.0], atol=1e-6)
    inside = task.observe(snapshot([_behind(0, 0.1), [-3.0, 2.0, 0.0]]))[0]
    assert inside[0, s["object"]][4] == pytest.approx(-0.1)  # negative gap: overlapping


def test_one_pusher_moves_it_at_half_speed_two_at_full():
    one = _task()
    one._last_pos[0, 0] = _behind(0, 0.05)[:2]  # already in contact: no approach term
    r, _ = (a[0] for a in one.step(snapshot([_behind(0, 0.05), STARTS[1]])))
    # Capped at max_speed × 1/2 pushers for one control period.
    np.testing.assert_allclose(one.object_pos[0], [0.25 * DT, 0.0], atol=1e-9)
    np.testing.assert_allclose(one.object_vel[0], [0.25, 0.0], atol=1e-9)
    depth = 0.05 - 0.25 * DT  # what the object could not clear
    assert r[0] == pytest.approx(5.0 * 0.25 * DT + 0.01 - 1.0 * depth - 0.01)
    # robot_1 shares the object's progress and gains no approach (it stood still).
    assert r[1] == pytest.approx(5.0 * 0.25 * DT - 0.01)

    two = _task()
    two.step(snapshot([_behind(30, 0.05), _behind(-30, 0.05)]))
    np.testing.assert_allclose(two.object_pos[0], [0.5 * DT, 0.0], atol=1e-9)  # twice as fast, straight

    gentle = _task()  # a push the object can follow at once: it clears the robot fully
    gentle.step(snapshot([_behind(0, 0.01), STARTS[1]]))
    np.testing.assert_allclose(gentle.object_pos[0], [0.01, 0.0], atol=1e-9)


def test_object_moves_along_the_contact_normal_and_stops_at_walls():
    side = _task()
    side.step(snapshot([_behind(90, 0.005), STARTS[1]]))  # pushed from its south side
    np.testing.assert_allclose(side.object_pos[0], [0.0, 0.005], atol=1e-9)
    wall = _task(obj=(4.0 - 0.5, 0.0))  # touching the east wall
    wall.step(snapshot([_behind(0, 0.05, centre=(3.5, 0.0)), STARTS[1]]))
    np.testing.assert_allclose(wall.object_pos[0], [3.5, 0.0], atol=1e-9)
    np.testing.assert_allclose(wall.object_vel[0], 0.0, atol=1e-9)
    idle = _task()
    idle.step(snapshot(STARTS))
    np.testing.assert_allclose(idle.object_pos[0], 0.0)  # no pusher, no motion


def test_approach_collision_and_goal_rewards_and_metrics():
    task = _task(obj=(2.0, 0.0), goal=(3.0, 0.0))
    # robot_0 comes 1 m nearer the object's edge; robot_1 touches the wall.
    task.step(snapshot([[0.0, 0.0, 0.0], STARTS[1]]))
    r, term = (a[0] for a in task.step(snapshot([[1.0, 0.0, 0.0], STARTS[1]], contacts=[False, True], t=0.1)))
    assert r[0] == pytest.approx(0.5 * 1.0 - 0.01)
    assert r[1] == pytest.approx(-2.0 - 0.01)
    assert not term.any()
    # Pushed to within 0.5 m of the goal: every robot earns the bonus; the episode ends.
    task.object_pos[0] = [2.51, 0.0]
    r, term = (a[0] for a in task.step(snapshot([_behind(0, 0.01, centre=(2.51, 0.0)), STARTS[1]], t=0.15)))
    assert term.all() and task.done()[0] and task.active.all()
    assert r[1] == pytest.approx(10.0 + 5.0 * 0.01 - 0.01)
    m = task.episode_metrics()
    assert m["success_rate"] == 1.0 and m["time_to_goal_s"] == pytest.approx(0.15)
    assert m["final_distance_m"] == pytest.approx(0.48) and m["start_distance_m"] == pytest.approx(1.0)
    assert m["collisions"] == 1 and m["collision_rate"] == 0.5
    assert m["robots"][0]["contact_s"] == pytest.approx(DT) and m["robots"][1]["contact_s"] == 0.0
    r, term = (a[0] for a in task.step(snapshot([_behind(0, 0.3, centre=(2.51, 0.0)), STARTS[1]], t=0.2)))
    np.testing.assert_allclose(r, 0.0)  # after the end nothing is earned or moved
    assert not term.any() and task.object_pos[0, 0] == pytest.approx(2.52)


def test_impossible_params_are_errors_naming_the_key():
    with pytest.raises(WorldFileError, match=r"task\.params\.goal_region: no goal 9 m"):
        load_world_data(_world(min_goal_distance_m=9.0), source="t.yaml")
    with pytest.raises(WorldFileError, match=r"task\.params\.object_region: region .* reaches outside the arena"):
        load_world_data(_world(object_region={"min": [-5.0, -1.0], "max": [0.0, 1.0]}), source="t.yaml")


def test_batched_env_runs_and_restarts_finished_worlds():
    env = BatchedEnv("transport", 8, seed=0)
    env.reset(seed=0)
    lo, hi = env.task.observation_bounds()
    rng = np.random.default_rng(0)
    for _ in range(20):
        step = env.step(rng.uniform(-1, 1, (8, env.num_agents, 2)))
        assert step.obs.shape == (8, 4, env.obs_dim) and step.obs.dtype == np.float32
        assert np.all(step.obs >= lo) and np.all(step.obs <= hi)
        assert np.isfinite(step.rewards).all() and step.active.all()
    env.task.object_pos[2] = env.task.goal[2]  # world 2's object has arrived
    step = env.step(np.zeros((8, 4, 2)))
    assert step.world_done.tolist() == [w == 2 for w in range(8)] and step.terminated[2].all()
    assert step.episodes[0]["success_rate"] == 1.0
    assert not env.task.done()[2]  # restarted
    assert np.linalg.norm(env.task.goal[2] - env.task.object_pos[2]) >= env.task.params.min_goal_distance_m


def test_scripted_baseline_beats_standing_still():
    env = MultiRobotEnv(load_world("transport"))
    try:
        ctx = PolicyContext.from_task(env.task)
        scripted = summarise(run_episodes(env, make_policy("scripted", ctx), seeds=[0, 1, 2]))
        idle = summarise(run_episodes(env, make_policy("idle", ctx), seeds=[0, 1, 2]))
    finally:
        env.close()
    assert idle["progress_fraction"] == 0.0 and idle["success_rate"] == 0.0
    assert scripted["progress_fraction"] >= 0.7, scripted["per_episode"]
    assert scripted["success_rate"] >= 2 / 3, scripted["per_episode"]
