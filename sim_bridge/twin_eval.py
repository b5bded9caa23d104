"""Measuring how well twins track their robots, from logged poses (pure numpy).

The truth is the physical robot's pose as a function of its clock (its odometry,
logged where it is produced); a twin's error at one of its published poses is the
distance to the truth at that pose's stamp, interpolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Columns of a monitor log row (see ros_nodes/twin_monitor.py).
RECV, STAMP, ROBOT, X, Y, YAW, V, W = range(8)


def _unwrap_yaw(yaw: np.ndarray) -> np.ndarray:
    return np.unwrap(yaw)


def truth_at(truth: np.ndarray, robot: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolated (x, y, yaw) of ``robot`` at stamps ``t`` from its odometry rows."""
    rows = truth[truth[:, ROBOT] == robot]
    rows = rows[np.argsort(rows[:, STAMP])]
    stamps, keep = np.unique(rows[:, STAMP], return_index=True)
    rows = rows[keep]
    x = np.interp(t, stamps, rows[:, X])
    y = np.interp(t, stamps, rows[:, Y])
    yaw = np.interp(t, stamps, _unwrap_yaw(rows[:, YAW]))
    return x, y, yaw


@dataclass
class TwinErrors:
    """Per twin sample: time (stamp), robot, position error (m), yaw error (deg)."""

    t: np.ndarray
    robot: np.ndarray
    position_m: np.ndarray
    yaw_deg: np.ndarray

    def window(self, start: float, end: float) -> TwinErrors:
        keep = (self.t >= start) & (self.t < end)
        return TwinErrors(self.t[keep], self.robot[keep], self.position_m[keep], self.yaw_deg[keep])

    def summary(self) -> dict[str, float]:
        if len(self.t) == 0:
            return {"samples": 0}
        p = self.position_m * 100.0
        return {
            "samples": len(self.t),
            "median_cm": float(np.median(p)),
            "p95_cm": float(np.percentile(p, 95)),
            "max_cm": float(p.max()),
            "yaw_median_deg": float(np.median(self.yaw_deg)),
            "yaw_p95_deg": float(np.percentile(self.yaw_deg, 95)),
            "yaw_max_deg": float(self.yaw_deg.max()),
        }


def twin_errors(truth: np.ndarray, twin: np.ndarray) -> TwinErrors:
    """Errors of every twin row against the truth rows (only where truth covers them)."""
    ts, robots, pos, yaws = [], [], [], []
    for robot in np.unique(twin[:, ROBOT]).astype(int):
        tw = twin[twin[:, ROBOT] == robot]
        tr = truth[truth[:, ROBOT] == robot]
        if len(tr) < 2:
            continue
        lo, hi = tr[:, STAMP].min(), tr[:, STAMP].max()
        tw = tw[(tw[:, STAMP] >= lo) & (tw[:, STAMP] <= hi)]
        x, y, yaw = truth_at(truth, robot, tw[:, STAMP])
        ts.append(tw[:, STAMP])
        robots.append(np.full(len(tw), robot))
        pos.append(np.hypot(tw[:, X] - x, tw[:, Y] - y))
        d = (tw[:, YAW] - yaw + np.pi) % (2 * np.pi) - np.pi
        yaws.append(np.degrees(np.abs(d)))
    if not ts:
        empty = np.zeros(0)
        return TwinErrors(empty, empty, empty, empty)
    order = np.argsort(np.concatenate(ts))
    return TwinErrors(*(np.concatenate(a)[order] for a in (ts, robots, pos, yaws)))


def recovery_time(
    errors: TwinErrors, link_back: float, threshold_m: float = 0.02, hold_s: float = 2.0, within_s: float = 10.0
) -> float:
    """Seconds after ``link_back`` until every robot's twin error drops below
    ``threshold_m`` and stays there for ``hold_s``; inf if that never happens within
    ``within_s``."""
    worst = 0.0
    window = errors.window(link_back, link_back + within_s + hold_s)
    for robot in np.unique(errors.robot):
        mine = window.robot == robot
        t, err = window.t[mine], window.position_m[mine]
        recovered = math.inf
        bad_times = t[err >= threshold_m]
        # Candidate start times: the link's return, then just after each bad sample.
        for start in np.concatenate([[link_back], bad_times + 1e-6]):
            if start > link_back + within_s:
                break
            if not np.any((bad_times >= start) & (bad_times < start + hold_s)) and np.any(t >= start + hold_s - 0.1):
                recovered = start - link_back
                break
        worst = max(worst, recovered)
    return worst


def reaction_latency_ms(odom_rows: np.ndarray, twin_rows: np.ndarray) -> np.ndarray:
    """For each odometry message received here, the delay (ms) until the first twin pose
    stamped at or after its arrival was received: the twin's update for that message."""
    out = []
    for robot in np.unique(odom_rows[:, ROBOT]).astype(int):
        od = odom_rows[odom_rows[:, ROBOT] == robot]
        tw = twin_rows[twin_rows[:, ROBOT] == robot]
        tw = tw[np.argsort(tw[:, STAMP])]
        for recv in od[:, RECV]:
            # the bridge stamps its update with its own receive time: ≈ ours, ± scheduling
            i = np.searchsorted(tw[:, STAMP], recv - 0.0005)
            if i < len(tw):
                out.append((tw[i, RECV] - recv) * 1000.0)
    return np.array(out)
