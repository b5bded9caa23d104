"""PyBullet backend: rigid-body ground robots in DIRECT (headless) mode.

Physics runs at the world's ``physics_rate_hz``; commands are ramped under the robots'
acceleration limits once per control period (``control_rate_hz``) and held as wheel
velocity targets in between. Cameras use TinyRenderer. Every PyBullet call passes
``physicsClientId`` so several backends can live in one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim_bridge.backends.base import (
    SEG_GROUND,
    SEG_NONE,
    SEG_OBSTACLE_BASE,
    SEG_ROBOT_BASE,
    SEG_WALL,
    Backend,
    CameraFrame,
    Capabilities,
    Dynamics,
    RobotStates,
)
from worlds.robots import RobotModel
from worlds.spec import BoxObstacle, WorldSpec

MODELS_DIR = Path(__file__).resolve().parent / "models"
CONTACT_TOLERANCE_M = 1e-3  # penetration-or-touching threshold for a contact


@dataclass(frozen=True)
class Asset:
    """How one robot model is built in PyBullet."""

    urdf: str  # path, or a pybullet_data-relative name
    left_wheels: tuple[str, ...]
    right_wheels: tuple[str, ...]
    max_wheel_torque_nm: float
    # Skid-steer robots turn slower than their geometric track predicts; like
    # diff_drive_controller's wheel_separation_multiplier, widen the track to match.
    track_multiplier: float = 1.0
    tyre_lateral_friction: float = 1.0  # anisotropic: along the axle, relative to rolling
    passive_links: tuple[str, ...] = ()  # casters: frictionless
    camera_mount: tuple[float, float, float] = (0.3, 0.0, 0.5)  # x, z (m), pitch (deg, + = down)


ASSETS: dict[str, Asset] = {
    "husky": Asset(
        urdf="husky/husky.urdf",
        left_wheels=("front_left_wheel", "rear_left_wheel"),
        right_wheels=("front_right_wheel", "rear_right_wheel"),
        max_wheel_torque_nm=60.0,
        track_multiplier=1.15,
        tyre_lateral_friction=0.3,
        camera_mount=(0.45, 0.55, 10.0),
    ),
    "box": Asset(
        urdf=str(MODELS_DIR / "box_robot.urdf"),
        left_wheels=("left_wheel",),
        right_wheels=("right_wheel",),
        max_wheel_torque_nm=5.0,
        passive_links=("front_caster_link", "rear_caster_link"),
        camera_mount=(0.26, 0.26, 5.0),
    ),
}


@contextlib.contextmanager
def _quiet_c_output():
    """Silence what PyBullet's C code prints (its build date, URDF parser warnings).

    Python-level output is unaffected; C-level writes to fds 1 and 2 go to /dev/null.
    """
    saved: list[tuple[int, int]] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
            fd = stream.fileno()
            saved.append((fd, os.dup(fd)))
    try:
        with open(os.devnull, "w") as devnull:
            for fd, _ in saved:
                os.dup2(devnull.fileno(), fd)
        yield
    finally:
        _flush_c_stdio()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _flush_c_stdio() -> None:
    """Flush C's stdout buffer (PyBullet's printf) before the real stdout comes back."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


class _Robot:
    """A robot's body and the per-robot constants the control loop needs."""

    def __init__(self, uid: int, model: RobotModel, asset: Asset, left: list[int], right: list[int]):
        self.uid = uid
        self.model = model
        self.asset = asset
        self.joints = left + right
        self.n_left = len(left)
        self.track_eff = model.track_m * asset.track_multiplier
        # Distance from the centre to the footprint edge, for lidar rays to start outside it.
        self.half_length = 0.5 * model.length_m
        self.half_width = 0.5 * model.width_m


