"""Target-choice policies: the actor picks a landmark in view or a search heading, a fixed
controller drives there."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies.base import FunctionPolicy, PolicyContext
from policies.learned import LearnedPolicy
from policies.mappo import train
from policies.models import MultiAgentActorCritic
from policies.ppo_model import make_model
from policies.registry import make_policy
from policies.residual import ScriptedTeam
from policies.rollout import run_episodes, summarise
from policies.scripted import make_scripted
from policies.targets import TargetController
from policies.train_config import TrainConfig
from sim_bridge.batched_env import BatchedEnv
from sim_bridge.env import MultiRobotEnv
from worlds import load_world, make_task


@pytest.fixture(scope="module")
def context() -> PolicyContext:
    return PolicyContext.from_task(make_task(load_world("coverage")))


def _obs(context, landmarks=(), neighbours=()) -> np.ndarray:
    """One coverage observation with landmarks [(x, y, taken)] and neighbours [(x, y)] in view."""
    obs = np.zeros(context.observation_size, dtype=np.float32)
    lm = obs[context.observation_slices["landmarks"]].reshape(-1, 4)
    for j, (x, y, taken) in enumerate(landmarks):
        lm[j] = (x, y, taken, 1.0)
    nb = obs[context.observation_slices["neighbours"]].reshape(-1, 5)
    for j, (x, y) in enumerate(neighbours):
        nb[j] = (x, y, 0.0, 0.0, 1.0)
    obs[context.observation_slices["landmarks"]] = lm.reshape(-1)
    obs[context.observation_slices["neighbours"]] = nb.reshape(-1)
    return obs


def test_choices_become_the_baselines_driving(context):
    ctl = TargetController(context)
    vmax = ctl.max_mps
    assert ctl.num_choices == 4 + 8  # four landmark slots in view, eight headings
    obs = _obs(context, landmarks=[(2.0, 0.0, 0.0), (0.0, 0.3, 1.0)])
    batch = np.stack([obs] * 5)
    out = ctl.commands(batch, np.array([0, 1, 2, 4, 6]))
    assert np.allclose(out[0], [vmax, 0.0])  # far landmark: full speed toward it
    assert np.allclose(out[1], [0.0, 0.3 * 1.5])  # near landmark: gain × distance
    assert np.allclose(out[2], [0.0, 0.0])  # an empty slot: stand still
    assert np.allclose(out[3], [vmax, 0.0], atol=1e-6)  # heading 0
    assert np.allclose(out[4], [0.0, vmax], atol=1e-6)  # heading 2 of 8: 90°
    crowded = _obs(context, landmarks=[(0.02, 0.0, 0.0)], neighbours=[(0.25, 0.0)])
    pushed = ctl.commands(crowded[None], np.array([0]))[0]  # on its landmark, a neighbour 0.25 m ahead
    assert pushed[0] == pytest.approx(-0.5) and pushed[1] == pytest.approx(0.0)


def test_the_controller_refuses_bad_choices_and_tasks_without_landmarks(context):
    ctl = TargetController(context)
    with pytest.raises(ValueError, match=r"0\.\.11"):
        ctl.commands(_obs(context)[None], np.array([12]))
    nav = PolicyContext.from_task(make_task(load_world("navigation")))
    with pytest.raises(ValueError, match="navigation task's has no landmarks"):
        TargetController(nav)


def test_choosing_the_nearest_free_landmark_covers_some(context):
    """A hand-written chooser through the controller drives robots onto landmarks: more of
    them covered than standing still (the controller does what the choice says)."""
    world = load_world("coverage")
    env = MultiRobotEnv(world)
    try:
        ctx = PolicyContext.from_task(env.task)
        ctl = TargetController(ctx)

        def nearest_free(obs: np.ndarray) -> np.ndarray:
            lm = obs[:, ctx.observation_slices["landmarks"]].reshape(len(obs), -1, 4)
            free = (lm[..., 3] > 0.5) & (lm[..., 2] < 0.5)
            choice = np.where(free.any(axis=1), free.argmax(axis=1), ctl.landmark_slots)  # else heading 0
            return ctl.commands(obs, choice)

        seeds = range(1000, 1003)
        chooser = summarise(run_episodes(env, FunctionPolicy(ctx, "nearest-free", nearest_free), seeds))
        idle = summarise(run_episodes(env, make_policy("idle", ctx), seeds))
    finally:
        env.close()
    assert chooser["coverage_fraction"] >= 0.5 > idle["coverage_fraction"]


def test_a_short_target_choice_run_writes_a_checkpoint_that_serves_choices(tmp_path):
    world = load_world("coverage")
    config = TrainConfig(targets=True, total_agent_steps=30_000, num_worlds=8, rollout_steps=64, seed=3)
    result = train(world, config, out=tmp_path / "tgt", progress=False)
    meta = json.loads((tmp_path / "tgt.json").read_text())
    assert meta["targets"] == {"headings": 8, "baseline": False}
    assert meta["action"]["type"] == "targets" and meta["model_args"]["choices"] == 12
    assert result.history and all(np.isfinite(h["return"]) for h in result.history if "return" in h)
    env = MultiRobotEnv(world)
    try:
        context = PolicyContext.from_task(env.task)
        policy = make_policy(str(tmp_path / "tgt.pt"), context)
        assert isinstance(policy, LearnedPolicy) and policy.controller is not None
        obs, _ = env.reset(seed=1000)
        policy.reset(1000)
        commands = policy.act(obs)
        stacked = np.stack([obs[a] for a in obs])
        choices = policy.model.choose(torch.as_tensor(stacked)).numpy()
        expected = policy.controller.commands(stacked, choices)
        assert np.allclose(np.stack([commands[a] for a in obs]), expected)
    finally:
        env.close()


def test_target_choice_training_refuses_other_action_forms():
    with pytest.raises(ValueError, match="targets"):
        TrainConfig(targets=True, discrete_per_axis=5)
    with pytest.raises(ValueError, match="navigation task's has no landmarks"):
        make_model(BatchedEnv(load_world("navigation"), 1), TrainConfig(targets=True))
    model = MultiAgentActorCritic(4, 2, np.array([-1.0, -1.0]), np.array([1.0, 1.0]), choices=3)
    with pytest.raises(ValueError, match="choices, not commands"):
        model.act(torch.zeros(1, 4))


def test_the_baselines_choices_point_where_it_drives():
    """Cloning labels: the coverage baseline's decisions as target choices send the robots
    the way the baseline itself sends them (search headings rounded to 45°)."""
    world = load_world("coverage")
    env = BatchedEnv(world, 4, seed=5)
    context = PolicyContext.from_task(env.task)
    team = ScriptedTeam(context, env.agents, 4, seed=5)
    twin = ScriptedTeam(context, env.agents, 4, seed=5)  # same memory, asked for choices
    ctl = TargetController(context)
    obs = env.reset(seed=5)
    agree, total, searching = 0, 0, 0
    for _ in range(200):
        active = env.task.active
        commands = team.commands(obs, active)
        choices = twin.choices(obs, active, ctl.config.headings)
        assert choices.min() >= 0 and choices.max() < ctl.num_choices
        driven = ctl.commands(obs, choices)
        moving = np.linalg.norm(commands, axis=-1) > 0.1
        cos = (commands * driven).sum(-1) / np.maximum(
            np.linalg.norm(commands, axis=-1) * np.linalg.norm(driven, axis=-1), 1e-9
        )
        agree += int((cos[moving] > 0.9).sum())
        total += int(moving.sum())
        searching += int((choices >= ctl.landmark_slots).sum())
        obs = env.step(commands).obs
    assert total > 1000 and searching > 0
    assert agree / total > 0.95


def test_with_the_baseline_as_a_choice_an_untrained_policy_is_the_baseline():
    """targets + residual: the baseline's command is one more choice, and the actor starts
    on it, so before training the policy (most likely choice) drives exactly as the baseline."""
    world = load_world("coverage")
    model = make_model(BatchedEnv(world, 1), TrainConfig(targets=True, residual=True))
    env = MultiRobotEnv(world)
    try:
        context = PolicyContext.from_task(env.task)
        assert model.choices == TargetController(context).num_choices + 1
        assert model.obs_dim == context.observation_size + 2  # the observation and the baseline's command
        seeds = range(1000, 1002)
        policy = LearnedPolicy.from_model(context, model, residual={}, targets={"headings": 8, "baseline": True})
        learned = run_episodes(env, policy, seeds)
        scripted = run_episodes(env, make_scripted(context), seeds)
    finally:
        env.close()
    for r, s in zip(learned, scripted, strict=True):
        assert r.metrics == s.metrics
