"""Scripted transport baseline: get behind the object, relative to the goal, and push.

Each robot, from its own observation only, works in polar coordinates around the object:
the robots it sees and itself, ranked by their angle round the object from its back (the
side facing away from the goal), take evenly spaced slots over the back arc, at most
``slot_max_deg`` either side of dead astern, in that order (so they spread without
talking). (1) Far from its slot
(more than ``align_deg`` round the object) it circles the object the short way, keeping
``orbit_gap_m`` off its edge; (2) near its slot it closes in and pushes: toward the object's
centre at the object's own speed plus a term that holds the gap at a slight press
(``press_m``), while sliding round toward its slot. It sidesteps neighbours on a
collision course and pushes off walls. Commands are holonomic (vx, vy) in the robot frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy, PolicyContext
from policies.scripted_pursuit import holonomic_command, neighbour_push, sidestep, visible, wall_push


@dataclass(frozen=True)
class TransportConfig:
    """Tuning of the scripted transport baseline."""

    slot_max_deg: float = 55.0
    """Furthest a pushing slot lies from dead astern of the object."""
    align_deg: float = 30.0
    """Angular error to the slot above which the robot circles instead of pushing."""
    orbit_gap_m: float = 0.3
    """Gap kept to the object's edge while circling it."""
    press_m: float = 0.02
    """How far into the object the pusher aims (it yields to that)."""
    gap_gain: float = 3.0
    """Closing speed per metre of gap (m/s per m)."""
    slide_gain: float = 2.0
    """Sliding speed round the object per metre of arc to the slot (m/s per m)."""
    avoid_m: float = 0.4
    """Centre distance to a neighbour below which robots push apart."""
    clearance_m: float = 0.4
    """Closest approach (centre to centre) to a neighbour that makes a robot sidestep."""
    horizon_s: float = 0.8
    wall_margin_m: float = 0.15


class TransportPolicy(Policy):
    """Circle to the back of the object, then push it toward the goal."""

    name = "scripted"

    def __init__(self, context: PolicyContext, config: TransportConfig | None = None):
        if context.task_name != "transport":
            raise ValueError(f"the scripted transport policy drives 'transport' tasks, not {context.task_name!r}")
        super().__init__(context)
        self.config = config or TransportConfig()
        s = context.observation_slices
        self._vel, self._walls, self._obj, self._goal, self._nb = (
            s["velocity"],
            s["walls"],
            s["object"],
            s["goal"],
            s["neighbours"],
        )

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: self._act_one(agent, np.asarray(obs, dtype=float)) for agent, obs in observations.items()}

    def _act_one(self, agent: str, obs: np.ndarray) -> np.ndarray:
        cfg = self.config
        lim = self.context.limits[agent]
        radius = self.context.robot_radius_m[agent]
        ox, oy, ovx, ovy, gap = obs[self._obj]
        gx, gy, gdist = obs[self._goal]
        neighbours = visible(obs[self._nb].reshape(-1, 5))
        rho = max(float(np.hypot(ox, oy)), 1e-6)
        out = np.array([-ox, -oy]) / rho  # from the object's centre to me
        around = np.array([-out[1], out[0]])  # counter-clockwise round the object
        to_goal = np.array([gx, gy]) / max(float(gdist), 1e-6)
        offset = _wrap(np.arctan2(out[1], out[0]) - np.arctan2(-to_goal[1], -to_goal[0]))
        slot = self._slot(offset, np.array([ox, oy]), to_goal, neighbours)
        error = _wrap(slot - offset)  # radians round the object, counter-clockwise positive
        if abs(error) > np.radians(cfg.align_deg):
            # Circle the short way, holding the orbit gap.
            velocity = np.sign(error) * lim.max_linear_speed_mps * around
            velocity += cfg.gap_gain * (cfg.orbit_gap_m - gap) * out
        else:
            # Close in and push, sliding toward the slot.
            closing = float(np.dot([ovx, ovy], -out)) + cfg.gap_gain * (gap + cfg.press_m)
            velocity = -out * max(closing, 0.0) + cfg.slide_gain * error * (gap + rho) * around
        velocity += 1.0 * neighbour_push(neighbours, cfg.avoid_m)
        velocity += 1.5 * sidestep(neighbours, obs[self._vel], cfg.clearance_m, cfg.horizon_s)
        velocity += wall_push(obs[self._walls], radius + cfg.wall_margin_m)
        speed = min(float(np.linalg.norm(velocity)), lim.max_linear_speed_mps)
        return holonomic_command(velocity, speed, lim)

    def _slot(self, offset: float, obj: np.ndarray, to_goal: np.ndarray, neighbours: np.ndarray) -> float:
        """My place on the back arc: the robots I see (and I) ranked by their angle round
        the object take evenly spaced slots across the arc, in the same order."""
        back = np.arctan2(-to_goal[1], -to_goal[0])
        others = neighbours[:, :2] - obj  # neighbours as seen from the object's centre
        theirs = (np.arctan2(others[:, 1], others[:, 0]) - back + np.pi) % (2 * np.pi) - np.pi
        count = len(theirs) + 1
        if count == 1:
            return 0.0
        rank = int(np.sum(theirs < offset))
        arc = np.radians(self.config.slot_max_deg)
        return float(arc * (2.0 * rank / (count - 1) - 1.0))


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)
