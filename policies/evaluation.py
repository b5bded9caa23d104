"""Evaluating a policy on a world: seeded episodes on a chosen backend, averaged metrics; and
comparing a learned policy with the task's scripted baseline by a rule that can be trusted.

The rule ("beats"): both policies play the same held-out seeds; per seed, the difference in
the task's headline metric is taken, oriented so that positive means the learned policy did
better; the learned policy beats the baseline when the 95 % paired bootstrap confidence
interval of the mean difference lies above zero and its success rate is no lower.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from policies.base import Policy, PolicyContext
from policies.registry import make_policy
from policies.rollout import EpisodeResult, run_episodes, summarise
from sim_bridge.env import MultiRobotEnv, make_env
from worlds import WorldSpec, load_world, make_task

HELD_OUT_SEED = 1000
"""First of the held-out seeds comparisons use (1000–1099 for 100 episodes). Training draws its
episodes from its own random streams (``BatchedEnv(seed=config.seed)``; rollout iteration from
seeds 100 000 up), never from these integer episode seeds."""


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
    env = make_env(world, backend=backend)
    try:
        context = PolicyContext.from_task(env.task)
        pol = make_policy(policy, context, act=act) if isinstance(policy, str) else policy(context)
        results = run_episodes(env, pol, range(seed, seed + episodes))
    finally:
        env.close()
    summary = summarise(results)
    summary.pop("per_episode", None)
    head = {"policy": pol.name, "world": world.name, "backend": backend or world.backend}
    if hasattr(pol, "act_mode"):
        head["act"] = pol.act_mode
    return {**head, **summary}


def headline_values(results: Sequence[EpisodeResult], metric: str, better: str, limit_s: float) -> np.ndarray:
    """Per episode the headline ``metric``; a time never reached (None, where smaller is
    better) counts as the time limit ``limit_s``, so a policy cannot win on time by failing."""
    values = []
    for r in results:
        v = r.metrics.get(metric)
        values.append(limit_s if v is None and better == "min" else float(v or 0.0))
    return np.asarray(values, dtype=float)


def paired_bootstrap_ci(
    differences: Sequence[float] | np.ndarray, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of paired ``differences`` (one per
    seed, both policies having played the same seed, so resampling the differences resamples
    the pairs): ``resamples`` resamples of the seeds with replacement from a generator seeded
    with ``seed`` (the same data always give the same interval), and the ``(1 - confidence)/2``
    and ``(1 + confidence)/2`` quantiles of their means (Efron & Tibshirani 1993, ch. 13;
    ``scipy.stats.bootstrap`` with ``method="percentile"``)."""
    from scipy.stats import bootstrap

    d = np.asarray(differences, dtype=float).reshape(-1)
    if d.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 paired differences, got {d.size}")
    if not np.isfinite(d).all():
        raise ValueError("paired differences must be finite numbers")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    result = bootstrap(
        (d,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def play(task_name: str, policy: str, seeds: Sequence[int], backend: str = "kinematic") -> list[dict[str, float]]:
    """One row per seed of ``policy`` (a name or checkpoint for ``make_policy``) on the task's
    shipped world: the headline metric (see ``headline_values``), success and collision rate."""
    import torch  # small per-step batches: one thread is faster, and far faster on a busy machine

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    world = load_world(task_name)
    env = MultiRobotEnv(world, backend=backend)
    try:
        metric, better = env.task.headline_metric
        results = run_episodes(env, make_policy(policy, PolicyContext.from_task(env.task)), seeds)
        headline = headline_values(results, metric, better, env.task.max_episode_s)
    finally:
        env.close()
        torch.set_num_threads(threads)
    return [
        {
            "seed": r.seed,
            "headline": float(h),
            "success": float(r.metrics["success_rate"]),
            "collision_rate": float(r.metrics["collision_rate"]),
        }
        for r, h in zip(results, headline, strict=True)
    ]


def _play_job(args: tuple[str, str, list[int], str]) -> list[dict[str, float]]:
    return play(*args)


def compare_with_baseline(
    task_name: str, episodes: int = 100, seed: int = HELD_OUT_SEED, backend: str = "kinematic", workers: int = 0
) -> dict[str, Any]:
    """The shipped learned policy against the scripted baseline on the same seeds
    ``seed .. seed+episodes-1`` of the task's shipped world, by the rule in the module's
    docstring (``paired_verdict``). ``workers`` > 1 plays in that many processes (each
    policy's seeds split between them; the result is the same)."""
    if episodes < 2:
        raise ValueError(f"a comparison needs at least 2 episodes, got {episodes}")
    metric, better = make_task(load_world(task_name)).headline_metric
    rows = _play_both(task_name, list(range(seed, seed + episodes)), backend, workers)
    return {"metric": metric, **paired_verdict(rows["learned"], rows["scripted"], better)}


def paired_verdict(learned: list[dict[str, float]], scripted: list[dict[str, float]], better: str) -> dict[str, Any]:
    """The rule on per-seed rows (``play``'s: seed, headline, success, collision_rate) of a
    learned policy and the baseline on the same seeds; ``better`` "max" or "min" for the
    headline metric.

    Returns ``better``, ``episodes``, ``seeds`` [first, last], ``learned`` / ``scripted``
    (mean headline), ``diff_mean`` and ``diff_ci95`` [low, high] (per-seed differences,
    positive = learned better), ``learned_success`` / ``scripted_success``, the collision
    rates, ``beats`` (interval above zero and success no lower) and ``not_worse`` (the
    interval's high end at or above zero and success no lower: what a tie satisfies)."""
    seeds = [r["seed"] for r in learned]
    if seeds != [r["seed"] for r in scripted]:
        raise ValueError("a paired comparison needs both policies on the same seeds, in the same order")
    if better not in ("max", "min"):
        raise ValueError(f"better must be max or min, got {better!r}")
    learned_h, scripted_h = (np.array([r["headline"] for r in rows]) for rows in (learned, scripted))
    diff = learned_h - scripted_h if better == "max" else scripted_h - learned_h
    low, high = paired_bootstrap_ci(diff)
    out: dict[str, Any] = {
        "better": better,
        "episodes": len(seeds),
        "seeds": [seeds[0], seeds[-1]],
        "learned": round(float(learned_h.mean()), 4),
        "scripted": round(float(scripted_h.mean()), 4),
        "diff_mean": round(float(diff.mean()), 4),
        "diff_ci95": [round(low, 6), round(high, 6)],
    }
    for label, rows in (("learned", learned), ("scripted", scripted)):
        out[f"{label}_success"] = round(float(np.mean([r["success"] for r in rows])), 4)
        out[f"{label}_collision_rate"] = round(float(np.mean([r["collision_rate"] for r in rows])), 4)
    success_no_lower = out["learned_success"] >= out["scripted_success"]
    out["beats"] = bool(low > 0.0 and success_no_lower)
    out["not_worse"] = bool(high >= 0.0 and success_no_lower)
    return out


def _play_both(task_name: str, seeds: list[int], backend: str, workers: int) -> dict[str, list[dict[str, float]]]:
    policies = ("learned", "scripted")
    if workers <= 1:
        return {p: play(task_name, p, seeds, backend) for p in policies}
    per_policy = max(1, workers // 2)
    chunks = [seeds[k::per_policy] for k in range(per_policy) if seeds[k::per_policy]]
    jobs = [(task_name, p, chunk, backend) for p in policies for chunk in chunks]
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        parts = pool.map(_play_job, jobs)
    out: dict[str, list[dict[str, float]]] = {p: [] for p in policies}
    for (_, p, _, _), part in zip(jobs, parts, strict=True):
        out[p].extend(part)
    for p in policies:
        out[p].sort(key=lambda r: r["seed"])
    return out
