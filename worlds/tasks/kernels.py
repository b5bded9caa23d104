"""Compiled (numba) helpers for tasks' per-step maths over whole batches."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath=True, nogil=True, parallel=True)
def neighbour_features(poses, twists, k, radius, out):
    """out (B, N, 5k): for each robot the k nearest others within ``radius``, in its own
    frame: x, y, vx, vy, 1; zeros pad. Twists are body-frame (vx, vy, wz)."""
    B, N = poses.shape[0], poses.shape[1]
    for b in prange(B):
        for i in range(N):
            for q in range(5 * k):
                out[b, i, q] = 0.0
            ci, si = math.cos(poses[b, i, 2]), math.sin(poses[b, i, 2])
            d = np.empty(N)
            for j in range(N):
                if j == i:
                    d[j] = np.inf
                else:
                    dx = poses[b, j, 0] - poses[b, i, 0]
                    dy = poses[b, j, 1] - poses[b, i, 1]
                    d[j] = math.sqrt(dx * dx + dy * dy)
            order = np.argsort(d)
            for slot in range(min(k, N - 1)):
                j = order[slot]
                if d[j] > radius:
                    break
                dx = poses[b, j, 0] - poses[b, i, 0]
                dy = poses[b, j, 1] - poses[b, i, 1]
                cj, sj = math.cos(poses[b, j, 2]), math.sin(poses[b, j, 2])
                vx = cj * twists[b, j, 0] - sj * twists[b, j, 1]  # map frame
                vy = sj * twists[b, j, 0] + cj * twists[b, j, 1]
                base = 5 * slot
                out[b, i, base] = ci * dx + si * dy
                out[b, i, base + 1] = -si * dx + ci * dy
                out[b, i, base + 2] = ci * vx + si * vy
                out[b, i, base + 3] = -si * vx + ci * vy
                out[b, i, base + 4] = 1.0
