"""The kinematic engine and PyBullet, driven by the same seeded commands, trace the same
paths, within tolerances stated per robot model (and broken engines do not).

Each robot gets ten random (v, ω) commands held 0.5 s each (5 s, ~2.5 m of driving with
turns both ways) on an empty floor, on both engines, and the two trajectories are compared
every control period:

- ``position_m``: the largest distance between the two robots' positions;
- ``heading_rad``: the largest heading difference;
- ``turn_ratio``: how much the kinematic robot turned per 0.5 s segment against PyBullet's,
  signed (Σ Δψ_kin · sign Δψ_pb / Σ |Δψ_pb|): 1 when they turn alike, negative when one
  turns the other way, 0 when the kinematic robot does not turn;
- ``distance_ratio``: kinematic path length over PyBullet's.

Tolerances, from the measured spread of seeds 0-11 with margin:

- ``box`` (differential drive on two wheels and casters): the engines agree to centimetres:
  ≤ 0.12 m and ≤ 0.07 rad apart over 5 s, turns within 3-8 %, distance within 1 %.
- ``husky`` (skid-steer): its four tyres scrub sideways in every turn, so in PyBullet it
  turns at only 40-75 % of the commanded rate and lags each change of command (real
  skid-steer robots do the same; the kinematic engine is an ideal unicycle). Measured:
  ≤ 0.95 m and ≤ 0.8 rad apart, the kinematic robot turning 1.4-2.6× as much, distance
  within 10 %. The tolerance is that wide, so for the Husky the check catches sign errors,
  a robot that does not move and a wrong speed scale, not a modest turn-rate error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import yaml
from conftest import open_world

from sim_bridge.backends import make_backend
from sim_bridge.backends.kinematic_backend import KinematicBackend
from worlds import load_world_text

CONTROL_DT_S = 0.05
HOLD_STEPS = 10  # 0.5 s per command
SEGMENTS = 10  # 5 s in all
START = np.array([[[0.0, 0.0, 0.0]]])


@dataclass(frozen=True)
class Disagreement:
    position_m: float
    heading_rad: float
    turn_ratio: float
    distance_ratio: float


@dataclass(frozen=True)
class Tolerance:
    position_m: float
    heading_rad: float
    turn_ratio: tuple[float, float]
    distance_ratio: tuple[float, float]

    def holds(self, d: Disagreement) -> bool:
        return (
            d.position_m <= self.position_m
            and d.heading_rad <= self.heading_rad
            and self.turn_ratio[0] <= d.turn_ratio <= self.turn_ratio[1]
            and self.distance_ratio[0] <= d.distance_ratio <= self.distance_ratio[1]
        )


TOLERANCES = {
    "box": Tolerance(position_m=0.2, heading_rad=0.15, turn_ratio=(0.9, 1.15), distance_ratio=(0.95, 1.05)),
    "husky": Tolerance(position_m=1.2, heading_rad=1.0, turn_ratio=(1.0, 3.0), distance_ratio=(0.9, 1.15)),
}


def _world(model: str, backend: str):
    robots = [{"model": model, "count": 1, "spawn": {"poses": [[0.0, 0.0, 0.0]]}}]
    data = open_world(robots=robots, arena={"size_m": [30.0, 30.0]})  # walls never reached
    data["backend"] = backend
    return load_world_text(yaml.safe_dump(data), source=f"{model}_{backend}.yaml")


def seeded_commands(seed: int) -> np.ndarray:
    """(T, 2) commands: forward 0.2-0.8 m/s, turning 0.4-1.2 rad/s either way, held 0.5 s."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.2, 0.8, SEGMENTS)
    w = rng.uniform(0.4, 1.2, SEGMENTS) * rng.choice([-1.0, 1.0], SEGMENTS)
    return np.repeat(np.column_stack([v, w]), HOLD_STEPS, axis=0)


def trajectory(backend, commands: np.ndarray) -> np.ndarray:
    """(T + 1, 3) poses x, y, unwrapped yaw, start included."""
    backend.reset(0, START)
    poses = [backend.states().poses[0, 0].copy()]
    for command in commands:
        backend.apply(command.reshape(1, 1, 2))
        backend.step(CONTROL_DT_S)
        poses.append(backend.states().poses[0, 0].copy())
    out = np.array(poses)
    out[:, 2] = np.unwrap(out[:, 2])
    return out


def disagreement(kinematic: np.ndarray, physics: np.ndarray) -> Disagreement:
    gap = np.linalg.norm(kinematic[:, :2] - physics[:, :2], axis=1)
    heading = np.abs((kinematic[:, 2] - physics[:, 2] + math.pi) % (2 * math.pi) - math.pi)
    turn_k = np.diff(kinematic[::HOLD_STEPS, 2])
    turn_p = np.diff(physics[::HOLD_STEPS, 2])
    path_k = np.linalg.norm(np.diff(kinematic[:, :2], axis=0), axis=1).sum()
    path_p = np.linalg.norm(np.diff(physics[:, :2], axis=0), axis=1).sum()
    return Disagreement(
        position_m=float(gap.max()),
        heading_rad=float(heading.max()),
        turn_ratio=float(np.sum(turn_k * np.sign(turn_p)) / np.sum(np.abs(turn_p))),
        distance_ratio=float(path_k / path_p),
    )


# Broken engines the comparison must catch (fakes of bugs, named for what they are).
class TurnSignFlippedEngine(KinematicBackend):
    """The kinematic engine with ω's sign flipped, as a REP-103 axis mistake would."""

    def apply(self, commands):
        super().apply(np.asarray(commands) * [1.0, -1.0])


class MotionlessEngine(KinematicBackend):
    """An engine whose robots never move (commands lost)."""

    def apply(self, commands):
        super().apply(np.zeros_like(np.asarray(commands, dtype=float)))


class HalfSpeedEngine(KinematicBackend):
    """An engine that halves every command (a unit or wheel-radius mistake)."""

    def apply(self, commands):
        super().apply(np.asarray(commands) * 0.5)


@pytest.fixture(scope="module")
def pybullet_trajectories() -> dict[tuple[str, int], np.ndarray]:
    """PyBullet's trajectory per (model, seed), computed once for the module."""
    out = {}
    for model in TOLERANCES:
        with make_backend(_world(model, "pybullet")) as backend:
            for seed in (0, 1, 2):
                out[model, seed] = trajectory(backend, seeded_commands(seed))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("model", sorted(TOLERANCES))
def test_both_engines_trace_the_same_path_within_the_stated_tolerance(pybullet_trajectories, model, seed):
    physics = pybullet_trajectories[model, seed]
    kinematic = trajectory(make_backend(_world(model, "kinematic")), seeded_commands(seed))
    path = np.linalg.norm(np.diff(physics[:, :2], axis=0), axis=1).sum()
    assert path > 1.5  # the commands really drove the PyBullet robot
    d = disagreement(kinematic, physics)
    assert TOLERANCES[model].holds(d), d


@pytest.mark.parametrize("engine", [TurnSignFlippedEngine, MotionlessEngine, HalfSpeedEngine])
@pytest.mark.parametrize("model", sorted(TOLERANCES))
def test_a_broken_engine_falls_outside_the_tolerance(pybullet_trajectories, model, engine):
    world = _world(model, "kinematic")
    for seed in (0, 1, 2):
        d = disagreement(trajectory(engine(world), seeded_commands(seed)), pybullet_trajectories[model, seed])
        assert not TOLERANCES[model].holds(d), (engine.__name__, seed, d)
