"""Scripted coverage baseline: decentralised greedy assignment from each robot's local view.

Each control period each robot, alone and without messages, (1) matches the robots it
sees (itself and its observed neighbours) to the landmarks it sees, greedily: the closest
robot-landmark pair first, then the closest of the rest, and so on; landmarks whose beacon
says they are taken by a robot it cannot see are left out; (2) drives to the landmark it
gave itself, stopping on it; (3) with none (every landmark in view is someone else's), it
heads for the nearest landmark in view that nobody covers, or else searches: it sets off
away from the neighbours and taken landmarks it sees and runs straight, bouncing off walls
(seen by lidar) like a billiard ball, until a landmark becomes its own; where the world has
messages (``task.params.relay_radius_m``) and a robot it hears reports a free landmark, it
drives toward the nearest such report instead of searching. A short-range push
away from neighbours keeps it from touching them. This is "go to the nearest landmark that
no closer neighbour wants", made consistent; it is not perfect: views differ between
robots, so two may chase one landmark for a while, and the search is blind, so a landmark
out of everyone's sight can stay uncovered until the time limit. That is where it fails:
with every landmark in view it covers them all in every episode, with the shipped view in
79 % (``benchmarks/coverage_view.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy, PolicyContext
from policies.targets import cap_speed, drive_to, separation_push
from policies.vectors import lengths, vector_length


@dataclass(frozen=True)
class CoverageConfig:
    """Tuning of the greedy coverage baseline."""

    gain: float = 1.5
    """Commanded speed (m/s) per metre to the target, capped at the speed limit."""
    stop_m: float = 0.05
    """Closer than this to its landmark the robot stops."""
    explore_mps: float = 1.0
    """Speed of the search (the disc's speed limit: on 100 training episodes a search at 0.6 m/s
    covered everything in 65 % of them, at 0.8 m/s 74 %, at 1.0 m/s 79 %)."""
    separation_m: float = 0.5
    """Centre-to-centre distance below which a neighbour pushes the robot away."""
    separation_gain: float = 1.0
    """m/s of push from a neighbour at zero distance (linear down to 0 at separation_m)."""
    taken_by_seen_m: float = 0.45
    """A taken landmark counts as taken by a seen neighbour if one is this close to it."""
    wall_m: float = 1.0
    """An exploring robot turns away from lidar returns nearer than this."""
    hold_m: float = 0.4
    """A robot this close to the landmark it gave itself holds it (and could hand it off)."""
    recognise_m: float = 0.3
    """A landmark a robot left its own for is recognised, step to step, as the one in view
    within this distance of where it was last step (landmarks are 1.5 m apart, a robot
    moves 5 cm per control step)."""


class CoveragePolicy(Policy):
    """Greedy local assignment of robots to landmarks, then go there."""

    name = "scripted"

    def __init__(self, context: PolicyContext, config: CoverageConfig | None = None):
        if context.task_name != "coverage":
            raise ValueError(f"the greedy coverage policy drives 'coverage' tasks, not {context.task_name!r}")
        super().__init__(context)
        self.config = config or CoverageConfig()
        s = context.observation_slices
        self._lm, self._nb, self._lidar = s["landmarks"], s["neighbours"], s["lidar"]
        self._messages = s.get("messages")
        if context.lidar_angles is None:
            raise ValueError("the greedy coverage policy needs lidar in the observation")
        self._dirs = np.stack([np.cos(context.lidar_angles), np.sin(context.lidar_angles)], axis=-1)
        self._explore: dict[str, np.ndarray] = {}
        self._lm_slots = range((self._lm.stop - self._lm.start) // 4)
        self._last: dict[str, _Decision] = {}
        self._leaving_for: dict[str, np.ndarray] = {}  # robot frame: the landmark it handed its own off for
        self._other_free: dict[str, np.ndarray] = {}  # robot frame: where a holding robot could go instead
        self._neighbours_seen: dict[str, int] = {}  # how many neighbours a holding robot saw last step

    def reset(self, seed: int | None = None) -> None:
        self._explore = {}
        self._last = {}
        self._leaving_for = {}
        self._other_free = {}
        self._neighbours_seen = {}

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: self._act_one(agent, np.asarray(obs, dtype=float)) for agent, obs in observations.items()}

    def choices(self, observations: Mapping[str, np.ndarray], headings: int) -> dict[str, int]:
        """What the baseline decides this step, as a target choice of ``policies.targets``
        (the landmark slot it drives to, or the nearest of ``headings`` search headings to
        its search direction); it steps the baseline as ``act`` does."""
        self.act(observations)
        return {agent: self._last[agent].choice(len(self._lm_slots), headings) for agent in observations}

    def searching(self, agent: str) -> bool:
        """Whether the robot's last decision was a search (it has no landmark of its own)."""
        last = self._last.get(agent)
        return last is not None and last.direction is not None and not last.reported

    def turning(self, agent: str) -> bool:
        """Whether the robot's last decision set a search direction anew: it started a search
        or bounced off a wall."""
        last = self._last.get(agent)
        return last is not None and last.turned

    def holding(self, agent: str) -> bool:
        """Whether the robot sits on the landmark it gave itself and sees another that no
        robot covers: it could hand its own off (``hand_off``)."""
        last = self._last.get(agent)
        return last is not None and last.holding

    def holding_anew(self, agent: str) -> bool:
        """Whether the robot is ``holding`` and its view changed since its last step: it has
        just come to hold with another free landmark in view, that landmark is another one, or
        the number of neighbours it sees changed (one came or went)."""
        last = self._last.get(agent)
        return last is not None and last.holding_anew

    def hand_off(self, agent: str) -> None:
        """Send a holding robot to the nearest landmark in its view that no robot covers,
        leaving its own to whoever comes: from its next step it drives there, whatever the
        greedy matching says, until it arrives or another robot covers that landmark. The
        baseline never does this by itself; a steering actor decides when
        (``policies.steering``, ``steer_on=holding``). Ignored for a robot not holding."""
        if self.holding(agent):
            self._leaving_for[agent] = self._other_free[agent]

    def steer(self, agent: str, direction: np.ndarray) -> None:
        """Set a searching robot's search direction (robot frame; any length): from its next
        step it runs that way, bouncing off walls as before. Ignored for a robot not searching."""
        if not self.searching(agent):
            return
        direction = np.asarray(direction, dtype=float)
        norm = vector_length(direction)
        if norm < 1e-9:
            raise ValueError(f"a search direction needs a length, got {direction.tolist()}")
        self._explore[agent] = direction / norm

    def _act_one(self, agent: str, obs: np.ndarray) -> np.ndarray:
        cfg = self.config
        lim = self.context.limits[agent]
        lm = obs[self._lm].reshape(-1, 4)
        lm = lm[lm[:, 3] > 0.5]
        nb = obs[self._nb].reshape(-1, 5)
        nb = nb[nb[:, 4] > 0.5]
        robots = np.vstack([np.zeros((1, 2)), nb[:, :2]])  # me first, in my frame

        leaving_for = self._still_leaving(agent, lm)
        if leaving_for is not None:
            target = leaving_for
        elif len(lm):
            d = lengths(robots[:, None, :] - lm[None, :, :2], axis=-1)  # (robots, landmarks)
            # Taken by a robot out of my sight: not mine to take.
            unseen_taker = (lm[:, 2] > 0.5) & (d[1:].min(axis=0, initial=np.inf) > cfg.taken_by_seen_m)
            d[:, unseen_taker] = np.inf
            target = _greedy_target(d)
            if target is None:
                free = np.flatnonzero(lm[:, 2] < 0.5)
                if len(free):
                    target = int(free[np.argmin(d[0, free])])
        else:
            target = None

        report = None if target is not None else self._report(obs)
        if target is not None:
            desired = drive_to(lm[target, :2], cfg.gain, cfg.stop_m, lim.max_linear_speed_mps)
            self._explore.pop(agent, None)
            before = self._other_free.get(agent)
            holding = self._could_hand_off(agent, lm, target, leaving_for)
            seen, self._neighbours_seen[agent] = self._neighbours_seen.get(agent), len(nb)
            anew = holding and (
                before is None or vector_length(self._other_free[agent] - before) > cfg.recognise_m or seen != len(nb)
            )
            self._last[agent] = _Decision(slot=target, holding=holding, holding_anew=anew)
        elif report is not None:  # another robot says where a free landmark is: go and look
            desired = drive_to(report, cfg.gain, cfg.stop_m, lim.max_linear_speed_mps)
            self._explore.pop(agent, None)
            self._last[agent] = _Decision(direction=report / max(vector_length(report), 1e-6), reported=True)
        else:
            before = self._explore.get(agent)
            direction = self._explore_direction(agent, nb, lm, self._walls(obs, nb))
            desired = cfg.explore_mps * direction
            turned = before is None or not np.allclose(before, direction, rtol=0.0, atol=1e-9)
            self._last[agent] = _Decision(direction=direction, turned=turned)

        desired = desired + separation_push(nb[:, :2], np.ones(len(nb)), cfg.separation_m, cfg.separation_gain)
        lo = np.array([lim.min_linear_speed_mps, -lim.max_angular_speed_radps])
        hi = np.array([lim.max_linear_speed_mps, lim.max_angular_speed_radps])
        return cap_speed(desired, lim.max_linear_speed_mps, lo, hi).astype(np.float32)

    def _still_leaving(self, agent: str, lm: np.ndarray) -> int | None:
        """The slot of the landmark the robot handed its own off for, while it is on its way
        there and nobody covers it (None otherwise: the hand-off is over)."""
        goal = self._leaving_for.pop(agent, None)
        if goal is None or not len(lm):
            return None
        j = int(np.argmin(lengths(lm[:, :2] - goal, axis=1)))
        arrived = vector_length(lm[j, :2]) < self.config.hold_m
        if vector_length(lm[j, :2] - goal) > self.config.recognise_m or lm[j, 2] > 0.5 or arrived:
            return None
        self._leaving_for[agent] = lm[j, :2].copy()
        return j

    def _could_hand_off(self, agent: str, lm: np.ndarray, target: int, leaving_for: int | None) -> bool:
        """Whether the robot holds landmark ``target`` and sees another nobody covers (kept
        as where ``hand_off`` sends it)."""
        self._other_free.pop(agent, None)
        if leaving_for is not None or vector_length(lm[target, :2]) >= self.config.hold_m:
            return False
        free = np.flatnonzero(lm[:, 2] < 0.5)
        free = free[free != target]
        if not len(free):
            return False
        self._other_free[agent] = lm[free[np.argmin(lengths(lm[free, :2], axis=1))], :2].copy()
        return True

    def _report(self, obs: np.ndarray) -> np.ndarray | None:
        """The nearest free landmark the robots it hears report (robot frame), or None."""
        if self._messages is None:
            return None
        heard = obs[self._messages].reshape(-1, 6)
        said = heard[(heard[:, 2] > 0.5) & (heard[:, 5] > 0.5), 3:5]
        if not len(said):
            return None
        return said[int(np.argmin(lengths(said, axis=1)))]

    def _walls(self, obs: np.ndarray, nb: np.ndarray) -> np.ndarray:
        """Unit vectors (robot frame) toward lidar returns nearer than ``wall_m`` that no
        seen neighbour explains."""
        ranges = obs[self._lidar]
        near = ranges < self.config.wall_m
        points = ranges[near, None] * self._dirs[near]
        if len(nb) and len(points):
            gap = lengths(points[:, None, :] - nb[None, :, :2], axis=-1).min(axis=1)
            keep = gap > 0.5
            return self._dirs[near][keep]
        return self._dirs[near]

    def _explore_direction(self, agent: str, nb: np.ndarray, lm: np.ndarray, walls: np.ndarray) -> np.ndarray:
        """Unit vector of a billiard-ball search: it starts away from what is already seen
        to be served (neighbours, taken landmarks), runs straight, and reflects off walls."""
        direction = self._explore.get(agent)
        if direction is None:
            seen = np.vstack([nb[:, :2], lm[lm[:, 2] > 0.5, :2]])
            unit = seen / np.maximum(lengths(seen, axis=1, keepdims=True), 1e-6)
            direction = -unit.sum(axis=0)
            if vector_length(direction) < 1e-6:
                direction = np.array([1.0, 0.0])
        for n in walls:  # reflect off each wall the direction runs into
            into = float(direction @ n)
            if into > 0.0:
                direction = direction - 2.0 * into * n
        direction = direction / max(vector_length(direction), 1e-6)
        self._explore[agent] = direction
        return direction


