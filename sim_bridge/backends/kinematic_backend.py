"""The vectorised kinematic engine: B worlds × N robots in arrays, stepped by compiled
kernels (``sim_bridge.backends.kinematics``).

Robots are discs (the footprint's enclosing circle) that follow their commands under
speed and acceleration limits: unicycles ``(v, ω)`` for differential drives, ``(vx, vy)``
for holonomic ones. Walls, boxes and cylinders block them; overlaps are resolved by
pushing robots apart and flagged as contacts. The lidar is exact ray casting against the
same shapes. No rigid-body dynamics, no cameras: this engine is for large swarms and
training; PyBullet is for physical fidelity. It steps at the world's control rate.
"""

from __future__ import annotations

import numpy as np

from sim_bridge.backends import kinematics as K
from sim_bridge.backends.base import Backend, Capabilities, Dynamics, RobotStates
from worlds.compiled import build_for
from worlds.spec import WorldSpec
from worlds.tasks.kernels import ObstacleShapes


class KinematicBackend(Backend):
    """Batched kinematic simulation of a world (see the module docstring)."""

    name = "kinematic"
    capabilities = Capabilities(physics=False, lidar=True, cameras=False, vectorised=True)

    def __init__(self, world: WorldSpec, num_worlds: int = 1, dynamics: Dynamics | None = None):
        if num_worlds < 1:
            raise ValueError(f"num_worlds must be at least 1, got {num_worlds}")
        super().__init__(world, num_worlds, dynamics)
        B, N = num_worlds, self.num_robots
        self.radii = np.array([r.model.radius_m for r in self.robots])
        self.holonomic = np.array([r.model.holonomic for r in self.robots])
        lim = [r.limits for r in self.robots]
        scale = max(1.0 - self.dynamics.wheel_slip, 0.0)
        self.accel = np.array([[lm.max_linear_accel_mps2, lm.max_angular_accel_radps2] for lm in lim])
        self.max_speed = np.array([[lm.max_linear_speed_mps * scale, lm.max_angular_speed_radps] for lm in lim])
        shapes = ObstacleShapes(world)
        self.cylinders, self.boxes = shapes.cylinders, shapes.boxes
        self.hx, self.hy, self.walls = shapes.hx, shapes.hy, shapes.walls
        lidar = world.sensors.lidar
        self.beam_angles = lidar.angles()
        self.pos = np.zeros((B, N, 2))
        self.yaw = np.zeros((B, N))
        self.vel = np.zeros((B, N, 2))
        self.target = np.zeros((B, N, 2))
        self._contacts = np.zeros((B, N), dtype=bool)
        self._lidar = np.zeros((B, N, len(self.beam_angles)))
        self._lidar_valid = False
        self.time_s = np.zeros(B)
        self._dt = world.control_dt
        self._integrate = build_for(B, K.integrate, K.integrate_parallel)
        self._collide = build_for(B, K.collide, K.collide_parallel)
        self._cast = build_for(B, K.lidar, K.lidar_parallel)
        self._built = False

    # ---- episode ---------------------------------------------------------------------------
    def reset(self, seed: int | None, starts: np.ndarray) -> None:
        starts = np.asarray(starts, dtype=float).reshape(self.num_worlds, self.num_robots, 3)
        self.reset_worlds(np.arange(self.num_worlds), starts)

    def reset_worlds(self, worlds: np.ndarray, starts: np.ndarray) -> None:
        """Restart only the given worlds, robots at ``starts`` ``(len(worlds), N, 3)``."""
        worlds = np.asarray(worlds, dtype=int)
        self.pos[worlds] = starts[..., :2]
        self.yaw[worlds] = starts[..., 2]
        self.vel[worlds] = 0.0
        self.target[worlds] = 0.0
        self._contacts[worlds] = False
        self.time_s[worlds] = 0.0
        self._lidar_valid = False
        self._built = True

    # ---- stepping ----------------------------------------------------------------------------
    def apply(self, commands: np.ndarray) -> None:
        self._require_built()
        self.target[:] = self._checked_commands(commands)

    def apply_unchecked(self, commands: np.ndarray) -> None:
        """Set commands already known to be finite and in limits (training loops)."""
        self.target[:] = commands

    def step(self, dt: float) -> None:
        self._require_built()
        n = round(dt / self._dt)
        if n < 1 or abs(n * self._dt - dt) > 1e-9:
            raise ValueError(
                f"dt={dt} s is not a whole number of control periods of {self._dt:g} s (the kinematic engine's step)"
            )
        for _ in range(n):
            self._integrate(
                self.pos, self.yaw, self.vel, self.target, self.accel, self.max_speed, self.holonomic, self._dt
            )
            self._collide(
                self.pos, self.radii, self.cylinders, self.boxes, self.hx, self.hy, self.walls, self._contacts, 2
            )
        self.time_s += n * self._dt
        self._lidar_valid = False

    # ---- reading -----------------------------------------------------------------------------
    def states(self) -> RobotStates:
        self._require_built()
        poses = np.concatenate([self.pos, self.yaw[..., None]], axis=-1)
        twists = np.zeros_like(poses)
        holo = self.holonomic
        twists[..., ~holo, 0] = self.vel[..., ~holo, 0]
        twists[..., ~holo, 2] = self.vel[..., ~holo, 1]
        twists[..., holo, 0] = self.vel[..., holo, 0]
        twists[..., holo, 1] = self.vel[..., holo, 1]
        return RobotStates(poses, twists, float(self.time_s[0]))

    def lidar(self) -> np.ndarray:
        self._require_built()
        if not self._lidar_valid:
            lid = self.world.sensors.lidar
            self._cast(
                self.pos,
                self.yaw,
                self.radii,
                self.beam_angles,
                lid.range_min_m,
                lid.range_max_m,
                self.cylinders,
                self.boxes,
                self.hx,
                self.hy,
                self.walls,
                self._lidar,
            )
            self._lidar_valid = True
        return self._lidar

    def contacts(self) -> np.ndarray:
        self._require_built()
        return self._contacts.copy()

    def set_states(self, poses: np.ndarray, twists: np.ndarray | None = None) -> None:
        self._require_built()
        poses = np.asarray(poses, dtype=float).reshape(self.num_worlds, self.num_robots, 3)
        if not np.isfinite(poses).all():
            raise ValueError("poses must be finite")
        self.pos[:] = poses[..., :2]
        self.yaw[:] = poses[..., 2]
        if twists is not None:
            tw = np.asarray(twists, dtype=float).reshape(self.num_worlds, self.num_robots, 3)
            self.vel[..., 0] = tw[..., 0]
            self.vel[..., 1] = np.where(self.holonomic, tw[..., 1], tw[..., 2])
        self._lidar_valid = False

    def _require_built(self) -> None:
        if not self._built:
            raise RuntimeError("call reset(seed, starts) before using the backend")
