"""The robot models a world can use: footprint, wheel geometry and default limits.

This is the engine-free description of each model. Backends map a model name to their
own asset (a URDF for PyBullet, a prefab for Unity) and must match these dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Command limits of a ground robot (REP-103 units)."""

    max_linear_speed_mps: float
    max_angular_speed_radps: float
    max_linear_accel_mps2: float
    max_angular_accel_radps2: float
    min_linear_speed_mps: float = 0.0  # negative allows reversing; 0 would forbid it


@dataclass(frozen=True)
class RobotModel:
    """A differential-drive (or skid-steer) ground robot."""

    name: str
    length_m: float
    width_m: float
    height_m: float
    wheel_radius_m: float
    track_m: float
    limits: Limits
    description: str
    drive: str = "differential"  # differential: commands (v, ω); holonomic: (vx, vy) body frame
    footprint: str = "rectangle"  # rectangle (length × width) or disc (diameter = length)

    @property
    def radius_m(self) -> float:
        """Radius of the circle that encloses the footprint (used for clearances)."""
        if self.footprint == "disc":
            return 0.5 * self.length_m
        return 0.5 * math.hypot(self.length_m, self.width_m)

    @property
    def holonomic(self) -> bool:
        return self.drive == "holonomic"


# Husky: Clearpath's dimensions, its husky_control limits (1 m/s, 2 rad/s, 3 m/s², 6 rad/s²).
HUSKY = RobotModel(
    name="husky",
    length_m=1.01,
    width_m=0.69,
    height_m=0.41,
    wheel_radius_m=0.17775,
    track_m=0.5708,
    limits=Limits(1.0, 2.0, 3.0, 6.0, min_linear_speed_mps=-1.0),
    description="Clearpath Husky A200 class skid-steer robot (pybullet_data husky.urdf)",
)

# A light box-shaped differential-drive robot for larger teams: cheap to simulate and render.
BOX = RobotModel(
    name="box",
    length_m=0.50,
    width_m=0.48,
    height_m=0.25,
    wheel_radius_m=0.08,
    track_m=0.44,
    limits=Limits(1.5, 3.0, 3.0, 8.0, min_linear_speed_mps=-1.5),
    description="light box-shaped differential-drive robot with two casters",
)

# A small holonomic disc for swarms (kinematic engine): commands are (vx, vy) in its own
# frame; for it the "angular" limits bound the sideways component vy.
DISC = RobotModel(
    name="disc",
    length_m=0.30,
    width_m=0.30,
    height_m=0.15,
    wheel_radius_m=0.0,
    track_m=0.0,
    limits=Limits(1.0, 1.0, 2.0, 2.0, min_linear_speed_mps=-1.0),
    description="small holonomic disc robot for swarm tasks (kinematic engine)",
    drive="holonomic",
    footprint="disc",
)

ROBOT_MODELS: dict[str, RobotModel] = {m.name: m for m in (HUSKY, BOX, DISC)}


def robot_model(name: str) -> RobotModel:
    """Look up a robot model by name; an unknown name lists the valid ones."""
    try:
        return ROBOT_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown robot model {name!r}; choose one of: {', '.join(sorted(ROBOT_MODELS))}") from None
