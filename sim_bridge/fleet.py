"""A world's robots on a backend, stepped in fixed increments and driven by gated
commands: the core shared by the sim node and the robot stand-in (no ROS here).

Time here is the simulation's own clock, starting at 0. A node maps it to ROS time: the
stand-in runs it in lockstep with the wall clock, the sim node at a real-time factor.
"""

from __future__ import annotations

import math

import numpy as np

from sim_bridge.backends import Backend, Dynamics, backend_class, make_backend
from sim_bridge.episode import Episode, episode_for_seed
from sim_bridge.safety import CommandGate, GateResult
from worlds import WorldSpec, make_task


def step_for_rate(world: WorldSpec, rate_hz: float) -> float:
    """The step (s) a node advances ``world`` by to publish state at ``rate_hz``: the world's
    control period split into as many equal sub-steps as the rate asks for, as far as the
    world's engine can step that finely. A physics engine steps in whole physics periods
    (PyBullet at 240 Hz, control at 20 Hz: 60 Hz odometry is 3 sub-steps of 4 physics steps);
    the kinematic engine integrates whole control periods only, so its step is the control
    period whatever the rate (physics and control rates as in gym-pybullet-drones: the
    control period is what a policy acts on, the publishing rate is separate)."""
    if not rate_hz > 0:
        raise ValueError(f"a publishing rate must be > 0 Hz, got {rate_hz}")
    per_control = world.physics_steps_per_control if backend_class(world.backend).capabilities.physics else 1
    wanted = max(1, math.ceil(rate_hz / world.control_rate_hz - 1e-9))
    parts = next((d for d in range(wanted, per_control + 1) if per_control % d == 0), per_control)
    return world.control_dt / parts


class Fleet:
    """Robots of ``world`` on a backend, advanced ``step_s`` at a time.

    ``parked`` robots are held at zero command whatever they are sent (a robot whose task is
    done stays where it finished, as in the env)."""

    def __init__(
        self,
        world: WorldSpec,
        seed: int,
        step_s: float,
        cmd_timeout_s: float = 0.5,
        dynamics: Dynamics | None = None,
        backend: Backend | None = None,
    ):
        physics_dt = 1.0 / world.physics_rate_hz
        n = round(step_s / physics_dt)
        if n < 1 or abs(n * physics_dt - step_s) > 1e-9:
            rates = [world.physics_rate_hz // k for k in range(1, 13) if world.physics_rate_hz % k == 0]
            raise ValueError(
                f"a step of {step_s:g} s is not a whole number of {world.physics_rate_hz} Hz physics steps; "
                f"publish rates that work: {', '.join(str(r) for r in rates)} Hz"
            )
        capabilities = backend.capabilities if backend is not None else backend_class(world.backend).capabilities
        periods = step_s / world.control_dt
        if not capabilities.physics and (round(periods) < 1 or abs(round(periods) - periods) > 1e-9):
            rates = [f"{world.control_rate_hz / k:g}" for k in range(1, 5)]
            raise ValueError(
                f"a step of {step_s:g} s is not a whole number of the {world.control_rate_hz} Hz control periods "
                f"the {world.backend} engine steps by; rates that work: {', '.join(rates)} Hz"
            )
        self.world = world
        self.step_s = step_s
        self.cmd_timeout_s = cmd_timeout_s
        self.task = make_task(world)
        self.backend = backend or make_backend(world, dynamics=dynamics)
        self.robots = world.robot_entries()
        self.names = [r.name for r in self.robots]
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Start the episode ``seed`` draws (the same starts and task draw as the env's
        ``reset(seed=seed)``), at time 0, no robot parked, no command in force."""
        self.episode: Episode = episode_for_seed(self.world, self.task, seed)
        self.backend.reset(self.episode.backend_seed, self.episode.starts[None])
        self.gates = [CommandGate(r.limits, self.cmd_timeout_s) for r in self.robots]
        self.parked = np.zeros(len(self.robots), dtype=bool)
        self.time_s = 0.0
        self.steps = 0

    @property
    def goals(self) -> np.ndarray | None:
        return self.task.drawables().get("goals")

    def command(self, robot: int, v: float, w: float) -> GateResult:
        """A (v, ω) command for robot index ``robot``, arriving now (simulation time)."""
        return self.gates[robot].submit(v, w, self.time_s)

    def step(self) -> None:
        """Advance one step under the commands in force (stale ones count as stop)."""
        cmds = np.array([gate.current(self.time_s) for gate in self.gates], dtype=float)
        cmds[self.parked] = 0.0
        self.backend.apply(cmds[None])
        self.backend.step(self.step_s)
        self.steps += 1
        self.time_s = self.steps * self.step_s

    def close(self) -> None:
        self.backend.close()
