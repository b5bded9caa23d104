"""Running a policy on an env for whole episodes and keeping what happened."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policies.base import Policy
from sim_bridge.env import MultiRobotEnv


@dataclass
class EpisodeResult:
    """One episode: its seed, the task's metrics, and each robot's path and goal."""

    seed: int
    metrics: dict[str, Any]
    poses: np.ndarray  # (T, N, 3) map-frame x, y, yaw at each control step, start included
    drawables: dict[str, np.ndarray] = field(default_factory=dict)


def run_episode(
    env: MultiRobotEnv, policy: Policy, seed: int, on_step: Callable[[], None] | None = None
) -> EpisodeResult:
    """Run one episode from ``env.reset(seed=seed)`` until every agent is done."""
    observations, _ = env.reset(seed=seed)
    policy.reset(seed)
    poses = [env.snapshot.poses[0].copy()]
    while env.agents:
        actions = policy.act(observations)
        observations, _, _, _, _ = env.step(actions)
        poses.append(env.snapshot.poses[0].copy())
        if on_step is not None:
            on_step()
    return EpisodeResult(seed, env.episode_metrics(), np.stack(poses), env.drawables())


def run_episodes(
    env: MultiRobotEnv,
    policy: Policy,
    seeds: Iterable[int],
    on_step: Callable[[], None] | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run one episode per seed, in order."""
    results = []
    for seed in seeds:
        result = run_episode(env, policy, seed, on_step)
        results.append(result)
        if on_episode is not None:
            on_episode(result)
    return results


def summarise(results: list[EpisodeResult]) -> dict[str, Any]:
    """Averages over episodes of every numeric episode metric, plus per-episode results."""
    if not results:
        return {"episodes": 0}
    keys: list[str] = []  # numeric in any episode (a time is None where it never happened)
    for r in results:
        keys += [
            k for k, v in r.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool) and k not in keys
        ]
    summary: dict[str, Any] = {"episodes": len(results)}
    for key in keys:
        values = [r.metrics[key] for r in results if r.metrics.get(key) is not None]
        summary[key] = float(np.mean(values)) if values else None
    summary["collisions"] = int(sum(r.metrics.get("collisions", 0) for r in results))
    summary["per_episode"] = [{"seed": r.seed, **r.metrics} for r in results]
    return summary
