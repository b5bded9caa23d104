"""Small-vector helpers for the scripted baselines, which act robot by robot every step."""

from __future__ import annotations

import numpy as np


def vector_length(v: np.ndarray) -> float:
    """Euclidean length of the 1-D float array ``v``, computed as ``np.linalg.norm`` computes
    it (the square root of ``v.dot(v)``, so bit for bit the same) without that function's
    per-call checks, which cost more than the sum on two elements."""
    return float(np.sqrt(v.dot(v)))


def clamp(x: float, low: float, high: float) -> float:
    """``x`` limited to [``low``, ``high``] (``np.clip`` on one number, without an array)."""
    return min(max(x, low), high)


def lengths(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Euclidean lengths of the float array ``x`` along ``axis``, computed as
    ``np.linalg.norm(x, axis=axis)`` computes them for real arrays (so bit for bit the same),
    without its per-call checks."""
    return np.sqrt(np.add.reduce(x * x, axis=axis, keepdims=keepdims))
