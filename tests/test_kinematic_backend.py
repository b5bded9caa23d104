"""The vectorised kinematic engine: motion, limits, collisions, lidar, batches; and which
backend can run which world."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from conftest import open_world

from sim_bridge.backends import BACKENDS, CommandError, make_backend
from sim_bridge.backends.pybullet_backend import ASSETS, PyBulletBackend
from sim_bridge.batched_env import BatchedEnv
from worlds import WorldFileError, load_world, load_world_data, load_world_text
from worlds.robots import ROBOT_MODELS
from worlds.spec import BACKEND_MODELS


def _world(**overrides):
    data = open_world(**overrides)
    data["backend"] = "kinematic"
    return load_world_text(yaml.safe_dump(data), source="test_open.yaml")


def _run(backend, cmd, seconds, dt=0.05):
    backend.apply(np.asarray(cmd, dtype=float))
    for _ in range(round(seconds / dt)):
        backend.step(dt)


def test_unicycle_drives_straight_and_turns():
    b = make_backend(_world(), num_worlds=2)
    b.reset(0, np.array([[[-3.0, 0.0, 0.0]], [[-3.0, 0.0, 0.0]]]))
    _run(b, [[[1.0, 0.0]], [[0.5, 0.5]]], 0.5)
    start = b.states().poses.copy()
    _run(b, [[[1.0, 0.0]], [[0.5, 0.5]]], 2.0)
    s = b.states()
    assert np.hypot(*(s.poses[0, 0, :2] - start[0, 0, :2])) == pytest.approx(2.0, abs=1e-6)
    assert s.poses[0, 0, 2] == pytest.approx(0.0)
    assert s.poses[1, 0, 2] - start[1, 0, 2] == pytest.approx(1.0, abs=1e-6)  # 0.5 rad/s for 2 s
    assert s.twists[1, 0, 0] == pytest.approx(0.5) and s.twists[1, 0, 2] == pytest.approx(0.5)


def test_acceleration_limits_ramp_commands():
    b = make_backend(_world(), num_worlds=1)  # husky: 3 m/s², 6 rad/s²
    b.reset(0, np.zeros((1, 1, 3)))
    _run(b, [[[1.0, 2.0]]], 0.1)
    assert b.states().twists[0, 0, 0] == pytest.approx(0.3)
    assert b.states().twists[0, 0, 2] == pytest.approx(0.6)


def test_holonomic_disc_moves_sideways():
    robots = [{"model": "disc", "count": 1, "spawn": {"poses": [[0.0, 0.0, 90.0]]}}]
    b = make_backend(_world(robots=robots), num_worlds=1)
    b.reset(0, np.array([[[0.0, 0.0, math.pi / 2]]]))
    _run(b, [[[0.0, -1.0]]], 3.0)  # body-frame "right" while facing +y: toward +x
    x, y, yaw = b.states().poses[0, 0]
    # 2 m/s² at 20 Hz: 0.1, 0.2, ... 1.0 m/s over the first ten steps, then 1 m/s
    assert x == pytest.approx(0.05 * sum(0.1 * k for k in range(1, 11)) + 50 * 0.05, abs=1e-6)
    assert abs(y) < 1e-9 and yaw == pytest.approx(math.pi / 2)


def test_walls_obstacles_and_robots_stop_robots_and_flag_contacts():
    obstacles = [{"type": "cylinder", "position": [2.0, 0.0], "radius_m": 0.5}]
    robots = [{"model": "husky", "count": 2, "spawn": {"poses": [[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]}}]
    b = make_backend(_world(obstacles=obstacles, robots=robots), num_worlds=1)
    r = b.radii[0]
    b.reset(0, np.array([[[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]]))
    _run(b, [[[1.0, 0.0], [1.0, 0.0]]], 6.0)
    pos = b.states().poses[0]
    assert pos[0, 0] == pytest.approx(2.0 - 0.5 - r, abs=1e-6)  # against the pillar
    assert pos[1, 0] == pytest.approx(5.0 - r, abs=1e-6)  # against the east wall
    assert b.contacts()[0].all()
    # Two robots driven at each other end up touching, not overlapping.
    b.reset(0, np.array([[[-2.0, 3.0, 0.0], [2.0, 3.0, math.pi]]]))
    _run(b, [[[1.0, 0.0], [1.0, 0.0]]], 4.0)
    pos = b.states().poses[0]
    assert np.hypot(*(pos[0, :2] - pos[1, :2])) == pytest.approx(2 * r, abs=1e-6)
    assert b.contacts()[0].all()


def test_lidar_ranges_to_walls_boxes_cylinders_and_robots():
    obstacles = [
        {"type": "cylinder", "position": [2.0, 0.0], "radius_m": 0.5},
        {"type": "box", "position": [0.0, -3.0], "size_m": [2.0, 1.0], "yaw_deg": 0.0},
    ]
    robots = [{"model": "husky", "count": 2, "spawn": {"poses": [[0.0, 0.0, 0.0], [-3.0, 0.0, 0.0]]}}]
    world = _world(obstacles=obstacles, robots=robots)
    b = make_backend(world, num_worlds=1)
    b.reset(0, np.array([[[0.0, 0.0, 0.0], [-3.0, 0.0, 0.0]]]))
    ranges = b.lidar()[0, 0]
    angles = world.sensors.lidar.angles()

    def at(deg):
        return ranges[np.argmin(np.abs((angles - math.radians(deg) + math.pi) % (2 * math.pi) - math.pi))]

    assert at(0) == pytest.approx(1.5, abs=1e-6)  # pillar surface
    assert at(-90) == pytest.approx(2.5, abs=1e-6)  # box top face at y = -2.5
    assert at(90) == pytest.approx(5.0, abs=1e-6)  # north wall
    assert at(180) == pytest.approx(3.0 - b.radii[1], abs=1e-6)  # the other robot's disc


def test_batches_are_independent_and_reset_alone():
    b = make_backend(_world(), num_worlds=3)
    b.reset(0, np.zeros((3, 1, 3)))
    _run(b, [[[1.0, 0.0]], [[0.0, 0.0]], [[-1.0, 0.0]]], 1.0)
    x = b.states().poses[:, 0, 0]
    assert x[0] > 0.5 and x[1] == 0.0 and x[2] < -0.5
    b.reset_worlds(np.array([0]), np.zeros((1, 1, 3)))
    x2 = b.states().poses[:, 0, 0]
    assert x2[0] == 0.0 and x2[2] == x[2]


def test_bad_commands_refused():
    b = make_backend(_world(), num_worlds=2)
    b.reset(0, np.zeros((2, 1, 3)))
    with pytest.raises(CommandError, match=r"robot_0: command .* is not finite"):
        b.apply(np.array([[[0.0, 0.0]], [[math.nan, 0.0]]]))


def test_the_same_world_file_runs_on_both_engines():
    world = load_world("navigation")
    for name in ("pybullet", "kinematic"):
        b = make_backend(world, name)
        starts = np.array([[[-7.0, -3.0, 0.0], [-7.0, -1.0, 0.0], [-7.0, 1.0, 0.0], [-7.0, 3.0, 0.0]]])
        b.reset(0, starts)
        _run(b, np.tile([1.0, 0.0], (1, 4, 1)), 1.0)
        assert (b.states().poses[0, :, 0] > -6.4).all(), name
        assert b.lidar().shape == (1, 4, 180)
        b.close()


def test_batched_env_restarts_finished_worlds():
    data = load_world("navigation").to_data()
    data["task"]["params"]["max_episode_s"] = 1.0
    env = BatchedEnv(load_world_data(data), num_worlds=4, seed=0)
    obs = env.reset()
    assert obs.shape == (4, 4, env.obs_dim) and obs.dtype == np.float32
    ended = 0
    for _ in range(25):
        step = env.step(np.zeros((4, 4, 2)))
        ended += len(step.episodes)
    assert ended == 4  # every world's 1 s episode ended once (20 steps) and restarted
    assert (env.steps == 5).all()


# ---- which backend can run which world ------------------------------------------------------


def _problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(WorldFileError) as err:
        load_world_data(data, "t.yaml")
    return [(p.key, p.reason) for p in err.value.problems]


def test_a_backend_this_build_cannot_run_is_a_world_file_error(monkeypatch):
    from worlds import checks

    data = load_world("navigation").to_data()
    data["backend"] = "unity"
    load_world_data(data, "t.yaml")  # mlagents-envs installed (make setup): fine
    monkeypatch.setattr(checks, "mlagents_installed", lambda: False)  # a build without it
    assert _problems(data) == [
        ("backend", "backend 'unity' needs mlagents-envs, which is not installed (make setup installs it)")
    ]
    data["backend"] = "gazebo"
    assert _problems(data)[0][0] == "backend"


def test_a_model_the_backend_cannot_simulate_is_a_world_file_error():
    data = load_world("foraging").to_data()
    data["backend"] = "pybullet"
    assert _problems(data) == [
        ("robots[0].model", "the pybullet backend cannot simulate model 'disc'; backends that can: kinematic, unity")
    ]


def test_a_backend_chosen_over_the_worlds_own_gets_the_same_check():
    world = load_world("foraging")  # disc robots, kinematic
    with pytest.raises(WorldFileError) as err:
        make_backend(world, "pybullet")
    assert str(err.value) == (
        "foraging (backend = pybullet): robots[0].model: the pybullet backend cannot simulate model 'disc'; "
        "backends that can: kinematic, unity"
    )
    with pytest.raises(WorldFileError, match=r"^foraging \(backend = pybullet\): robots\[0\]\.model: "):
        PyBulletBackend(world)  # built directly: refused before PyBullet starts
    with pytest.raises(ValueError, match="backend 'unity' is not a simulator sern steps"):
        make_backend(world, "unity")  # its env is sim_bridge.env.make_env's
    with pytest.raises(ValueError, match="unknown backend 'gazebo'; available: kinematic, pybullet"):
        make_backend(world, "gazebo")


def test_the_world_checks_know_exactly_the_backends_and_pybullet_assets_there_are():
    # worlds/ cannot import sim_bridge, so the facts the checks use live in worlds.spec;
    # this keeps them equal to what the backends implement.
    assert set(BACKEND_MODELS) == set(BACKENDS) | {"unity"}  # unity: the ML-Agents client (sim_bridge.mlagents)
    assert set(BACKEND_MODELS["pybullet"]) == set(ASSETS)
    assert set(BACKEND_MODELS["kinematic"]) == set(ROBOT_MODELS)
