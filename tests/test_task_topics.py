"""A task's state on ROS messages, without a graph: the observation the policy node rebuilds
from messages equals the env's own, the sim node's episode bookkeeping equals the env's,
and the stepping of each engine is what the node asks for."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

from policies.base import PolicyContext
from policies.registry import make_policy
from policies.rollout import run_episode
from ros_nodes import conversions as conv
from ros_nodes.task_topics import (
    TaskMessageError,
    cloud_columns,
    marker_array,
    parse_status,
    point_cloud,
    status_message,
    task_topics,
)
from ros_nodes.topic_observation import TopicObservation
from sim_bridge.env import MultiRobotEnv
from sim_bridge.fleet import Fleet, step_for_rate
from sim_bridge.task_run import EpisodeState, TaskRun
from worlds import load_world, with_changes, with_robot_count


@pytest.fixture(autouse=True)
def one_thread():
    """One robot team at a time, as the policy node runs it: threads only add wake-ups."""
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


# Worlds as the env runs them; navigation on the kinematic engine to keep the test fast (the
# observation code does not depend on the engine).
WORLDS = ["navigation", "flocking", "coverage", "foraging", "pursuit", "transport"]


def _world(name: str):
    world = load_world(name)
    return with_changes(world, {"backend": "kinematic"}) if world.backend != "kinematic" else world


def _advance(env: MultiRobotEnv, steps: int, until=None) -> None:
    """Drive the env with its scripted baseline for ``steps`` steps (or until ``until(env)``)."""
    policy = make_policy("scripted", PolicyContext.from_task(env.task))
    obs, _ = env.reset(seed=3)
    policy.reset(3)
    for _ in range(steps):
        if until is not None and until(env):
            return
        obs, *_ = env.step(policy.act(obs))
        if not env.agents:
            raise AssertionError("the episode ended before the state the test wants")
    if until is not None:
        raise AssertionError(f"no such state within {steps} steps")


def _messages_from(env: MultiRobotEnv, stamp: float):
    """What the sim node publishes for the env's state: odometry, scans and task state."""
    snap, world = env.snapshot, env.world
    codec = task_topics(env.task)
    odoms, scans = [], []
    for r in env.robots:
        x, y, yaw = snap.poses[0, r.index]
        vx, vy, wz = snap.twists[0, r.index]
        odoms.append(conv.odometry(stamp, r.name, x, y, yaw, vx, vy, wz))
        scans.append(conv.laser_scan(stamp, r.name, snap.lidar[0, r.index], world.sensors.lidar, 20.0))
    task_msgs = {**codec.static_messages(stamp), **codec.dynamic_messages(stamp)}
    return odoms, scans, task_msgs


# The states worth checking: mid-episode, and for the tasks with changing state one where it
# has changed (an item carried and some delivered; an evader captured; the object moving).
def _carrying_and_delivered(env):
    from worlds.tasks.foraging import DELIVERED

    task = env.task
    return (task.carrying[0] >= 0).any() and (task.item_state[0] == DELIVERED).any()


STATES = {
    "navigation": dict(steps=60),
    "flocking": dict(steps=60),
    "coverage": dict(steps=60),
    "foraging": dict(steps=1200, until=_carrying_and_delivered),
    "pursuit": dict(steps=800, until=lambda env: env.task.captured[0].any()),
    "transport": dict(steps=800, until=lambda env: np.linalg.norm(env.task.object_vel[0]) > 0.05),
}


@pytest.mark.parametrize("name", WORLDS)
def test_observation_from_topics_is_the_envs_own(name):
    env = MultiRobotEnv(_world(name))
    try:
        _advance(env, **STATES[name])
        expected = env.task.observe(env.snapshot)[0]
        odoms, scans, task_msgs = _messages_from(env, stamp=1234.5)
        inputs = TopicObservation(env.world, driven=list(range(len(env.robots))))
        assert set(inputs.missing()) == {t.name for t in inputs.topics} | {f"{r.name}/odom" for r in env.robots} | (
            {f"{r.name}/scan" for r in env.robots} if inputs.uses_lidar else set()
        )
        for topic, msg in task_msgs.items():
            inputs.apply(topic, msg)
        for i, (odom, scan) in enumerate(zip(odoms, scans, strict=True)):
            inputs.set_odom(i, odom)
            inputs.set_scan(i, scan)
        assert inputs.missing() == []
        assert inputs.complete_at(1234.5)
        got = inputs.observe()
    finally:
        env.close()
    assert got.shape == expected.shape
    # Only the yaw's trip through a quaternion differs (~1e-16 rad): float32 rounding at most.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # What is seen and what is not (present flags, carried items, captured evaders) is exact.
    np.testing.assert_array_equal(got == 0, expected == 0)


