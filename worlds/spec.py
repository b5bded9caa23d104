"""Typed world specification: what a world file may say, field by field.

The models here check types, ranges and unknown keys. Checks that need the whole
world (a start pose inside an obstacle, a goal outside the arena) live in
``worlds.checks``. The file format is documented in ``worlds/FORMAT.md``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from worlds.ranges import (
    MAX_OBSTACLES,
    MAX_ROBOT_GROUPS,
    MAX_ROBOTS,
    Accel_mps2,
    Angle_deg,
    AngularAccel_radps2,
    AngularSpeed_radps,
    ArenaSide_m,
    Beams,
    ControlRate_hz,
    Coordinate_m,
    Distance_m,
    Height_m,
    Length_m,
    NoiseStd_m,
    PhysicsRate_hz,
    Pixels,
    ReverseSpeed_mps,
    RobotCount,
    Seed,
    SensorRate_hz,
    Speed_mps,
)
from worlds.robots import ROBOT_MODELS, Limits, RobotModel, robot_model

Vec2 = tuple[Coordinate_m, Coordinate_m]
# A world's name also names output folders (runs/train/NAME): a plain identifier.
WORLD_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"

# Backends a world file may name. ``unity`` is not a physics engine here: the world runs on
# the other side of ML-Agents' protocol (a Unity build, the Editor, or ``sern serve-mlagents``),
# and ``sim_bridge.mlagents`` is its client.
BACKENDS = ("pybullet", "kinematic", "unity")

# The backends this build can run and the robot models each can simulate. These are the
# facts the world-file checks use and the backends enforce; ``sim_bridge.backends`` must
# implement exactly these backends, and PyBullet have an asset for each of its models
# (tests/test_kinematic_backend.py keeps them in step).
BACKEND_MODELS: dict[str, tuple[str, ...]] = {
    "kinematic": tuple(ROBOT_MODELS),  # any model, as the disc enclosing its footprint
    "pybullet": ("husky", "box"),  # a URDF each (pybullet_backend.ASSETS); the disc has none
    "unity": tuple(ROBOT_MODELS),  # the Unity side simulates them; sern only names them
}

# ML-Agents' default ports: a launched build listens on 5005 + worker_id, the Editor on 5004.
MLAGENTS_BUILD_PORT = 5005
MLAGENTS_EDITOR_PORT = 5004
MAX_ENV_PARAMS = 64


class Spec(BaseModel):
    """Base of every spec: immutable, strict types, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Region(Spec):
    """An axis-aligned rectangle in the map frame."""

    min: Vec2
    max: Vec2

    @model_validator(mode="after")
    def _ordered(self) -> Region:
        if self.min[0] >= self.max[0] or self.min[1] >= self.max[1]:
            raise ValueError(f"min {list(self.min)} must be below max {list(self.max)} on x and y")
        return self


class Arena(Spec):
    """A flat floor centred on the map origin, walled on four sides."""

    size_m: tuple[ArenaSide_m, ArenaSide_m]
    walls: bool = True
    wall_height_m: Height_m = 1.0
    wall_thickness_m: Length_m = 0.2

    @property
    def half_extents(self) -> tuple[float, float]:
        return 0.5 * self.size_m[0], 0.5 * self.size_m[1]


class BoxObstacle(Spec):
    type: Literal["box"]
    position: Vec2
    size_m: tuple[Length_m, Length_m]
    yaw_deg: Angle_deg = 0.0
    height_m: Height_m = 1.0


class CylinderObstacle(Spec):
    type: Literal["cylinder"]
    position: Vec2
    radius_m: Length_m
    height_m: Height_m = 1.0


Obstacle = Annotated[BoxObstacle | CylinderObstacle, Field(discriminator="type")]


