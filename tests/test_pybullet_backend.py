"""PyBullet backend: kinematics, limits, determinism, lidar, camera, contacts, bad commands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import NAVIGATION, open_world

from sim_bridge.backends import CommandError, make_backend
from sim_bridge.backends.base import SEG_GROUND, SEG_NONE, SEG_OBSTACLE_BASE, SEG_ROBOT_BASE, SEG_WALL
from worlds import load_world, load_world_text
from worlds.layout import sample_starts


def _world(**overrides):
    import yaml

    return load_world_text(yaml.safe_dump(open_world(**overrides)), source="test_open.yaml")


def _drive(backend, command, seconds, dt=0.05):
    backend.apply(np.asarray(command, dtype=float).reshape(1, -1, 2))
    for _ in range(round(seconds / dt)):
        backend.step(dt)


@pytest.mark.parametrize("model", ["husky", "box"])
def test_one_metre_per_second_for_two_seconds_moves_two_metres(model):
    robots = [{"model": model, "count": 1, "spawn": {"poses": [[-3.0, 0.0, 0.0]]}}]
    with make_backend(_world(robots=robots)) as backend:
        backend.reset(0, np.array([[[-3.0, 0.0, 0.0]]]))
        # Get up to speed first, so the two seconds measure the (v, ω) → wheel mapping,
        # not the acceleration ramp.
        _drive(backend, [1.0, 0.0], 0.5)
        start = backend.states().poses[0, 0].copy()
        _drive(backend, [1.0, 0.0], 2.0)
        end = backend.states().poses[0, 0]
    travelled = float(np.hypot(*(end[:2] - start[:2])))
    assert travelled == pytest.approx(2.0, rel=0.10)
    assert abs(end[1] - start[1]) < 0.05  # straight, not veering
    assert abs(end[2] - start[2]) < math.radians(2)


def test_turning_rate_follows_the_command():
    robots = [{"model": "husky", "count": 1, "spawn": {"poses": [[0.0, 0.0, 0.0]]}}]
    with make_backend(_world(robots=robots)) as backend:
        backend.reset(0, np.array([[[0.0, 0.0, 0.0]]]))
        _drive(backend, [0.5, 0.5], 2.0)
        twist = backend.states().twists[0, 0]
    assert twist[2] == pytest.approx(0.5, rel=0.2)
    assert twist[0] == pytest.approx(0.5, rel=0.2)


def test_acceleration_is_limited():
    world = _world()  # husky: 3 m/s² linear
    with make_backend(world) as backend:
        backend.reset(0, np.array([[[0.0, 0.0, 0.0]]]))
        _drive(backend, [1.0, 0.0], 0.1)
        v = backend.states().twists[0, 0, 0]
    assert v <= 3.0 * 0.1 + 0.05


def test_commands_are_clipped_to_limits():
    with make_backend(_world()) as backend:
        backend.reset(0, np.array([[[-3.0, 0.0, 0.0]]]))
        _drive(backend, [5.0, 0.0], 2.0)
        v = backend.states().twists[0, 0, 0]
    assert v == pytest.approx(1.0, abs=0.08)  # the Husky's 1 m/s, not 5


@pytest.mark.parametrize("bad", [[math.nan, 0.0], [0.0, math.inf]])
def test_non_finite_commands_are_refused_by_robot_name(bad):
    with make_backend(_world()) as backend:
        backend.reset(0, np.array([[[0.0, 0.0, 0.0]]]))
        with pytest.raises(CommandError, match=r"robot_0: command .* is not finite"):
            backend.apply(np.array([[bad]]))
        with pytest.raises(CommandError, match=r"shape \(1, 1, 2\)"):
            backend.apply(np.zeros((1, 2, 2)))


def test_step_must_be_whole_physics_steps():
    with make_backend(_world()) as backend:
        backend.reset(0, np.array([[[0.0, 0.0, 0.0]]]))
        with pytest.raises(ValueError, match="not a whole number of physics steps"):
            backend.step(0.001)


def _rollout(backend, starts, seed):
    backend.reset(seed, starts[None])
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(60):
        cmd = np.column_stack([rng.uniform(0, 1, len(starts)), rng.uniform(-1, 1, len(starts))])
        backend.apply(cmd[None])
        backend.step(0.05)
        poses.append(backend.states().poses.copy())
    return np.stack(poses), backend.lidar().copy()


def test_deterministic_under_a_seed():
    world = load_world(NAVIGATION)
    starts = sample_starts(world, np.random.default_rng(3))
    with make_backend(world) as a, make_backend(world) as b:
        pa, la = _rollout(a, starts, 3)
        pb, lb = _rollout(b, starts, 3)
        pa2, _ = _rollout(a, starts, 3)  # a reset instance repeats itself too
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(pa, pa2)
    assert np.ptp(pa[:, 0, :, 0]) > 0.5  # the robots really moved


def test_lidar_range_to_a_wall_at_known_distance():
    # Arena 10 m wide: from x = 1.5 the east wall is 3.5 m ahead, the west one 6.5 m behind.
    world = _world()
    with make_backend(world) as backend:
        backend.reset(0, np.array([[[1.5, 0.0, 0.0]]]))
        backend.step(0.05)
        ranges = backend.lidar()[0, 0]
        angles = world.sensors.lidar.angles()
    ahead = ranges[np.argmin(np.abs(angles))]
    behind = ranges[np.argmin(np.abs(np.abs(angles) - math.pi))]
    left = ranges[np.argmin(np.abs(angles - math.pi / 2))]
    assert ahead == pytest.approx(3.5, abs=0.03)
    assert behind == pytest.approx(6.5, abs=0.03)
    assert left == pytest.approx(5.0, abs=0.03)
    # 30° off the axis the wall is further by 1 / cos 30°.
    off = ranges[np.argmin(np.abs(angles - math.radians(30)))]
    assert off == pytest.approx(3.5 / math.cos(math.radians(30)), abs=0.05)


def test_lidar_sees_obstacles_and_other_robots_but_not_itself():
    obstacles = [{"type": "cylinder", "position": [2.0, 0.0], "radius_m": 0.5}]
    robots = [{"model": "husky", "count": 2, "spawn": {"poses": [[0.0, 0.0, 0.0], [0.0, 2.5, 0.0]]}}]
    world = _world(obstacles=obstacles, robots=robots)
    with make_backend(world) as backend:
        backend.reset(0, np.array([[[0.0, 0.0, 0.0], [0.0, 2.5, 0.0]]]))
        backend.step(0.05)
        ranges = backend.lidar()[0, 0]
        angles = world.sensors.lidar.angles()
    assert ranges[np.argmin(np.abs(angles))] == pytest.approx(1.5, abs=0.03)  # cylinder face
    # The other Husky's side is 2.5 - 0.345 m away to the left.
    assert ranges[np.argmin(np.abs(angles - math.pi / 2))] == pytest.approx(2.5 - 0.345, abs=0.06)
    assert ranges.min() > 0.5  # never its own body


def test_lidar_reports_inf_without_a_return():
    world = _world(arena={"size_m": [10.0, 10.0], "walls": False})
    with make_backend(world) as backend:
        backend.reset(0, np.array([[[0.0, 0.0, 0.0]]]))
        backend.step(0.05)
        assert np.isinf(backend.lidar()).all()


def test_camera_shapes_and_segmentation_ids():
    obstacles = [{"type": "box", "position": [3.0, 0.0], "size_m": [1.0, 3.0], "height_m": 3.0}]
    robots = [{"model": "husky", "count": 2, "spawn": {"poses": [[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]}}]
    world = _world(obstacles=obstacles, robots=robots)
    with make_backend(world) as backend:
        backend.reset(0, np.array([[[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]]))
        backend.step(0.05)
        frame = backend.render(0)
        labels = backend.segmentation_labels()
        # robot_1 turned to look at robot_0 from 3 m.
        backend.reset(0, np.array([[[0.0, 0.0, 0.0], [0.0, 3.0, -math.pi / 2]]]))
        backend.step(0.05)
        other = backend.render(1)
    assert frame.rgb.shape == (48, 64, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.shape == (48, 64) and frame.depth.dtype == np.float32
    assert frame.segmentation.shape == (48, 64) and frame.segmentation.dtype == np.int32
    centre = frame.segmentation[24, 32]
    assert centre == SEG_OBSTACLE_BASE + 0 and labels[centre] == "obstacle_0"
    # The box face is 2.5 m ahead of the robot centre; the camera sits 0.45 m forward.
    assert frame.depth[24, 32] == pytest.approx(2.5 - 0.45, abs=0.1)
    assert frame.segmentation[-1, 32] == SEG_GROUND  # the floor below the horizon
    assert set(np.unique(frame.segmentation)) <= {SEG_NONE, SEG_GROUND, SEG_WALL, SEG_OBSTACLE_BASE}
    assert (other.segmentation == SEG_ROBOT_BASE + 0).sum() > 20  # robot_0 fills part of the view
    assert labels[SEG_ROBOT_BASE + 0] == "robot_0"


def test_contacts_when_driving_into_a_wall():
    world = _world()
    with make_backend(world) as backend:
        backend.reset(0, np.array([[[3.0, 0.0, 0.0]]]))
        backend.step(0.05)
        assert not backend.contacts()[0, 0]
        _drive(backend, [1.0, 0.0], 3.0)
        assert backend.contacts()[0, 0]
        assert backend.states().poses[0, 0, 0] < 5.0 - 0.5 + 0.05  # stopped by the wall


def test_motor_lag_and_slip_change_the_dynamics():
    from sim_bridge.backends import Dynamics

    world = _world()
    with make_backend(world) as nominal, make_backend(world, dynamics=Dynamics(motor_time_constant_s=0.3)) as laggy:
        for b in (nominal, laggy):
            b.reset(0, np.array([[[-3.0, 0.0, 0.0]]]))
            _drive(b, [1.0, 0.0], 0.4)
        assert laggy.states().twists[0, 0, 0] < nominal.states().twists[0, 0, 0] - 0.1
    with make_backend(world, dynamics=Dynamics(wheel_slip=0.2)) as slipping:
        slipping.reset(0, np.array([[[-3.0, 0.0, 0.0]]]))
        _drive(slipping, [1.0, 0.0], 2.0)
        assert slipping.states().twists[0, 0, 0] == pytest.approx(0.8, abs=0.06)


def test_backend_registry_lists_names():
    from sim_bridge.backends import backend_class

    with pytest.raises(ValueError, match="unknown backend 'gazebo'; available: kinematic, pybullet"):
        backend_class("gazebo")
