"""How a sern robot's command crosses ML-Agents: two continuous actions in [-1, 1], mapped
linearly onto the robot's limits (-1: the lowest speed / fastest right turn, +1: the highest
speed / fastest left turn), as Unity agents scale theirs. ``world_env`` (the trainer's side)
and ``world_peer`` (Unity's side) use this one pair of maps."""

from __future__ import annotations

import numpy as np


def to_unit(commands: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(v, ω) commands, clipped to ``[low, high]``, as float32 actions in [-1, 1]."""
    u = np.clip(commands, low, high)
    return (2.0 * (u - low) / (high - low) - 1.0).astype(np.float32)


def from_unit(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Actions in [-1, 1] (clipped to it) as (v, ω) commands within ``[low, high]``."""
    a = np.clip(actions, -1.0, 1.0)
    return low + (a + 1.0) * 0.5 * (high - low)
