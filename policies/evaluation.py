"""Evaluating a policy on a world: seeded episodes on a chosen backend, averaged metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from policies.base import Policy, PolicyContext
from policies.registry import make_policy
from policies.rollout import run_episodes, summarise
from sim_bridge.env import MultiRobotEnv
from worlds import WorldSpec, load_world, make_task


def evaluate(
    policy: str | Callable[[PolicyContext], Policy],
    world: WorldSpec,
    episodes: int,
    seed: int = 1000,
    backend: str | None = None,
    act: str | None = None,
) -> dict[str, Any]:
    """Average episode metrics of ``policy`` (a name or checkpoint path for ``make_policy``,
    or a function making the policy from the env's context) over seeds
    ``seed .. seed+episodes-1`` (``act``: a checkpoint's action selection, see ``LearnedPolicy``)."""
    env = MultiRobotEnv(world, backend=backend)
    try:
        context = PolicyContext.from_task(env.task)
        pol = make_policy(policy, context, act=act) if isinstance(policy, str) else policy(context)
        results = run_episodes(env, pol, range(seed, seed + episodes))
    finally:
        env.close()
    summary = summarise(results)
    summary.pop("per_episode", None)
    head = {"policy": pol.name, "world": world.name, "backend": env.backend.name}
    if hasattr(pol, "act_mode"):
        head["act"] = pol.act_mode
    return {**head, **summary}


def headline_value(results, metric: str, better: str, limit_s: float) -> float:
    """Mean of ``metric`` over episodes; a missing time counts as the time limit."""
    values = []
    for r in results:
        v = r.metrics.get(metric)
        values.append(limit_s if v is None and better == "min" else float(v or 0.0))
    return float(np.mean(values))


def compare_with_baseline(task_name: str, episodes: int = 20, seed: int = 1000) -> dict:
    """The shipped learned policy and the scripted baseline on the same seeded episodes of
    the task's shipped world, ranked by the task's ``headline_metric``: ``beats`` when the
    learned policy's success rate is no lower and its headline metric is better."""
    world = load_world(task_name)
    metric, better = make_task(world).headline_metric
    env = MultiRobotEnv(world)
    out = {"metric": metric, "better": better}
    try:
        context = PolicyContext.from_task(env.task)
        for label, name in (("learned", "learned"), ("scripted", "scripted")):
            results = run_episodes(env, make_policy(name, context), range(seed, seed + episodes))
            out[label] = round(headline_value(results, metric, better, env.task.max_episode_s), 4)
            out[f"{label}_success"] = float(np.mean([r.metrics["success_rate"] for r in results]))
            out[f"{label}_collision_rate"] = round(float(np.mean([r.metrics["collision_rate"] for r in results])), 4)
    finally:
        env.close()
    wins = out["learned"] > out["scripted"] if better == "max" else out["learned"] < out["scripted"]
    out["beats"] = bool(wins and out["learned_success"] >= out["scripted_success"])
    return out
