"""Navigation task maths without an engine: observations, neighbours, rewards, SPL, paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from conftest import NAVIGATION, open_world
from task_helpers import first_world as _one
from task_helpers import snapshot as _snap

from worlds import load_world, load_world_text, make_task
from worlds.geometry import OccupancyGrid, clearance, obstacle_distance
from worlds.spec import BoxObstacle, CylinderObstacle
from worlds.tasks import TASKS


def _two_robot_task():
    robots = [{"model": "husky", "count": 2, "spawn": {"poses": [[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]]}}]
    world = load_world_text(yaml.safe_dump(open_world(robots=robots)), source="t.yaml")
    task = make_task(world)
    starts = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    task.reset(np.random.default_rng(0), starts[None])
    return task, starts


def test_goal_is_expressed_in_the_robot_frame():
    task, _ = _two_robot_task()  # goals (4, -3) and (4, -1)
    obs = task.observe(_snap([[0.0, 0.0, math.pi / 2], [2.0, 2.0, 0.0]]))[0]
    s = task.observation_slices()
    # Facing +y, a goal at map (4, -3) is 3 m behind and 4 m to the right.
    np.testing.assert_allclose(obs[0, s["goal"]], [-3.0, -4.0, 5.0], atol=1e-5)
    np.testing.assert_allclose(obs[1, s["goal"]], [2.0, -3.0, math.hypot(2, 3)], atol=1e-5)


def test_neighbours_in_the_robot_frame_with_velocity():
    task, _ = _two_robot_task()
    # robot_1 is 2 m ahead-left of robot_0 (facing +x); it drives +y in the map at 0.5 m/s.
    twists = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
    obs = task.observe(_snap([[0.0, 0.0, 0.0], [2.0, 2.0, math.pi / 2]], twists))[0]
    nb = obs[0, task.observation_slices()["neighbours"]].reshape(-1, 5)
    np.testing.assert_allclose(nb[0], [2.0, 2.0, 0.0, 0.5, 1.0], atol=1e-5)
    np.testing.assert_allclose(nb[1:], 0.0)  # only one other robot: padding
    # From robot_1 (facing +y), robot_0 is 2 m right (-y) and 2 m behind.
    nb1 = obs[1, task.observation_slices()["neighbours"]].reshape(-1, 5)
    np.testing.assert_allclose(nb1[0], [-2.0, 2.0, 0.0, 0.0, 1.0], atol=1e-5)


def test_neighbours_beyond_the_radius_are_hidden():
    task, _ = _two_robot_task()
    obs = task.observe(_snap([[-4.0, 0.0, 0.0], [4.0, 0.0, 0.0]]))[0]  # 8 m apart, radius 5 m
    np.testing.assert_allclose(obs[:, task.observation_slices()["neighbours"]], 0.0)


def test_lidar_is_min_pooled_and_clipped():
    task, _ = _two_robot_task()
    lidar = np.full((2, 360), np.inf)
    lidar[0, 10] = 1.25  # one close return inside sector 1 (beams 10..19)
    obs = task.observe(_snap([[0, 0, 0], [2, 2, 0]], lidar=lidar))[0]
    pooled = obs[0, task.observation_slices()["lidar"]]
    assert pooled.shape == (36,)
    assert pooled[1] == pytest.approx(1.25)
    assert np.all(np.delete(pooled, 1) == pytest.approx(10.0))  # inf → range_max


def test_rewards_progress_collision_and_goal():
    task, _ = _two_robot_task()
    # robot_0 moves 1 m toward its goal (4, -3): along the unit vector (0.8, -0.6).
    r, arrived = _one(task.step(_snap([[0.8, -0.6, 0.0], [2.0, 2.0, 0.0]], contacts=[False, True])))
    assert r[0] == pytest.approx(1.0 - 0.01, abs=1e-6)
    assert r[1] == pytest.approx(-5.0 - 0.5 - 0.01, abs=1e-6)  # new contact, and being in contact
    r, _ = _one(task.step(_snap([[0.8, -0.6, 0.0], [2.0, 2.0, 0.0]], contacts=[False, True], t=0.1)))
    assert r[1] == pytest.approx(-0.5 - 0.01)  # the onset is penalised once, the contact every step
    r, arrived = _one(task.step(_snap([[3.8, -2.9, 0.0], [2.0, 2.0, 0.0]], t=0.15)))
    assert arrived[0] and not arrived[1]
    assert r[0] > 10.0
    r, _ = _one(task.step(_snap([[5.0, -2.9, 0.0], [2.0, 2.0, 0.0]], t=0.2)))
    assert r[0] == 0.0  # finished robots earn nothing more
    m = task.episode_metrics()
    assert m["robots"][0]["success"] and m["robots"][0]["time_to_goal_s"] == pytest.approx(0.15)
    assert m["robots"][1]["collisions"] == 1
    assert m["success_rate"] == 0.5 and m["collision_rate"] == 0.5


def test_proximity_to_obstacles_costs_in_proportion():
    task, _ = _two_robot_task()
    lidar = np.full((2, 360), 10.0)
    r = task.radii[0]
    lidar[0, 0] = r + 0.1  # robot 0: 0.1 m of clearance of the 0.4 m safe distance
    rewards, _ = _one(task.step(_snap([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]], lidar=lidar)))
    assert rewards[0] == pytest.approx(-0.01 - 0.2 * (1 - 0.1 / 0.4))
    assert rewards[1] == pytest.approx(-0.01)


def test_spl_is_shortest_over_travelled():
    task, _ = _two_robot_task()
    # robot_0 goes to its goal 5 m away by a 7 m dog-leg.
    task.step(_snap([[0.0, -3.0, 0.0], [2, 2, 0]], t=1.0))
    task.step(_snap([[4.0, -3.0, 0.0], [2, 2, 0]], t=2.0))
    m = task.episode_metrics()["robots"][0]
    assert m["path_length_m"] == pytest.approx(7.0)
    assert m["shortest_path_m"] == pytest.approx(5.0)
    assert m["spl"] == pytest.approx(5.0 / 7.0, abs=1e-3)


def test_shortest_path_goes_around_obstacles():
    world = load_world(NAVIGATION)
    grid = OccupancyGrid(world.arena, world.obstacles, inflate_m=0.35)
    # Through the central pillar at (0, 0): the way round is longer than the straight line.
    around = grid.path_length(np.array([-2.0, 0.0]), np.array([2.0, 0.0]))
    assert 4.0 < around < 4.0 * 1.25
    assert grid.path_length(np.array([-8.0, 5.0]), np.array([-8.0, -5.0])) == pytest.approx(10.0)


def test_obstacle_distances():
    box = BoxObstacle(type="box", position=(0.0, 0.0), size_m=(2.0, 1.0), yaw_deg=90.0)
    assert obstacle_distance(box, np.array([0.0, 2.0])) == pytest.approx(1.0)  # rotated: long side on y
    assert obstacle_distance(box, np.array([0.0, 0.0])) == pytest.approx(-0.5)
    cyl = CylinderObstacle(type="cylinder", position=(1.0, 1.0), radius_m=0.5)
    assert obstacle_distance(cyl, np.array([1.0, 3.0])) == pytest.approx(1.5)
    world = load_world(NAVIGATION)
    assert clearance(world.arena, [], np.array([8.0, 0.0])) == pytest.approx(1.0)  # east wall at 9


def test_task_registry_matches_the_task_modules():
    from pathlib import Path

    import worlds.tasks as pkg

    helpers = {"__init__", "base", "kernels", "messages"}
    modules = {p.stem for p in Path(pkg.__file__).parent.glob("*.py")} - helpers
    assert {target.split(":")[0].rsplit(".", 1)[1] for target in TASKS.values()} == modules