@dataclass(frozen=True)
class _Decision:
    """One robot's decision in a step: a landmark slot to drive to, or a search direction."""

    slot: int | None = None
    direction: np.ndarray | None = None
    turned: bool = False
    """The search direction was set anew in this step (a search began, or a wall turned it)."""
    reported: bool = False
    """The direction is toward a free landmark another robot reported (not a search)."""
    holding: bool = False
    """The robot holds its landmark and sees another free one it could hand its own off for."""
    holding_anew: bool = False
    """Holding, and what it sees changed since its last step (``CoveragePolicy.holding_anew``)."""

    def choice(self, slots: int, headings: int) -> int:
        """As a target choice: the slot, or ``slots`` + the nearest heading's index."""
        if self.slot is not None:
            return self.slot
        angle = float(np.arctan2(self.direction[1], self.direction[0]))
        return slots + round(angle / (2.0 * np.pi / headings)) % headings


def _greedy_target(d: np.ndarray) -> int | None:
    """Greedy matching on a (robots, landmarks) distance matrix, closest pair first; the
    landmark matched to robot 0 (None if it gets none or only unreachable ones)."""
    d = d.copy()
    for _ in range(min(d.shape)):
        r, lm = np.unravel_index(int(np.argmin(d)), d.shape)
        if not np.isfinite(d[r, lm]):
            return None
        if r == 0:
            return int(lm)
        d[r, :] = np.inf
        d[:, lm] = np.inf
    return None
