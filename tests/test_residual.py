"""Residual policies: a learned correction on the scripted baseline's commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies.base import PolicyContext
from policies.learned import LearnedPolicy
from policies.mappo import train
from policies.ppo_model import make_model
from policies.registry import make_policy
from policies.residual import residual_command
from policies.rollout import run_episodes
from policies.scripted import make_scripted
from policies.train_config import TrainConfig
from sim_bridge.batched_env import BatchedEnv
from sim_bridge.env import MultiRobotEnv
from worlds import load_world


def _zero_correction(model) -> None:
    """The actor's last layer to zero: its mean action is the middle of the limits."""
    with torch.no_grad():
        model.actor[-1].weight.zero_()
        model.actor[-1].bias.zero_()


@pytest.mark.parametrize("task", ["pursuit", "foraging"])
def test_a_residual_policy_with_no_correction_is_the_baseline(task):
    world = load_world(task)
    config = TrainConfig(residual=True)
    model = make_model(BatchedEnv(world, 1), config)
    _zero_correction(model)
    env = MultiRobotEnv(world)
    try:
        context = PolicyContext.from_task(env.task)
        assert model.obs_dim == context.observation_size + 2  # the observation and the baseline's command
        seeds = range(1000, 1002)
        residual = run_episodes(env, LearnedPolicy.from_model(context, model, residual={}), seeds)
        scripted = run_episodes(env, make_scripted(context), seeds)
    finally:
        env.close()
    for r, s in zip(residual, scripted, strict=True):
        assert r.metrics == s.metrics


def test_the_correction_is_added_to_the_baseline_and_clipped():
    low, high = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])
    base = torch.tensor([[0.5, -0.2], [0.9, 0.0]])
    correction = torch.tensor([[0.25, 0.0], [0.5, -0.3]])
    out = residual_command(base, correction, low, high)
    assert torch.allclose(out, torch.tensor([[0.75, -0.2], [1.0, -0.3]]))


def test_a_short_residual_run_writes_a_checkpoint_that_serves_as_residual(tmp_path):
    world = load_world("pursuit")
    config = TrainConfig(
        residual=True, init_log_std=-1.5, total_agent_steps=20_000, num_worlds=8, rollout_steps=64, seed=3
    )
    result = train(world, config, out=tmp_path / "res", progress=False)
    meta = json.loads((tmp_path / "res.json").read_text())
    assert meta["residual"] == {"base": "scripted", "tuning": {}}
    assert meta["observation"]["size"] + 2 == result.model.obs_dim
    assert result.history and all(np.isfinite(h["return"]) for h in result.history if "return" in h)
    env = MultiRobotEnv(world)
    try:
        context = PolicyContext.from_task(env.task)
        policy = make_policy(str(tmp_path / "res.pt"), context)
        assert isinstance(policy, LearnedPolicy) and policy.base is not None
        obs, _ = env.reset(seed=1000)
        policy.reset(1000)
        commands = policy.act(obs)
        assert set(commands) == set(obs)
        assert all(np.all(np.abs(c) <= 1.0 + 1e-6) for c in commands.values())
    finally:
        env.close()


def test_residual_training_refuses_cloning_and_discrete_actions():
    with pytest.raises(ValueError, match="residual"):
        TrainConfig(residual=True, bc_agent_steps=1000)
    with pytest.raises(ValueError, match="residual"):
        TrainConfig(residual=True, discrete_per_axis=5)
