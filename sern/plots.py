"""Top-down pictures of runs: arena, obstacles, each robot's path, goals."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt
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