class Placement(Spec):
    """Where things go: explicit poses, or a region sampled under the world's seed.

    For robots a pose is ``[x, y, yaw_deg]``; for goals ``[x, y]`` (extra values ignored
    is not allowed: a goal with a yaw is an error). With ``region``, ``yaw_deg`` fixes the
    heading of every sample; without it headings are random.
    """

    poses: Annotated[list[tuple[Coordinate_m, ...]], Field(min_length=1, max_length=MAX_ROBOTS)] | None = None
    region: Region | None = None
    yaw_deg: Angle_deg | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Placement:
        if (self.poses is None) == (self.region is None):
            raise ValueError("give exactly one of 'poses' or 'region'")
        if self.poses is not None and self.yaw_deg is not None:
            raise ValueError("'yaw_deg' applies to 'region' only; put yaws in the poses")
        return self


class LimitsSpec(Spec):
    """Overrides of a robot model's default limits (any subset)."""

    max_linear_speed_mps: Speed_mps | None = None
    max_angular_speed_radps: AngularSpeed_radps | None = None
    max_linear_accel_mps2: Accel_mps2 | None = None
    max_angular_accel_radps2: AngularAccel_radps2 | None = None
    min_linear_speed_mps: ReverseSpeed_mps | None = None


class RobotGroup(Spec):
    """``count`` robots of one model, placed by ``spawn``."""

    model: str
    count: RobotCount
    spawn: Placement
    limits: LimitsSpec = LimitsSpec()

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        robot_model(name)  # ValueError lists the valid names
        return name


class Lidar(Spec):
    """A planar lidar at the robot's centre, ``height_m`` above the ground."""

    beams: Beams = 180
    fov_deg: Annotated[float, Field(gt=0, le=360)] = 360.0
    range_min_m: Distance_m = 0.1
    range_max_m: Length_m = 10.0
    height_m: Height_m = 0.2
    noise_std_m: NoiseStd_m = 0.0

    @model_validator(mode="after")
    def _ranges(self) -> Lidar:
        if self.range_min_m >= self.range_max_m:
            raise ValueError(f"range_min_m ({self.range_min_m}) must be below range_max_m ({self.range_max_m})")
        return self

    def angles(self) -> np.ndarray:
        """Body-frame beam angles (rad), counter-clockwise from the first beam.

        A full circle has no duplicate beam at +180°; a partial fan spans both edges.
        """
        fov = math.radians(self.fov_deg)
        if self.fov_deg >= 360:
            return -math.pi + fov * np.arange(self.beams) / self.beams
        if self.beams == 1:
            return np.zeros(1)
        return np.linspace(-fov / 2, fov / 2, self.beams)


class Camera(Spec):
    """A forward-looking pinhole camera (RGB, depth, segmentation)."""

    width: Pixels = 84
    height: Pixels = 84
    fov_deg: Annotated[float, Field(gt=0, lt=180)] = 90.0
    near_m: Length_m = 0.05
    far_m: Length_m = 20.0
    rate_hz: SensorRate_hz = 10.0

    @model_validator(mode="after")
    def _clip(self) -> Camera:
        if self.near_m >= self.far_m:
            raise ValueError(f"near_m ({self.near_m}) must be below far_m ({self.far_m})")
        return self


class Sensors(Spec):
    lidar: Lidar = Lidar()
    camera: Camera | None = None


