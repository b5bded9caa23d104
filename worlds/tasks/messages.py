"""Local messages: each robot broadcasts a few points and the robots in range hear them.

A message is up to P points, each a position relative to its sender ("a free landmark is
here"), in the sender's own frame, with a flag saying whether it is set. A robot hears the k
nearest other robots within ``range_m`` (nearest first) and gets each one's position and
points re-expressed in its own frame, as a robot with a shared heading reference (a compass)
would. Delivery is within the control step: what a robot says after sensing, the others hear
before deciding. Which points a robot says is the task's protocol (coverage: a free landmark
it sees and is not taking).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from worlds.tasks.flocking import nearest_others


def inbox_size(senders: int, points: int) -> int:
    """Floats per robot in ``deliver``'s output."""
    return senders * (3 + 3 * points)


@njit(cache=True, nogil=True)
def deliver(poses, points, valid, k, range_m, out):
    """poses (B, N, 3); points (B, N, P, 2) in each sender's frame; valid (B, N, P) bool →
    out (B, N, k·(3 + 3P)): per heard sender, nearest first: its position x, y in the
    receiver's frame, 1 (present), then per point x, y in the receiver's frame and 1 (set)
    or 0 (not set: x, y are 0); zeros pad missing senders."""
    B, N, P = points.shape[0], points.shape[1], points.shape[2]
    width = 3 + 3 * P
    idx = np.empty(max(k, 1), np.int64)
    dist = np.empty(max(k, 1))
    for b in range(B):
        for i in range(N):
            row = out[b, i]
            for q in range(k * width):
                row[q] = 0.0
            n = nearest_others(poses, b, i, k, range_m, idx, dist)
            ci, si = math.cos(poses[b, i, 2]), math.sin(poses[b, i, 2])
            for slot in range(n):
                j = idx[slot]
                cj, sj = math.cos(poses[b, j, 2]), math.sin(poses[b, j, 2])
                dx = poses[b, j, 0] - poses[b, i, 0]
                dy = poses[b, j, 1] - poses[b, i, 1]
                base = slot * width
                row[base] = ci * dx + si * dy
                row[base + 1] = -si * dx + ci * dy
                row[base + 2] = 1.0
                for p in range(P):
                    if not valid[b, j, p]:
                        continue
                    # sender frame → map frame → receiver frame
                    wx = dx + cj * points[b, j, p, 0] - sj * points[b, j, p, 1]
                    wy = dy + sj * points[b, j, p, 0] + cj * points[b, j, p, 1]
                    at = base + 3 + 3 * p
                    row[at] = ci * wx + si * wy
                    row[at + 1] = -si * wx + ci * wy
                    row[at + 2] = 1.0
