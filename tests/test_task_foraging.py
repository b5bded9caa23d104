"""Foraging task: the shipped world, the env contract, observation, reward and metric
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
from worlds.tasks.foraging import CARRIED, DELIVERED, FLOOR


def _world(**params) -> dict:
    """A 10 m arena, two disc robots at (2, 0) and (-2, 2) facing +x, two items."""
    region = {"min": [-4.5, -4.5], "max": [4.5, 4.5]}
    return disc_world(
        "foraging", 10.0, [[2.0, 0.0, 0.0], [-2.0, 2.0, 0.0]], {"items": 2, "item_region": region, **params}
    )


def _task():
    """The two-robot task with its items moved to (3, 0) and (-4, -4)."""
    task = make_task(load_world_data(_world(), source="t.yaml"))
    task.reset(np.random.default_rng(0), np.array([[[2.0, 0.0, 0.0], [-2.0, 2.0, 0.0]]]))
    task.item_pos[0] = [[3.0, 0.0], [-4.0, -4.0]]
    return task


def test_shipped_world_loads():
    world = load_world("foraging")
    task = make_task(world)
    assert world.backend == "kinematic" and world.num_robots == 6
    assert task.observation_size == 2 + 1 + 3 + 4 + 3 * 3 + 5 * 3
    assert list(task.observation_slices()) == ["velocity", "carrying", "nest", "walls", "items", "neighbours"]
    assert task.action_layout() == "holonomic"


def test_pettingzoo_parallel_api():
    env = MultiRobotEnv(load_world("foraging"))
    try:
        assert env.backend.name == "kinematic"
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()


def test_observations_stay_in_bounds_and_episodes_repeat():
    env = MultiRobotEnv(load_world("foraging"))
    try:
        obs, _ = env.reset(seed=4)
        items = env.task.item_pos.copy()
        rng = np.random.default_rng(0)
        for _ in range(60):
            for agent, o in obs.items():
                assert env.observation_space(agent).contains(o), agent
            obs, *_ = env.step({a: env.action_space(a).sample() * rng.uniform() for a in env.agents})
        env.reset(seed=5)
        env.reset(seed=4)
        np.testing.assert_array_equal(env.task.item_pos, items)
    finally:
        env.close()


def test_items_and_nest_are_seen_in_the_robot_frame():
    task = _task()
    s = task.observation_slices()
    obs = task.observe(snapshot([[2.0, 0.0, math.pi / 2], [-2.0, 2.0, 0.0]]))[0]
    # Facing +y, the item 1 m east is 1 m to the right; the nest 2 m west is 2 m to the left.
    np.testing.assert_allclose(obs[0, s["items"]][:3], [0.0, -1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(obs[0, s["items"]][3:], 0.0)  # (-4, -4) is beyond 3 m
    np.testing.assert_allclose(obs[0, s["nest"]], [0.0, 2.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(obs[1, s["items"]], 0.0)  # robot_1 sees no item
    # Walls of the 10 m arena from (2, 0) facing +y: all 3 m or more away (clipped at 3 m).
    np.testing.assert_allclose(obs[0, s["walls"]], [3.0, 3.0, 3.0, 3.0], atol=1e-6)
    obs = task.observe(snapshot([[4.5, 0.0, math.pi / 2], [-2.0, 2.0, 0.0]]))[0]
    np.testing.assert_allclose(obs[0, s["walls"]], [3.0, 3.0, 3.0, 0.5], atol=1e-6)  # the east wall, to its right


def test_pickup_delivery_rewards_and_metrics():
    task = _task()
    r, term = (a[0] for a in task.step(snapshot([[2.0, 0.0, 0.0], [-2.0, 2.0, 0.0]])))
    np.testing.assert_allclose(r, [-0.01, -0.01])  # nobody moved: time only
    # robot_0 gains 0.5 m on the item at (3, 0); robot_1 has nothing in sight: no shaping.
    r, _ = (a[0] for a in task.step(snapshot([[2.5, 0.0, 0.0], [-2.5, 2.0, 0.0]], t=0.1)))
    np.testing.assert_allclose(r, [0.5 * 0.5 - 0.01, -0.01], atol=1e-9)
    # Within 0.3 m: robot_0 picks it up (and still earns the metres it gained).
    r, _ = (a[0] for a in task.step(snapshot([[2.8, 0.0, 0.0], [-2.5, 2.0, 0.0]], t=0.15)))
    assert r[0] == pytest.approx(0.5 * 0.3 + 1.0 - 0.01)
    assert task.item_state[0, 0] == CARRIED and task.carrying[0, 0] == 0
    obs = task.observe(snapshot([[2.8, 0.0, 0.0], [-2.5, 2.0, 0.0]]))[0]
    s = task.observation_slices()
    assert obs[0, s["carrying"]][0] == 1.0 and obs[1, s["carrying"]][0] == 0.0
    # Into the nest: shaping toward the nest, then the delivery bonus; robot_1 bumps a wall.
    r, term = (a[0] for a in task.step(snapshot([[0.5, 0.0, 0.0], [-2.5, 2.0, 0.0]], contacts=[False, True], t=0.2)))
    assert r[0] == pytest.approx(0.5 * 2.3 + 10.0 - 0.01)
    assert r[1] == pytest.approx(-2.0 - 0.01)
    assert task.item_state[0, 0] == DELIVERED and not term.any() and not task.done()[0]
    r, _ = (a[0] for a in task.step(snapshot([[0.5, 0.0, 0.0], [-2.5, 2.0, 0.0]], contacts=[False, True], t=0.25)))
    assert r[1] == pytest.approx(-0.01)  # the same contact is penalised once
    m = task.episode_metrics()
    assert m["items_delivered"] == 1 and m["delivered_fraction"] == 0.5 and m["pickups"] == 1
    assert m["success_rate"] == 0.0 and m["time_to_deliver_all_s"] is None
    assert m["collisions"] == 1 and m["collision_rate"] == 0.5
    assert m["delivery_rate_per_min"] == pytest.approx(60.0 / 0.25)
    assert m["robots"][0]["deliveries"] == 1 and m["robots"][1]["collisions"] == 1


def test_last_delivery_ends_the_episode_for_everyone():
    task = _task()
    task.step(snapshot([[2.0, 0.0, 0.0], [-3.9, -3.9, 0.0]]))  # robot_1 takes the item at (-4, -4)
    task.step(snapshot([[2.95, 0.0, 0.0], [-1.0, -1.0, 0.0]], t=0.1))  # robot_0 takes (3, 0)
    assert (task.item_state[0] == CARRIED).all()
    _, term = (a[0] for a in task.step(snapshot([[2.95, 0.0, 0.0], [-0.3, -0.3, 0.0]], t=0.15)))
    assert not term.any()
    r, term = (a[0] for a in task.step(snapshot([[0.7, 0.0, 0.0], [-0.3, -0.3, 0.0]], t=0.2)))
    assert term.all() and task.done()[0] and task.active.all()
    assert r[0] > 10.0
    r, term = (a[0] for a in task.step(snapshot([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], t=0.25)))
    np.testing.assert_allclose(r, 0.0)  # after the end nothing is earned ...
    assert not term.any()  # ... and the end is reported once
    m = task.episode_metrics()
    assert m["success_rate"] == 1.0 and m["time_to_deliver_all_s"] == pytest.approx(0.2)
    assert m["episode_s"] == pytest.approx(0.2)


def test_two_robots_never_take_the_same_item():
    task = _task()
    task.step(snapshot([[2.9, 0.1, 0.0], [3.1, -0.1, 0.0]]))
    assert task.carrying[0].tolist() == [0, -1]  # the lower-numbered robot wins the tie
    assert task.item_state[0].tolist() == [CARRIED, FLOOR]


def test_impossible_params_are_errors_naming_the_key():
    with pytest.raises(WorldFileError, match=r"task\.params\.nest: the nest .* reaches outside the arena"):
        load_world_data(_world(nest=[4.8, 0.0]), source="t.yaml")
    with pytest.raises(WorldFileError, match=r"task\.params\.item_region: cannot hold 2 items"):
        load_world_data(_world(item_region={"min": [-1.0, -1.0], "max": [1.0, 1.0]}), source="t.yaml")


def test_batched_env_runs_and_restarts_finished_worlds():
    env = BatchedEnv("foraging", 8, seed=0)
    env.reset(seed=0)
    lo, hi = env.task.observation_bounds()
    rng = np.random.default_rng(0)
    for _ in range(20):
        step = env.step(rng.uniform(-1, 1, (8, env.num_agents, 2)))
        assert step.obs.shape == (8, 6, env.obs_dim) and step.obs.dtype == np.float32
        assert np.all(step.obs >= lo) and np.all(step.obs <= hi)
        assert np.isfinite(step.rewards).all() and step.active.all()
    env.task.item_state[3] = DELIVERED  # world 3's team has finished
    env.task.carrying[3] = -1
    step = env.step(np.zeros((8, 6, 2)))
    assert step.world_done.tolist() == [w == 3 for w in range(8)] and not step.truncated.any()
    assert step.terminated[3].all() and step.episodes[0]["success_rate"] == 1.0
    assert not env.task.done()[3] and (env.task.item_state[3] == FLOOR).all()  # restarted


def test_scripted_baseline_beats_standing_still():
    env = MultiRobotEnv(load_world("foraging"))
    try:
        ctx = PolicyContext.from_task(env.task)
        scripted = summarise(run_episodes(env, make_policy("scripted", ctx), seeds=[0, 1, 2]))
        idle = summarise(run_episodes(env, make_policy("idle", ctx), seeds=[0, 1, 2]))
    finally:
        env.close()
    assert idle["delivered_fraction"] == 0.0 and idle["success_rate"] == 0.0
    assert scripted["delivered_fraction"] >= 0.8, scripted["per_episode"]
    assert scripted["success_rate"] >= 2 / 3, scripted["per_episode"]
