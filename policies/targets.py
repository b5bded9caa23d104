"""Target-choice actions: the actor chooses *where to go*, a fixed controller drives there.

For tasks that are an assignment problem (coverage: which landmark is mine, and where to
look when none is), a velocity policy has to learn the choice and the driving at once, and
PPO spends most of its samples on the driving. Here the actor's action is a discrete
choice per robot, made again every control step from its own observation:

  0 .. m-1      drive to landmark slot j of the observation (the j-th nearest in view;
                an empty slot means stand still);
  m .. m+H-1    run at cruise speed toward heading 2πk/H in the robot's frame (search);
  m+H           (with ``baseline``) do what the scripted baseline says: the actor, which then
                also sees the baseline's command (``policies.residual``), starts by choosing
                it almost always (``BASELINE_LOGIT``) and PPO learns where to overrule it.

``TargetController`` turns choices into (vx, vy) commands with the scripted baseline's own
driving (``drive_to``, a proportional approach that stops on the target) and its short-range
push away from neighbours (``separation_push``), so the learned part is exactly the choice
the baseline makes by greedy matching and billiard-ball search. The controller is part of
the policy: a checkpoint's sidecar says ``targets: {headings: H}`` and ``LearnedPolicy``
applies it at serve time. Disc (holonomic) robots only: commands are (vx, vy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import PolicyContext
from policies.vectors import lengths


@dataclass(frozen=True)
class TargetConfig:
    """The fixed controller under a target-choice policy (driving as the coverage baseline)."""

    headings: int = 8
    """Search directions the actor can choose, evenly spaced around the robot."""
    baseline: bool = False
    """One more choice: the scripted baseline's own command."""
    gain: float = 1.5
    """Commanded speed (m/s) per metre to a landmark, capped at the speed limit."""
    stop_m: float = 0.05
    """Closer than this to its landmark the robot stops."""
    separation_m: float = 0.5
    """Centre-to-centre distance below which a neighbour pushes the robot away."""
    separation_gain: float = 1.0
    """m/s of push from a neighbour at zero distance (linear down to 0 at separation_m)."""


def drive_to(rel: np.ndarray, gain: float, stop_m: float, max_mps: float) -> np.ndarray:
    """Velocity (..., 2) toward targets at ``rel`` (..., 2) in the robot frame: ``gain`` m/s
    per metre, at most ``max_mps``, zero within ``stop_m``."""
    dist = lengths(rel, axis=-1, keepdims=True)
    scale = np.minimum(gain, max_mps / np.maximum(dist, 1e-9))
    return np.where(dist < stop_m, 0.0, rel * scale)


def separation_push(nb_rel: np.ndarray, present: np.ndarray, radius_m: float, gain: float) -> np.ndarray:
    """Velocity (..., 2) away from neighbours at ``nb_rel`` (..., k, 2) (``present`` (..., k)
    marks real ones): ``gain`` m/s at contact, falling linearly to 0 at ``radius_m``."""
    gap = np.maximum(lengths(nb_rel, axis=-1), 1e-6)
    push = np.clip(1.0 - gap / radius_m, 0.0, None) * present
    return -gain * (push[..., None] * nb_rel / gap[..., None]).sum(axis=-2)