def test_states_of_the_swarm_tasks_round_trip_their_changing_parts():
    env = MultiRobotEnv(load_world("foraging"))
    try:
        _advance(env, **STATES["foraging"])
        from worlds.tasks.foraging import CARRIED, FLOOR

        codec = task_topics(env.task)
        (items,) = codec.dynamic_messages(2.0).values()
        cols = cloud_columns(items, ("x", "y", "carrier"))
        task = env.task
        on_floor = task.item_state[0] == FLOOR
        carried = task.item_state[0] == CARRIED
        assert len(cols["x"]) == on_floor.sum() + carried.sum() < task.params.items  # delivered ones left out
        assert set(cols["carrier"][cols["carrier"] >= 0]) == set(np.flatnonzero(task.carrying[0] >= 0))
        inputs = TopicObservation(env.world, [0])
        inputs.apply("task/items", items)
        assert (inputs.task.carrying[0] >= 0).tolist() == (task.carrying[0] >= 0).tolist()
        np.testing.assert_array_equal(
            inputs.task.item_pos[0][inputs.task.item_state[0] == FLOOR], task.item_pos[0][on_floor]
        )
    finally:
        env.close()


def test_messages_that_cannot_be_the_tasks_are_refused_with_the_reason():
    world = load_world("coverage")
    inputs = TopicObservation(world, [0])
    codec = task_topics(inputs.task)
    with pytest.raises(TaskMessageError, match=r"landmarks: 5 in the message, the world has 6"):
        inputs.apply("task/landmarks", codec_landmarks(codec, 5))
    with pytest.raises(TaskMessageError, match="the coverage task has no topic task/evaders"):
        inputs.apply("task/evaders", point_cloud(0.0, {"x": np.zeros(1), "y": np.zeros(1)}))
    pursuit = TopicObservation(load_world("pursuit"), [0])
    with pytest.raises(TaskMessageError, match="point cloud has no field vx, vy"):
        pursuit.apply("task/evaders", point_cloud(0.0, {"x": np.zeros(2), "y": np.zeros(2), "z": np.zeros(2)}))
    with pytest.raises(TaskMessageError, match="evaders: 3 in the message, the world has at most 2"):
        cols = {k: np.zeros(3) for k in ("x", "y", "z", "vx", "vy")}
        pursuit.apply("task/evaders", point_cloud(0.0, cols))
    truncated = point_cloud(0.0, {k: np.zeros(2) for k in ("x", "y", "z", "vx", "vy")})
    truncated.data = bytes(truncated.data)[:20]
    with pytest.raises(TaskMessageError, match="2 points has 20 bytes"):
        pursuit.apply("task/evaders", truncated)


def codec_landmarks(codec, count: int):
    from ros_nodes.task_topics import pose_array

    return pose_array(0.0, np.arange(2 * count, dtype=float).reshape(count, 2))


def test_point_clouds_keep_float64_values_and_int_fields():
    xy = np.array([[1.0 / 3.0, -2.5], [4.25, 1e-9]])
    msg = point_cloud(7.0, {"x": xy[:, 0], "y": xy[:, 1], "z": np.zeros(2), "carrier": np.array([-1, 3], np.int32)})
    assert msg.header.frame_id == "map" and msg.width == 2 and msg.point_step == 28
    cols = cloud_columns(msg, ("x", "y", "carrier"))
    np.testing.assert_array_equal(np.stack([cols["x"], cols["y"]], axis=-1), xy)  # bit for bit
    assert cols["carrier"].tolist() == [-1, 3]


@pytest.mark.parametrize("name", WORLDS)
def test_markers_are_in_the_map_frame_and_a_new_episode_clears_the_old(name):
    env = MultiRobotEnv(_world(name))
    try:
        env.reset(seed=0)
        msg = marker_array(task_topics(env.task), 3.0, clear=True)
    finally:
        env.close()
    wipe, *markers = msg.markers
    assert wipe.action == wipe.DELETEALL
    assert markers and all(m.header.frame_id == "map" and m.action == m.ADD for m in markers)
    assert len({(m.ns, m.id) for m in markers}) == len(markers)  # no marker overwrites another


