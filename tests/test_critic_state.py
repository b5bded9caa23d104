"""MAPPO's critic on the task's global state (``Task.critic_state``): what it holds, and that
training and checkpoints carry it while the actor stays as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.base import PolicyContext
from policies.learned import LearnedPolicy
from policies.mappo import train
from policies.ppo_model import make_model
from policies.train_config import TrainConfig
from sim_bridge.batched_env import BatchedEnv
from worlds import load_world, make_task


def test_coverage_state_holds_poses_landmarks_coverage_and_time():
    env = BatchedEnv("coverage", 3, seed=0, critic_state=True)
    env.reset(seed=0)
    N, L = env.num_agents, env.task.params.landmarks
    assert env.state.shape == (3, 6 * N + 3 * L + 1) == (3, env.state_dim)
    poses = env.snapshot().poses
    robots = env.state[:, : 6 * N].reshape(3, N, 6)
    assert np.allclose(robots[..., :2], poses[..., :2], atol=1e-5)
    assert np.allclose(robots[..., 2], np.cos(poses[..., 2]), atol=1e-5)
    landmarks = env.state[:, 6 * N : 6 * N + 3 * L].reshape(3, L, 3)
    assert np.allclose(landmarks[..., :2], env.task.landmarks, atol=1e-5)
    assert env.state[:, -1] == pytest.approx(0.0)
    for _ in range(env.max_steps - 1):
        step = env.step(np.zeros((3, N, 2)))
    assert step.state[:, -1] == pytest.approx((env.max_steps - 1) / env.max_steps, abs=1e-5)
    step = env.step(np.zeros((3, N, 2)))  # the time limit: every world ends and restarts
    assert step.world_done.all()
    assert step.final_state[:, -1] == pytest.approx(1.0, abs=1e-5)
    assert step.state[:, -1] == pytest.approx(0.0)
    covered = step.final_state[:, 6 * N : 6 * N + 3 * L].reshape(3, L, 3)[..., 2]
    assert set(np.unique(covered)) <= {0.0, 1.0}
    quiet = BatchedEnv("coverage", 1, seed=0)  # not asked for: the task does not compute it
    quiet.reset(seed=0)
    assert quiet.state is None and quiet.step(np.zeros((1, N, 2))).state is None


def test_the_critic_reads_the_state_and_the_actor_does_not():
    env = BatchedEnv("coverage", 2, seed=0, critic_state=True)
    obs = torch.as_tensor(env.reset(seed=0))
    model = make_model(env, TrainConfig(critic_state=True))
    state = torch.as_tensor(env.state)
    moved = state.clone()
    moved[:, 6 * env.num_agents] += 3.0  # the first landmark elsewhere
    assert not torch.allclose(model.get_value(obs, state), model.get_value(obs, moved))
    with pytest.raises(ValueError, match="needs the task's critic state"):
        model.get_value(obs)
    # The actor takes observations only: its action is computed from them alone, and nothing
    # it outputs depends on the state (no gradient reaches the state through it) while the
    # critic's value does.
    assert model.actor[0].in_features == env.obs_dim
    torch.testing.assert_close(model.choose(obs), model.actor(model.obs_norm(obs)))
    asked = state.clone().requires_grad_(True)
    _, logp, entropy, value = model.get_action_and_value(obs, model.choose(obs), asked)
    for actor_output in (logp, entropy):
        (grad,) = torch.autograd.grad(actor_output.sum(), asked, allow_unused=True, retain_graph=True)
        assert grad is None or not grad.any()
    (grad,) = torch.autograd.grad(value.sum(), asked)
    assert grad.abs().sum() > 0
    _, logp_moved, _, value_moved = model.get_action_and_value(obs, model.choose(obs), moved)
    torch.testing.assert_close(logp_moved, logp.detach(), rtol=0, atol=0)
    assert not torch.allclose(value_moved, value.detach())
    with pytest.raises(ValueError, match="the navigation task has no critic state"):
        make_model(BatchedEnv("navigation", 1), TrainConfig(critic_state=True))
    with pytest.raises(ValueError, match="critic_state is for MAPPO"):
        TrainConfig(critic_state=True, algo="ippo")


def test_a_run_with_the_critic_state_saves_a_checkpoint_that_serves(tmp_path):
    config = TrainConfig(critic_state=True, total_agent_steps=6 * 16 * 64 * 2, num_worlds=16, rollout_steps=64)
    result = train("coverage", config, out=tmp_path / "cov.pt", progress=False)
    context = PolicyContext.from_task(make_task(load_world("coverage")))
    policy = LearnedPolicy(context, result.checkpoint)
    assert policy.model.state_dim == result.model.state_dim == 55
    assert result.model.state_norm.count > 16 * 64  # the critic's state statistics were learned
    obs = {a: np.zeros(context.observation_size, dtype=np.float32) for a in context.agents}
    assert all(np.isfinite(c).all() for c in policy.act(obs).values())