def cap_speed(desired: np.ndarray, max_mps: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``desired`` (..., 2) scaled down to ``max_mps`` if faster, then clipped to the limits."""
    speed = lengths(desired, axis=-1, keepdims=True)
    desired = desired * np.minimum(1.0, max_mps / np.maximum(speed, 1e-9))
    return np.clip(desired, low, high)


class TargetController:
    """Choices (see the module docstring) → (vx, vy) commands, for any batch of robots."""

    def __init__(self, context: PolicyContext, config: TargetConfig | None = None):
        self.config = config or TargetConfig()
        slices = context.observation_slices
        missing = [p for p in ("landmarks", "neighbours") if p not in slices]
        if missing:
            raise ValueError(
                f"target-choice actions need landmarks and neighbours in the observation; the "
                f"{context.task_name} task's has no {', '.join(missing)} (coverage has both)"
            )
        if self.config.headings < 1:
            raise ValueError(f"targets.headings must be at least 1, got {self.config.headings}")
        self._lm, self._nb = slices["landmarks"], slices["neighbours"]
        self.landmark_slots = (self._lm.stop - self._lm.start) // 4
        limits = context.limits[context.agents[0]]  # the model's limits (robot 0's), as in training
        self.max_mps = limits.max_linear_speed_mps
        self.low = np.array([limits.min_linear_speed_mps, -limits.max_angular_speed_radps])
        self.high = np.array([limits.max_linear_speed_mps, limits.max_angular_speed_radps])
        angles = 2.0 * np.pi * np.arange(self.config.headings) / self.config.headings
        self._headings = self.max_mps * np.stack([np.cos(angles), np.sin(angles)], axis=-1)

    @property
    def num_choices(self) -> int:
        return self.landmark_slots + self.config.headings + int(self.config.baseline)

    @property
    def baseline_choice(self) -> int | None:
        """The choice that follows the baseline (None: there is none)."""
        return self.landmark_slots + self.config.headings if self.config.baseline else None

    def commands(self, obs: np.ndarray, choices: np.ndarray, baseline: np.ndarray | None = None) -> np.ndarray:
        """Commands (..., 2) float32 for observations (..., D) and choices (...); ``baseline``
        (..., 2): the baseline's commands, for the choice that follows it."""
        if self.config.baseline and baseline is None:
            raise ValueError("this controller has a follow-the-baseline choice: pass the baseline's commands")
        obs = np.asarray(obs, dtype=float)
        choices = np.asarray(choices, dtype=np.int64)
        if choices.shape != obs.shape[:-1]:
            raise ValueError(f"choices of shape {choices.shape} for observations of shape {obs.shape}")
        if choices.size and (choices.min() < 0 or choices.max() >= self.num_choices):
            raise ValueError(f"choices must be in 0..{self.num_choices - 1}, got {choices.min()}..{choices.max()}")
        cfg = self.config
        m = self.landmark_slots
        lm = obs[..., self._lm].reshape(*obs.shape[:-1], m, 4)
        slot = np.clip(choices, 0, m - 1)
        chosen = np.take_along_axis(lm, slot[..., None, None], axis=-2)[..., 0, :]
        present = (choices < m) & (chosen[..., 3] > 0.5)
        to_landmark = drive_to(chosen[..., :2], cfg.gain, cfg.stop_m, self.max_mps) * present[..., None]
        search = self._headings[np.clip(choices - m, 0, cfg.headings - 1)]
        desired = np.where((choices >= m)[..., None], search, to_landmark)
        nb = obs[..., self._nb].reshape(*obs.shape[:-1], -1, 5)
        desired = desired + separation_push(nb[..., :2], nb[..., 4] > 0.5, cfg.separation_m, cfg.separation_gain)
        out = cap_speed(desired, self.max_mps, self.low, self.high)
        if cfg.baseline:
            out = np.where((choices == self.baseline_choice)[..., None], baseline, out)
        return out.astype(np.float32)


def target_controller(context: PolicyContext, targets: dict | None) -> TargetController | None:
    """The controller a checkpoint's sidecar ``targets`` entry names (None: not target-choice)."""
    if targets is None:
        return None
    headings = int(targets.get("headings", TargetConfig.headings))
    return TargetController(context, TargetConfig(headings=headings, baseline=bool(targets.get("baseline", False))))


def target_settings(config) -> dict | None:
    """A training config's target controller settings (None: it trains commands), as the
    sidecar's ``targets`` entry; with ``residual`` the baseline is one of the choices."""
    if not config.targets:
        return None
    return {"headings": config.target_headings, "baseline": bool(config.residual)}


BASELINE_LOGIT = 5.0
"""Initial logit of the follow-the-baseline choice (the others start near 0): with 12 other
choices the actor follows the baseline with probability e^5 / (e^5 + 12) ≈ 0.93 at first."""
