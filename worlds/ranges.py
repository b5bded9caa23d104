"""The ranges a world file's numbers may take: what a real world can have.

Every number in the format has a lower and an upper bound, so that a value that passes
``sern check`` also runs: a 10³⁰ m arena, a 10⁹-beam lidar or a 10⁶ s episode is refused
with the key and the allowed range instead of exhausting memory mid-run. NaN and inf are
refused everywhere (``Spec`` sets ``allow_inf_nan=False``). The bounds are generous
(a 1 km field, a 4096-beam lidar, an hour-long episode, 1024 robots) and documented in
``worlds/FORMAT.md``; ``tests/test_world_files.py`` checks that every numeric field of
every spec (tasks' included) has both bounds.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Largest arena side (m): a field a few robots can cover; also bounds every length in a
# world (radii, sensing ranges, region corners), since nothing useful lies beyond it.
MAX_ARENA_M = 1000.0
MIN_ARENA_M = 1.0
MAX_HEIGHT_M = 100.0  # walls, obstacles, sensors above the ground
MAX_EPISODE_S = 3600.0  # an hour of simulated time
MAX_SPEED_MPS = 50.0  # ground robots (and evaders, pushed objects)
MAX_ACCEL_MPS2 = 100.0
MAX_ANGULAR_SPEED_RADPS = 50.0
MAX_ANGULAR_ACCEL_RADPS2 = 500.0
MAX_ROBOTS = 1024  # in one world, all groups together
MAX_ROBOT_GROUPS = 64
MAX_OBSTACLES = 1000
MAX_BEAMS = 4096  # scanning lidars have ~10²–10³ beams per revolution
MAX_PIXELS_SIDE = 4096
MIN_PHYSICS_RATE_HZ, MAX_PHYSICS_RATE_HZ = 20, 2000
MIN_CONTROL_RATE_HZ, MAX_CONTROL_RATE_HZ = 1, 200
MAX_SENSOR_RATE_HZ = 200.0
MAX_REWARD_WEIGHT = 1e4
MAX_NOISE_STD_M = 10.0
MAX_SEED = 2**32 - 1  # what every RNG in the stack (numpy, torch, PyBullet) accepts

Length_m = Annotated[float, Field(gt=0, le=MAX_ARENA_M)]
"""A positive length, radius or range (m)."""
Distance_m = Annotated[float, Field(ge=0, le=MAX_ARENA_M)]
"""A length that may be zero (m)."""
Coordinate_m = Annotated[float, Field(ge=-MAX_ARENA_M, le=MAX_ARENA_M)]
"""A map-frame coordinate (m); the checks also keep things inside their arena."""
ArenaSide_m = Annotated[float, Field(ge=MIN_ARENA_M, le=MAX_ARENA_M)]
Height_m = Annotated[float, Field(gt=0, le=MAX_HEIGHT_M)]
Angle_deg = Annotated[float, Field(ge=-360, le=360)]
Duration_s = Annotated[float, Field(gt=0, le=MAX_EPISODE_S)]
Speed_mps = Annotated[float, Field(gt=0, le=MAX_SPEED_MPS)]
Accel_mps2 = Annotated[float, Field(gt=0, le=MAX_ACCEL_MPS2)]
AngularSpeed_radps = Annotated[float, Field(gt=0, le=MAX_ANGULAR_SPEED_RADPS)]
AngularAccel_radps2 = Annotated[float, Field(gt=0, le=MAX_ANGULAR_ACCEL_RADPS2)]
ReverseSpeed_mps = Annotated[float, Field(ge=-MAX_SPEED_MPS, le=0)]
SensorRate_hz = Annotated[float, Field(gt=0, le=MAX_SENSOR_RATE_HZ)]
Fraction = Annotated[float, Field(ge=0, le=1)]
RewardWeight = Annotated[float, Field(ge=0, le=MAX_REWARD_WEIGHT)]
"""A reward term's weight (dimensionless, per unit of what it weighs)."""
NoiseStd_m = Annotated[float, Field(ge=0, le=MAX_NOISE_STD_M)]
Beams = Annotated[int, Field(ge=1, le=MAX_BEAMS)]
Pixels = Annotated[int, Field(ge=1, le=MAX_PIXELS_SIDE)]
RobotCount = Annotated[int, Field(ge=1, le=MAX_ROBOTS)]
Neighbours = Annotated[int, Field(ge=0, le=16)]
"""How many nearest robots an observation lists."""
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
PhysicsRate_hz = Annotated[int, Field(ge=MIN_PHYSICS_RATE_HZ, le=MAX_PHYSICS_RATE_HZ)]
ControlRate_hz = Annotated[int, Field(ge=MIN_CONTROL_RATE_HZ, le=MAX_CONTROL_RATE_HZ)]
