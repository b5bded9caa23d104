"""Evaluating a policy on a world: seeded episodes on a chosen backend, averaged metrics."""

from __future__ import annotations

from typing import Any

from policies.base import PolicyContext
from policies.registry import make_policy
from policies.rollout import run_episodes, summarise
from sim_bridge.env import MultiRobotEnv
from worlds import WorldSpec


def evaluate(
    policy: str, world: WorldSpec, episodes: int, seed: int = 1000, backend: str | None = None
) -> dict[str, Any]:
    """Average episode metrics of ``policy`` over seeds ``seed .. seed+episodes-1``."""
    env = MultiRobotEnv(world, backend=backend)
    try:
        pol = make_policy(policy, PolicyContext.from_task(env.task))
        results = run_episodes(env, pol, range(seed, seed + episodes))
    finally:
        env.close()
    summary = summarise(results)
    summary.pop("per_episode", None)
    return {"policy": pol.name, "world": world.name, "backend": env.backend.name, **summary}