class Unity(Spec):
    """How a ``backend: unity`` world reaches its Unity side over ML-Agents (mlagents-envs).

    ``build`` is a Unity executable that sern launches (relative paths are from the world
    file's folder); without it sern listens on ``base_port`` for the Editor's Play button or
    another peer (``sern serve-mlagents``) to connect. ``behaviour`` picks one behaviour by
    name (without ``?team=``); omitted, the build must have exactly one. ``env_params`` go
    through the EnvironmentParameters side channel before the first episode (e.g. HIVEX's
    ``task`` and ``difficulty``)."""

    build: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    behaviour: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    worker_id: Annotated[int, Field(ge=0, le=1000)] = 0
    base_port: Annotated[int, Field(ge=1024, le=64535)] | None = None
    time_scale: Annotated[float, Field(ge=1.0, le=100.0)] = 20.0
    no_graphics: bool = True
    timeout_s: Annotated[float, Field(ge=1.0, le=3600.0)] = 60.0
    env_params: Annotated[
        dict[
            Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$")],
            Annotated[float, Field(ge=-1e9, le=1e9)],
        ],
        Field(max_length=MAX_ENV_PARAMS),
    ] = Field(default_factory=dict)

    @property
    def port(self) -> int:
        """The port the trainer side listens on (ML-Agents' rule)."""
        base = self.base_port
        if base is None:
            base = MLAGENTS_BUILD_PORT if self.build else MLAGENTS_EDITOR_PORT
        return base + self.worker_id

    @model_validator(mode="after")
    def _editor_has_one_worker(self) -> Unity:
        if self.build is None and self.worker_id != 0:
            raise ValueError("worker_id must be 0 without a build (the Editor or a peer attaches to base_port)")
        return self


class Task(Spec):
    """The task's name and its parameters (validated by the task, see ``worlds.tasks``)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class WorldSpec(Spec):
    """A whole world: arena, obstacles, robots, sensors, task, backend and rates."""

    name: str
    description: Annotated[str, Field(max_length=2000)] = ""
    backend: Literal["pybullet", "kinematic", "unity"] = "pybullet"
    physics_rate_hz: PhysicsRate_hz = 240
    control_rate_hz: ControlRate_hz = 20
    seed: Seed = 0
    arena: Arena
    obstacles: Annotated[list[Obstacle], Field(max_length=MAX_OBSTACLES)] = Field(default_factory=list)
    robots: Annotated[list[RobotGroup], Field(min_length=1, max_length=MAX_ROBOT_GROUPS)]
    sensors: Sensors = Sensors()
    task: Task
    unity: Unity | None = None
    source: str = Field(default="<memory>", exclude=True)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not re.match(WORLD_NAME_PATTERN, name):
            raise ValueError(
                f"a world's name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit "
                f"(it names output folders); got {name[:80]!r}"
            )
        return name

    @property
    def control_dt(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def physics_steps_per_control(self) -> int:
        return self.physics_rate_hz // self.control_rate_hz

    def robot_entries(self) -> list[RobotEntry]:
        """One entry per robot, in index order (``robot_0`` first)."""
        out: list[RobotEntry] = []
        for g, group in enumerate(self.robots):
            model = robot_model(group.model)
            overrides = group.limits.model_dump(exclude_none=True)
            limits = Limits(**{**model.limits.__dict__, **overrides})
            for k in range(group.count):
                out.append(RobotEntry(len(out), g, k, model, limits))
        return out

    @property
    def num_robots(self) -> int:
        return sum(g.count for g in self.robots)

    def to_data(self) -> dict[str, Any]:
        """The world as plain data (what its YAML would parse to), for edits in code."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class RobotEntry:
    """One robot of a world, with its model and effective limits."""

    index: int
    group: int
    index_in_group: int
    model: RobotModel
    limits: Limits

    @property
    def name(self) -> str:
        """The agent name and ROS namespace: ``robot_<index>``."""
        return f"robot_{self.index}"


def command_bounds(robots: list[RobotEntry]) -> tuple[np.ndarray, np.ndarray]:
    """Each robot's lowest and highest (v m/s, ω rad/s) command, ``(N, 2)`` each."""
    low = np.array([[r.limits.min_linear_speed_mps, -r.limits.max_angular_speed_radps] for r in robots])
    high = np.array([[r.limits.max_linear_speed_mps, r.limits.max_angular_speed_radps] for r in robots])
    return low, high


def source_path(spec: WorldSpec) -> Path | None:
    """The file a spec was loaded from, if any."""
    return None if spec.source.startswith("<") else Path(spec.source)
