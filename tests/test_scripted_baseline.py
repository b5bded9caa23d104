"""The scripted navigation baseline on the shipped world: ≥ 90 % success, no collisions."""

from __future__ import annotations

import pytest
from conftest import NAVIGATION

from policies.base import PolicyContext
from policies.registry import PolicyError, make_policy
from policies.rollout import run_episodes, summarise
from sim_bridge.env import MultiRobotEnv

EPISODES = 20


@pytest.mark.slow
def test_scripted_baseline_reaches_goals_without_collisions():
    env = MultiRobotEnv(NAVIGATION)
    try:
        policy = make_policy("scripted", PolicyContext.from_task(env.task))
        results = run_episodes(env, policy, seeds=range(100, 100 + EPISODES))
    finally:
        env.close()
    summary = summarise(results)
    per_episode = [(r.seed, r.metrics["success_rate"], r.metrics["collisions"]) for r in results]
    assert summary["episodes"] == EPISODES
    assert summary["success_rate"] >= 0.90, per_episode
    assert summary["collisions"] == 0, per_episode
    assert summary["spl"] > 0.7, summary["spl"]


def test_idle_policy_gets_nowhere():
    # The floor the baseline is measured against: standing still never succeeds.
    env = MultiRobotEnv(NAVIGATION)
    try:
        policy = make_policy("idle", PolicyContext.from_task(env.task))
        env.task.params = env.task.params.model_copy(update={"max_episode_s": 2.0})
        env.max_steps = 40
        (result,) = run_episodes(env, policy, seeds=[0])
    finally:
        env.close()
    assert result.metrics["success_rate"] == 0.0
    assert result.metrics["path_length_m"] < 0.05


def test_unknown_policy_names_the_choices(tmp_path):
    env = MultiRobotEnv(NAVIGATION)
    try:
        ctx = PolicyContext.from_task(env.task)
        with pytest.raises(PolicyError, match="unknown policy 'greedy'; use one of scripted, idle, learned"):
            make_policy("greedy", ctx)
        with pytest.raises(PolicyError, match="does not exist"):
            make_policy(str(tmp_path / "missing.pt"), ctx)
    finally:
        env.close()
