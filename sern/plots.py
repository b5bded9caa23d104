"""Top-down pictures of runs: arena, obstacles, each robot's path, goals."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches

from worlds.spec import BoxObstacle, WorldSpec


def draw_world(ax, world: WorldSpec) -> None:
    """Arena outline and obstacle footprints on ``ax`` (map frame, metres)."""
    hx, hy = world.arena.half_extents
    ax.add_patch(patches.Rectangle((-hx, -hy), 2 * hx, 2 * hy, fill=False, lw=2, ec="0.3"))
    for obstacle in world.obstacles:
        if isinstance(obstacle, BoxObstacle):
            w, h = obstacle.size_m
            yaw = math.radians(obstacle.yaw_deg)
            c, s = math.cos(yaw), math.sin(yaw)
            # Rectangle rotates about its corner: place the corner so the centre is right.
            cx, cy = obstacle.position
            corner = (cx - (c * w / 2 - s * h / 2), cy - (s * w / 2 + c * h / 2))
            ax.add_patch(patches.Rectangle(corner, w, h, angle=obstacle.yaw_deg, fc="0.55", ec="0.3"))
        else:
            ax.add_patch(patches.Circle(obstacle.position, obstacle.radius_m, fc="0.55", ec="0.3"))
    ax.set_xlim(-hx - 0.5, hx + 0.5)
    ax.set_ylim(-hy - 0.5, hy + 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def plot_trajectories(world: WorldSpec, episodes, path: Path, title: str = "", max_panels: int = 4) -> Path:
    """Save one panel per episode (up to ``max_panels``) with every robot's path."""
    shown = episodes[:max_panels]
    cols = min(2, len(shown))
    rows = math.ceil(len(shown) / cols)
    hx, hy = world.arena.half_extents
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 6.5 * rows * hy / hx + 0.8), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, ep in zip(axes.ravel(), shown, strict=False):
        draw_world(ax, world)
        goals = ep.drawables.get("goals")
        robots = ep.metrics.get("robots", [])
        for i in range(ep.poses.shape[1]):
            colour = colours(i % 10)
            xy = ep.poses[:, i, :2]
            ax.plot(xy[:, 0], xy[:, 1], color=colour, lw=1.8, label=f"robot_{i}")
            ax.plot(*xy[0], "o", color=colour, ms=7)
            ok = robots[i]["success"] if i < len(robots) else False
            ax.plot(*xy[-1], "s" if ok else "X", color=colour, ms=7)
            if goals is not None:
                ax.plot(*goals[i], "*", color=colour, ms=16, mec="k")
        m = ep.metrics
        ax.set_title(
            f"seed {ep.seed}: success {m.get('success_rate', 0):.0%}, collisions {m.get('collisions', 0)}, "
            f"SPL {m.get('spl', 0):.2f}"
        )
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    axes.ravel()[0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_twin_trajectories(world: WorldSpec, odom: np.ndarray, twin: np.ndarray, goals: np.ndarray, path: Path) -> Path:
    """Physical robots' paths (solid) and their twins' (dashed), with goals."""
    hx, hy = world.arena.half_extents
    fig, ax = plt.subplots(figsize=(9, 9 * hy / hx + 0.6))
    draw_world(ax, world)
    colours = plt.get_cmap("tab10")
    for i in np.unique(odom[:, 2]).astype(int):
        c = colours(i % 10)
        phys = odom[odom[:, 2] == i]
        phys = phys[np.argsort(phys[:, 1])]
        tw = twin[twin[:, 2] == i]
        tw = tw[np.argsort(tw[:, 1])]
        ax.plot(phys[:, 3], phys[:, 4], "-", color=c, lw=2.2, label=f"robot_{i}")
        if len(tw):
            ax.plot(tw[:, 3], tw[:, 4], "--", color="k", lw=0.9, alpha=0.8, label="twins" if i == 0 else None)
        if i < len(goals) and not np.isnan(goals[i]).any():
            ax.plot(*goals[i], "*", color=c, ms=16, mec="k")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("physical robots (solid) and their twins (dashed)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_twin_error(errors, path: Path) -> Path:
    """Twin position error over time, per robot (cm)."""
    fig, ax = plt.subplots(figsize=(10, 4))
    colours = plt.get_cmap("tab10")
    t0 = errors.t.min() if len(errors.t) else 0.0
    for i in np.unique(errors.robot).astype(int):
        mine = errors.robot == i
        ax.plot(errors.t[mine] - t0, errors.position_m[mine] * 100.0, lw=0.8, color=colours(i % 10), label=f"robot_{i}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("twin position error (cm)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
