"""A world's robots on a backend, stepped in fixed increments and driven by gated
commands: the core shared by the sim node and the robot stand-in (no ROS here).

Time here is the simulation's own clock, starting at 0. A node maps it to ROS time: the
stand-in runs it in lockstep with the wall clock, the sim node at a real-time factor.
"""

from __future__ import annotations

import math

import numpy as np

from sim_bridge.backends import Backend, Dynamics, make_backend
from sim_bridge.episode import Episode, episode_for_seed
from sim_bridge.safety import CommandGate, GateResult
from worlds import WorldSpec, make_task


class Fleet:
    """Robots of ``world`` on a backend, advanced ``step_s`` at a time."""

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
        self.world = world
        self.step_s = step_s
        self.task = make_task(world)
        self.episode: Episode = episode_for_seed(world, self.task, seed)
        self.backend = backend or make_backend(world, dynamics=dynamics)
        self.backend.reset(self.episode.backend_seed, self.episode.starts[None])
        self.robots = world.robot_entries()
        self.names = [r.name for r in self.robots]
        self.gates = [CommandGate(r.limits, cmd_timeout_s) for r in self.robots]
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
        self.backend.apply(cmds[None])
        self.backend.step(self.step_s)
        self.steps += 1
        self.time_s = self.steps * self.step_s

    def steps_due(self, elapsed_s: float, max_steps: int = 50) -> int:
        """How many steps bring simulation time up to ``elapsed_s`` (capped, so a stall
        does not turn into a burst)."""
        due = math.floor(elapsed_s / self.step_s + 1e-9) - self.steps
        return max(0, min(due, max_steps))

    def close(self) -> None:
        self.backend.close()