class PyBulletBackend(Backend):
    """Rigid-body simulation of the world's robots in PyBullet (one world per instance)."""

    name = "pybullet"
    capabilities = Capabilities(physics=True, lidar=True, cameras=True, vectorised=False)

    def __init__(self, world: WorldSpec, num_worlds: int = 1, dynamics: Dynamics | None = None):
        if num_worlds != 1:
            raise ValueError("the pybullet backend holds one world per instance (num_worlds=1)")
        super().__init__(world, num_worlds, dynamics)
        with _quiet_c_output():  # its import prints the build date
            import pybullet
            import pybullet_data

        self._p = pybullet
        self._data_path = pybullet_data.getDataPath()
        with _quiet_c_output():
            self._cid = pybullet.connect(pybullet.DIRECT)
        self._bodies: list[_Robot] = []
        self._seg_lut = np.zeros(1, dtype=np.int32)
        self._time_s = 0.0
        self._cmd_target = np.zeros((self.num_robots, 2))
        self._cmd = np.zeros((self.num_robots, 2))
        self._wheel_speed = np.zeros((self.num_robots, 2))  # left, right (rad/s), after motor lag
        self._lidar_cache: np.ndarray | None = None
        self._contacts = np.zeros((1, self.num_robots), dtype=bool)
        self._rng = np.random.default_rng(0)
        self._physics_dt = 1.0 / world.physics_rate_hz
        lid = world.sensors.lidar
        self._beam_angles = lid.angles()
        self._built = False

    # ---- building --------------------------------------------------------------------
    def reset(self, seed: int | None, starts: np.ndarray) -> None:
        starts = np.asarray(starts, dtype=float).reshape(1, self.num_robots, 3)[0]
        p, cid = self._p, self._cid
        p.resetSimulation(physicsClientId=cid)
        p.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setTimeStep(self._physics_dt, physicsClientId=cid)
        p.setAdditionalSearchPath(self._data_path, physicsClientId=cid)
        seg: dict[int, int] = {}
        with _quiet_c_output():
            plane = p.loadURDF("plane.urdf", physicsClientId=cid)
            seg[plane] = SEG_GROUND
            for uid in self._build_walls():
                seg[uid] = SEG_WALL
            for k, obstacle in enumerate(self.world.obstacles):
                seg[self._build_obstacle(obstacle)] = SEG_OBSTACLE_BASE + k
            self._bodies = []
            for entry, pose in zip(self.robots, starts, strict=True):
                body = self._build_robot(entry.model, pose)
                seg[body.uid] = SEG_ROBOT_BASE + entry.index
                self._bodies.append(body)
        self._plane = plane
        self._seg_lut = np.full(max(seg) + 2, SEG_NONE, dtype=np.int32)
        for uid, label in seg.items():
            self._seg_lut[uid + 1] = label  # PyBullet marks "nothing" as -1
        self._time_s = 0.0
        self._cmd_target[:] = 0.0
        self._cmd[:] = 0.0
        self._wheel_speed[:] = 0.0
        self._lidar_cache = None
        self._contacts[:] = False
        self._rng = np.random.default_rng(seed)
        self._built = True

    def _build_walls(self) -> list[int]:
        arena = self.world.arena
        if not arena.walls:
            return []
        hx, hy = arena.half_extents
        t, h = arena.wall_thickness_m, arena.wall_height_m
        # Inner faces sit exactly on the arena boundary.
        walls = [
            ((0.0, hy + t / 2), (hx + t, t / 2)),
            ((0.0, -hy - t / 2), (hx + t, t / 2)),
            ((hx + t / 2, 0.0), (t / 2, hy + t)),
            ((-hx - t / 2, 0.0), (t / 2, hy + t)),
        ]
        return [self._static_box(c, (e[0], e[1], h / 2), 0.0, (0.6, 0.6, 0.65, 1)) for c, e in walls]

    def _build_obstacle(self, obstacle) -> int:
        p, cid = self._p, self._cid
        h = obstacle.height_m
        if isinstance(obstacle, BoxObstacle):
            half = (obstacle.size_m[0] / 2, obstacle.size_m[1] / 2, h / 2)
            return self._static_box(obstacle.position, half, math.radians(obstacle.yaw_deg), (0.55, 0.35, 0.2, 1))
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=obstacle.radius_m, height=h, physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_CYLINDER, radius=obstacle.radius_m, length=h, rgbaColor=(0.3, 0.45, 0.3, 1), physicsClientId=cid
        )
        x, y = obstacle.position
        return p.createMultiBody(0, col, vis, [x, y, h / 2], physicsClientId=cid)

    def _static_box(self, centre, half_extents, yaw: float, rgba) -> int:
        p, cid = self._p, self._cid
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half_extents, physicsClientId=cid)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half_extents, rgbaColor=rgba, physicsClientId=cid)
        orn = p.getQuaternionFromEuler([0, 0, yaw])
        pos = [centre[0], centre[1], half_extents[2]]
        return p.createMultiBody(0, col, vis, pos, orn, physicsClientId=cid)

    def _build_robot(self, model: RobotModel, pose: np.ndarray) -> _Robot:
        p, cid = self._p, self._cid
        asset = ASSETS[model.name]
        orn = p.getQuaternionFromEuler([0, 0, float(pose[2])])
        uid = p.loadURDF(
            asset.urdf,
            [float(pose[0]), float(pose[1]), 0.005],
            orn,
            flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES,
            physicsClientId=cid,
        )
        names = {
            p.getJointInfo(uid, j, physicsClientId=cid)[1].decode(): j
            for j in range(p.getNumJoints(uid, physicsClientId=cid))
        }
        links = {
            p.getJointInfo(uid, j, physicsClientId=cid)[12].decode(): j
            for j in range(p.getNumJoints(uid, physicsClientId=cid))
        }
        left = [names[n] for n in asset.left_wheels]
        right = [names[n] for n in asset.right_wheels]
        dyn = self.dynamics
        for j in left + right:
            p.changeDynamics(
                uid,
                j,
                lateralFriction=1.0 * dyn.friction_scale,
                anisotropicFriction=[1.0, asset.tyre_lateral_friction, 1.0],
                physicsClientId=cid,
            )
            # Release the default velocity motors before commanding ours.
            p.setJointMotorControl2(uid, j, p.VELOCITY_CONTROL, targetVelocity=0, force=0, physicsClientId=cid)
        for name in asset.passive_links:
            p.changeDynamics(uid, links[name], lateralFriction=0.0, physicsClientId=cid)
        if dyn.mass_scale != 1.0:
            mass = p.getDynamicsInfo(uid, -1, physicsClientId=cid)[0]
            p.changeDynamics(uid, -1, mass=mass * dyn.mass_scale, physicsClientId=cid)
        return _Robot(uid, model, asset, left, right)

    # ---- stepping ----------------------------------------------------------------------
    def apply(self, commands: np.ndarray) -> None:
        self._require_built()
        self._cmd_target = self._checked_commands(commands)[0]

    def step(self, dt: float) -> None:
        self._require_built()
        n_steps = round(dt / self._physics_dt)
        if n_steps < 1 or abs(n_steps * self._physics_dt - dt) > 1e-9:
            raise ValueError(
                f"dt={dt} s is not a whole number of physics steps of {self._physics_dt:.6f} s "
                f"({self.world.physics_rate_hz} Hz)"
            )
        per_control = self.world.physics_steps_per_control
        p, cid = self._p, self._cid
        done = 0
        while done < n_steps:
            chunk = min(per_control, n_steps - done)
            self._update_wheels(chunk * self._physics_dt)
            for _ in range(chunk):
                p.stepSimulation(physicsClientId=cid)
            done += chunk
        self._time_s += n_steps * self._physics_dt
        self._lidar_cache = None
        self._contacts = self._read_contacts()

    def _update_wheels(self, dt: float) -> None:
        """Ramp commands under acceleration limits, then set wheel velocity targets."""
        lim = self.robots
        a_max = np.array([[r.limits.max_linear_accel_mps2, r.limits.max_angular_accel_radps2] for r in lim])
        self._cmd += np.clip(self._cmd_target - self._cmd, -a_max * dt, a_max * dt)
        dyn = self.dynamics
        p, cid = self._p, self._cid
        for i, body in enumerate(self._bodies):
            v, w = self._cmd[i]
            r = body.model.wheel_radius_m
            target = np.array([(v - w * body.track_eff / 2) / r, (v + w * body.track_eff / 2) / r])
            target *= 1.0 - dyn.wheel_slip
            if dyn.motor_time_constant_s > 0:
                alpha = 1.0 - math.exp(-dt / dyn.motor_time_constant_s)
                self._wheel_speed[i] += alpha * (target - self._wheel_speed[i])
            else:
                self._wheel_speed[i] = target
            speeds = [self._wheel_speed[i, 0]] * body.n_left + [self._wheel_speed[i, 1]] * (
                len(body.joints) - body.n_left
            )
            p.setJointMotorControlArray(
                body.uid,
                body.joints,
                p.VELOCITY_CONTROL,
                targetVelocities=speeds,
                forces=[body.asset.max_wheel_torque_nm] * len(body.joints),
                physicsClientId=cid,
            )

    def set_states(self, poses: np.ndarray, twists: np.ndarray | None = None) -> None:
        self._require_built()
        poses = np.asarray(poses, dtype=float).reshape(self.num_robots, 3)
        twists = np.zeros_like(poses) if twists is None else np.asarray(twists, dtype=float).reshape(-1, 3)
        if not (np.isfinite(poses).all() and np.isfinite(twists).all()):
            raise ValueError("poses and twists must be finite")
        p, cid = self._p, self._cid
        for body, (x, y, yaw), (vx, vy, wz) in zip(self._bodies, poses, twists, strict=True):
            z = p.getBasePositionAndOrientation(body.uid, physicsClientId=cid)[0][2]
            p.resetBasePositionAndOrientation(
                body.uid, [x, y, z], p.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=cid
            )
            c, s = math.cos(yaw), math.sin(yaw)
            p.resetBaseVelocity(body.uid, [c * vx - s * vy, s * vx + c * vy, 0.0], [0, 0, wz], physicsClientId=cid)
        self._lidar_cache = None

    # ---- reading -----------------------------------------------------------------------
    def states(self) -> RobotStates:
        self._require_built()
        p, cid = self._p, self._cid
        poses = np.zeros((1, self.num_robots, 3))
        twists = np.zeros((1, self.num_robots, 3))
        for i, body in enumerate(self._bodies):
            pos, orn = p.getBasePositionAndOrientation(body.uid, physicsClientId=cid)
            lin, ang = p.getBaseVelocity(body.uid, physicsClientId=cid)
            yaw = _yaw_of(orn)
            c, s = math.cos(yaw), math.sin(yaw)
            poses[0, i] = (pos[0], pos[1], yaw)
            twists[0, i] = (c * lin[0] + s * lin[1], -s * lin[0] + c * lin[1], ang[2])
        return RobotStates(poses, twists, self._time_s)

    def lidar(self) -> np.ndarray:
        self._require_built()
        if self._lidar_cache is None:
            self._lidar_cache = self._cast_lidar()
        return self._lidar_cache

    def _cast_lidar(self) -> np.ndarray:
        lid = self.world.sensors.lidar
        poses = self.states().poses[0]
        beams = len(self._beam_angles)
        starts_all, ends_all, offsets = [], [], []
        for i, body in enumerate(self._bodies):
            # Start each ray just outside the robot's own footprint so it cannot hit itself.
            c, s = np.abs(np.cos(self._beam_angles)), np.abs(np.sin(self._beam_angles))
            with np.errstate(divide="ignore"):
                edge = np.minimum(body.half_length / c, body.half_width / s) + 0.02
            offset = np.maximum(edge, lid.range_min_m)
            world_angles = poses[i, 2] + self._beam_angles
            d = np.column_stack([np.cos(world_angles), np.sin(world_angles), np.zeros(beams)])
            origin = np.array([poses[i, 0], poses[i, 1], lid.height_m])
            starts_all.append(origin + d * offset[:, None])
            ends_all.append(origin + d * lid.range_max_m)
            offsets.append(offset)
        starts = np.concatenate(starts_all)
        ends = np.concatenate(ends_all)
        hits = self._p.rayTestBatch(starts.tolist(), ends.tolist(), physicsClientId=self._cid)
        frac = np.array([h[2] for h in hits]).reshape(self.num_robots, beams)
        uid = np.array([h[0] for h in hits]).reshape(self.num_robots, beams)
        off = np.stack(offsets)
        ranges = off + frac * (lid.range_max_m - off)
        ranges[uid < 0] = np.inf
        if lid.noise_std_m > 0:
            ranges = ranges + self._rng.normal(0.0, lid.noise_std_m, ranges.shape)
        return np.maximum(ranges, lid.range_min_m)[None]

    def _read_contacts(self) -> np.ndarray:
        p, cid = self._p, self._cid
        out = np.zeros((1, self.num_robots), dtype=bool)
        for i, body in enumerate(self._bodies):
            for c in p.getContactPoints(bodyA=body.uid, physicsClientId=cid):
                if c[2] != self._plane and c[8] <= CONTACT_TOLERANCE_M:
                    out[0, i] = True
                    break
        return out

    def contacts(self) -> np.ndarray:
        self._require_built()
        return self._contacts.copy()

    def render(self, robot: int, world: int = 0) -> CameraFrame:
        self._require_built()
        cam = self.world.sensors.camera
        if cam is None:
            raise ValueError(f"{self.world.source}: the world has no camera (sensors.camera)")
        if not 0 <= robot < self.num_robots:
            raise IndexError(f"robot {robot} does not exist (0..{self.num_robots - 1})")
        p, cid = self._p, self._cid
        body = self._bodies[robot]
        pos, orn = p.getBasePositionAndOrientation(body.uid, physicsClientId=cid)
        rot = np.array(p.getMatrixFromQuaternion(orn)).reshape(3, 3)
        mx, mz, pitch_deg = body.asset.camera_mount
        eye = np.array(pos) + rot @ np.array([mx, 0.0, mz])
        pitch = math.radians(pitch_deg)
        forward = rot @ np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
        up = rot @ np.array([math.sin(pitch), 0.0, math.cos(pitch)])
        view = p.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), up.tolist(), physicsClientId=cid)
        proj = p.computeProjectionMatrixFOV(
            cam.fov_deg, cam.width / cam.height, cam.near_m, cam.far_m, physicsClientId=cid
        )
        _, _, rgba, depth_buf, seg = p.getCameraImage(
            cam.width,
            cam.height,
            view,
            proj,
            renderer=p.ER_TINY_RENDERER,
            physicsClientId=cid,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)
        depth_buf = np.asarray(depth_buf, dtype=np.float32).reshape(cam.height, cam.width)
        seg = np.asarray(seg, dtype=np.int64).reshape(cam.height, cam.width)
        near, far = cam.near_m, cam.far_m
        depth = far * near / (far - (far - near) * depth_buf)
        depth = np.where(depth_buf >= 1.0, np.inf, depth).astype(np.float32)
        seg_ids = self._seg_lut[np.clip(seg & ((1 << 24) - 1), -1, len(self._seg_lut) - 2) + 1]
        seg_ids = np.where(seg < 0, SEG_NONE, seg_ids).astype(np.int32)
        return CameraFrame(rgb=np.ascontiguousarray(rgba[..., :3]), depth=depth, segmentation=seg_ids)

    def close(self) -> None:
        if self._cid is not None and self._cid >= 0:
            with contextlib.suppress(Exception):
                self._p.disconnect(physicsClientId=self._cid)
            self._cid = -1

    def _require_built(self) -> None:
        if not self._built:
            raise RuntimeError("call reset(seed, starts) before using the backend")


def _yaw_of(q) -> float:
    x, y, z, w = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
