"""The backend interface every simulator behind sern implements.

Arrays carry a leading world axis ``B`` (1 for single-world engines such as PyBullet,
many for the vectorised engine), then the robot axis ``N`` in ``robot_<i>`` order.
Units and axes follow REP-103: metres, radians, x forward, y left, z up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from worlds.checks import check_backend
from worlds.errors import WorldFileError
from worlds.spec import WorldSpec, command_bounds

# Segmentation ids in camera frames (see Backend.segmentation_labels).
SEG_NONE = 0
SEG_GROUND = 1
SEG_WALL = 2
SEG_OBSTACLE_BASE = 100  # obstacle k -> 100 + k
SEG_ROBOT_BASE = 1000  # robot i -> 1000 + i


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, so callers can choose or refuse it."""

    physics: bool  # rigid-body dynamics (contacts, friction, inertia), not only kinematics
    lidar: bool
    cameras: bool
    vectorised: bool  # more than one world per instance


@dataclass
class RobotStates:
    """Poses ``(B, N, 3)`` as map-frame x, y, yaw and twists ``(B, N, 3)`` as body-frame
    vx, vy, wz, at simulation time ``time_s``."""

    poses: np.ndarray
    twists: np.ndarray
    time_s: float


@dataclass
class CameraFrame:
    """One camera image: RGB ``(H, W, 3)`` uint8, depth ``(H, W)`` float32 metres
    (``inf`` where nothing is hit), segmentation ``(H, W)`` int32 ids."""

    rgb: np.ndarray
    depth: np.ndarray
    segmentation: np.ndarray


@dataclass(frozen=True)
class Dynamics:
    """Physical parameters a backend may vary from its defaults, e.g. to stand in for a
    real robot whose tyres, load and motors differ from the twin's."""

    friction_scale: float = 1.0  # multiplies tyre-ground friction
    mass_scale: float = 1.0  # multiplies chassis mass (payload)
    motor_time_constant_s: float = 0.0  # first-order lag from command to wheel speed
    wheel_slip: float = 0.0  # fraction of commanded wheel speed lost (0 = none)


class CommandError(ValueError):
    """A command a backend refuses (wrong shape, NaN or inf)."""


def require_runnable(world: WorldSpec, backend: str) -> None:
    """Raise ``WorldFileError`` if ``backend`` cannot run ``world`` (a backend missing from
    this build, a robot model it cannot simulate): the same check as the world file's, for a
    backend chosen in place of the world's own (``sern run --backend``)."""
    problems = check_backend(world, backend)
    if problems:
        source = world.source if backend == world.backend else f"{world.source} (backend = {backend})"
        raise WorldFileError(source, problems)


class Backend(ABC):
    """A simulator that can hold a world and step its robots.

    Subclasses set ``name`` and ``capabilities`` and implement the abstract methods.
    Engines are imported inside ``__init__`` so importing ``sim_bridge`` needs none.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, world: WorldSpec, num_worlds: int = 1, dynamics: Dynamics | None = None):
        require_runnable(world, self.name)
        self.world = world
        self.num_worlds = num_worlds
        self.robots = world.robot_entries()
        self.num_robots = len(self.robots)
        self.dynamics = dynamics or Dynamics()

    @abstractmethod
    def reset(self, seed: int | None, starts: np.ndarray) -> None:
        """Rebuild the world with robots at ``starts`` ``(B, N, 3)``, at rest, time 0."""

    @abstractmethod
    def apply(self, commands: np.ndarray) -> None:
        """Set each robot's commanded (v m/s, ω rad/s), ``(B, N, 2)``, held until the next
        call. Commands beyond the robot's limits are clipped; NaN or inf raises
        ``CommandError`` naming the robot."""

    @abstractmethod
    def step(self, dt: float) -> None:
        """Advance simulated time by ``dt`` seconds (a multiple of the physics period)."""

    @abstractmethod
    def states(self) -> RobotStates: ...

    @abstractmethod
    def lidar(self) -> np.ndarray:
        """Ranges ``(B, N, beams)`` in metres for the world's lidar; ``inf`` = no return."""

    @abstractmethod
    def contacts(self) -> np.ndarray:
        """``(B, N)`` bool: the robot touches an obstacle, a wall or another robot."""

    def set_states(self, poses: np.ndarray, twists: np.ndarray | None = None) -> None:
        """Place robots at ``poses`` ``(B, N, 3)`` with body ``twists`` ``(B, N, 3)`` (default
        at rest), e.g. to put virtual twins where their physical robots are."""
        raise NotImplementedError(f"the {self.name} backend cannot place robots")

    def render(self, robot: int, world: int = 0) -> CameraFrame:
        """The world's camera on robot ``robot``."""
        raise NotImplementedError(f"the {self.name} backend has no cameras")

    def segmentation_labels(self) -> dict[int, str]:
        """Names of the segmentation ids that can appear in camera frames."""
        labels = {SEG_NONE: "none", SEG_GROUND: "ground", SEG_WALL: "wall"}
        labels.update({SEG_OBSTACLE_BASE + k: f"obstacle_{k}" for k in range(len(self.world.obstacles))})
        labels.update({SEG_ROBOT_BASE + r.index: r.name for r in self.robots})
        return labels

    def close(self) -> None:
        """Release the engine. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- shared helpers ----------------------------------------------------------------
    def _checked_commands(self, commands: np.ndarray) -> np.ndarray:
        """Validate shape and finiteness, then clip each robot's (v, ω) to its limits."""
        cmd = np.asarray(commands, dtype=float)
        want = (self.num_worlds, self.num_robots, 2)
        if cmd.shape != want:
            raise CommandError(f"commands must have shape {want} (worlds, robots, [v, ω]); got {cmd.shape}")
        bad = ~np.isfinite(cmd).all(axis=2)
        if bad.any():
            b, i = np.argwhere(bad)[0]
            raise CommandError(f"{self.robots[i].name}: command {cmd[b, i].tolist()} is not finite")
        return np.clip(cmd, *command_bounds(self.robots))
