"""What one step of a batched env returns (``BatchedEnv`` and the unity backend's
``UnityBatchedEnv`` alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class BatchStep:
    """What one ``step`` returns."""

    obs: np.ndarray  # (B, N, D): next observations (of the new episode where a world restarted)
    rewards: np.ndarray  # (B, N)
    terminated: np.ndarray  # (B, N): the agent finished on this step (no future value)
    active: np.ndarray  # (B, N): the agent acted on this step (False: parked, reward 0)
    world_done: np.ndarray  # (B,): the world's episode ended on this step (and restarted)
    truncated: np.ndarray  # (B,): ... because of the time limit
    final_obs: np.ndarray  # (B, N, D): the last observation of ended episodes (for bootstrapping)
    episodes: list[dict[str, Any]] = field(default_factory=list)  # metrics of ended episodes
    state: np.ndarray | None = None  # (B, S): the task's critic state after the step (None: it has none)
    final_state: np.ndarray | None = None  # (B, S): ... at the end of ended episodes