def test_status_carries_the_episode_and_its_metrics():
    metrics = {"success_rate": 1.0, "captures": np.int64(2), "time_to_capture_all_s": None, "robots": [{"a": True}]}
    msg = status_message(12.5, "pursuit", "pursuit", 3, 1003, "succeeded", 10.7, metrics)
    values = {kv.key: kv.value for kv in msg.status[0].values}
    assert values["captures"] == "2" and values["time_to_capture_all_s"] == "" and values["state"] == "succeeded"
    status = parse_status(msg)
    assert (status.episode, status.seed, status.state, status.time_s) == (3, 1003, "succeeded", 10.7)
    assert status.metrics == {
        "success_rate": 1.0,
        "captures": 2,
        "time_to_capture_all_s": None,
        "robots": [{"a": True}],
    }
    assert status.over


# ---- the sim node's episode: the env's, on a fleet --------------------------------------------
@pytest.mark.parametrize("name", ["navigation", "coverage", "transport"])
def test_task_run_on_a_fleet_ends_and_scores_episodes_as_the_env_does(name):
    """Per-robot ends (navigation parks each robot at its goal), the time limit (coverage
    runs to it) and team ends (transport): same metrics as the env, step for step, with the
    episode's clock started late (the sim node starts it at the first command)."""
    world = _world(name)
    if name == "navigation":
        world = with_robot_count(world, 2)  # two robots finish at different steps: enough, and faster
    env = MultiRobotEnv(world)
    ctx = PolicyContext.from_task(env.task)
    try:
        reference = run_episode(env, make_policy("scripted", ctx), seed=5).metrics
    finally:
        env.close()
    fleet = Fleet(world, 5, world.control_dt)
    run = TaskRun(fleet, seed=5)
    for _ in range(7):  # the world waits for its controller: time runs, nothing moves
        fleet.step()
        assert run.end_of_control_period().sum() == 0 and run.time_s == 0.0
    run.start()
    policy = make_policy("scripted", ctx)
    policy.reset(5)
    steps = 0
    try:
        while not run.over:
            snap = run.snapshot()
            obs = fleet.task.observe(snap)[0]
            acting = {r.name: obs[r.index] for r in fleet.robots if not run.done[r.index]}
            for name_, (v, w) in policy.act(acting).items():
                fleet.command(int(name_.split("_")[1]), float(v), float(w))
            fleet.step()
            assert run.at_control_boundary()
            run.end_of_control_period()
            steps += 1
        assert fleet.parked.all()
    finally:
        fleet.close()
    assert _rounded(run.metrics()) == _rounded(reference)  # times differ by float rounding only
    if name == "navigation":
        assert sorted(r["time_to_goal_s"] for r in reference["robots"])[0] < reference["episode_s"]  # parked early
    won = reference["success_rate"] >= 1.0
    assert run.state is (EpisodeState.SUCCEEDED if won else EpisodeState.FAILED)
    if name == "coverage":
        assert steps == run.max_steps == 600  # held to the 30 s time limit


def _rounded(value):
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# ---- stepping: the control period on the kinematic engine, sub-steps where physics can -----
def test_each_engine_steps_by_what_it_can():
    navigation, flocking = load_world("navigation"), load_world("flocking")
    assert step_for_rate(navigation, 60.0) == pytest.approx(1 / 60)  # 3 sub-steps of 4 physics steps
    assert step_for_rate(navigation, 100.0) == pytest.approx(1 / 120)  # the next divisor of 12
    assert step_for_rate(navigation, 10.0) == pytest.approx(0.05)  # never longer than a control period
    for rate in (10.0, 20.0, 60.0, 240.0):
        assert step_for_rate(flocking, rate) == pytest.approx(0.05)  # the kinematic engine's step
    with pytest.raises(ValueError, match=r"not a whole number of the 20 Hz control periods the kinematic engine"):
        Fleet(flocking, 0, 1 / 60)
    fleet = Fleet(flocking, 0, step_for_rate(flocking, 60.0))
    try:
        fleet.command(0, 1.0, 0.0)
        for _ in range(20):
            fleet.step()
        assert fleet.time_s == pytest.approx(1.0)
        moved = np.linalg.norm(fleet.backend.states().poses[0, 0, :2] - fleet.episode.starts[0, :2])
        assert 0.5 < moved <= 1.0  # a second at up to 1 m/s, from rest
    finally:
        fleet.close()
