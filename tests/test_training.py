"""A short, real MAPPO/IPPO training run improves the return; checkpoints round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies import checkpoint
from policies.base import PolicyContext
from policies.imitation import clone_scripted_baseline
from policies.learned import LearnedPolicy
from policies.mappo import TrainConfig, make_model, train
from policies.registry import PolicyError, make_policy, make_scripted
from policies.rollout import run_episodes, summarise
from sim_bridge.batched_env import BatchedEnv
from sim_bridge.env import MultiRobotEnv
from worlds import load_world_data


def small_world():
    """Two Huskies, no obstacles, goals 3–5 m ahead: learnable in seconds."""
    return load_world_data(
        {
            "name": "small_navigation",
            "backend": "kinematic",
            "arena": {"size_m": [12.0, 8.0]},
            "robots": [{"model": "husky", "count": 2, "spawn": {"region": {"min": [-4.5, -2.5], "max": [-3.5, 2.5]}}}],
            "sensors": {"lidar": {"beams": 12, "range_max_m": 5.0}},
            "task": {
                "name": "navigation",
                "params": {
                    "goals": {"region": {"min": [0.0, -2.5], "max": [1.0, 2.5]}},
                    "max_episode_s": 8.0,
                    "lidar_obs_beams": 12,
                    "neighbours": 1,
                },
            },
        },
        "small_navigation",
    )


@pytest.mark.parametrize("algo", ["mappo", "ippo"])
def test_short_training_improves_the_return(algo, tmp_path):
    world = small_world()
    config = TrainConfig(algo=algo, total_agent_steps=120_000, num_worlds=16, rollout_steps=64, seed=1)
    result = train(world, config, out=tmp_path / "small", progress=False)
    returns = [h["return"] for h in result.history if "return" in h]
    assert len(returns) > 5
    first, last = np.mean(returns[:2]), np.mean(returns[-2:])
    assert last > first + 1.0, returns  # not only "runs": it learned to head for the goal
    # The checkpoint and its sidecar
    meta = json.loads((tmp_path / "small.json").read_text())
    assert meta["task"] == "navigation" and meta["train_config"]["algo"] == algo
    assert meta["observation"]["size"] == result.model.obs_dim
    state = torch.load(tmp_path / "small.pt", weights_only=True)
    assert "actor.0.weight" in state
    # ... serves the Policy interface, in the PettingZoo env
    env = MultiRobotEnv(world)
    policy = make_policy(str(tmp_path / "small.pt"), PolicyContext.from_task(env.task))
    obs, _ = env.reset(seed=5)
    actions = policy.act(obs)
    assert set(actions) == {"robot_0", "robot_1"}
    assert all(a.shape == (2,) and np.isfinite(a).all() for a in actions.values())
    assert all(-1.0 <= a[0] <= 1.0 and -2.0 <= a[1] <= 2.0 for a in actions.values())


@pytest.mark.parametrize("discrete", [0, 5])
def test_sampled_actions_replay_under_a_seed_and_follow_the_sidecar(discrete, tmp_path):
    world = small_world()
    config = TrainConfig(total_agent_steps=2_000, num_worlds=2, rollout_steps=16, discrete_per_axis=discrete)
    train(world, config, out=tmp_path / "tiny", progress=False)
    env = MultiRobotEnv(world)
    try:
        context = PolicyContext.from_task(env.task)
        obs, _ = env.reset(seed=3)
        many = {f"robot_{i % 2}": obs[f"robot_{i % 2}"] for i in range(2)}
        sampled = make_policy(str(tmp_path / "tiny.pt"), context, act="sample")
        runs = []
        for _ in range(2):
            sampled.reset(seed=7)
            runs.append([sampled.act(many)["robot_0"] for _ in range(20)])
        assert np.array_equal(np.array(runs[0]), np.array(runs[1]))  # same seed, same draws
        assert len({tuple(a) for a in runs[0]}) > 1  # draws, not one action
        mode = make_policy(str(tmp_path / "tiny.pt"), context)
        assert mode.act_mode == "mode" and len({tuple(mode.act(many)["robot_0"]) for _ in range(5)}) == 1
        meta = json.loads((tmp_path / "tiny.json").read_text())
        (tmp_path / "tiny.json").write_text(json.dumps({**meta, "act": "sample"}))
        assert make_policy(str(tmp_path / "tiny.pt"), context).act_mode == "sample"
        (tmp_path / "tiny.json").write_text(json.dumps({**meta, "act": "greedy"}))
        with pytest.raises(PolicyError, match="act must be one of mode, sample, got 'greedy'"):
            make_policy(str(tmp_path / "tiny.pt"), context)
    finally:
        env.close()


def test_a_checkpoint_for_another_task_or_shape_is_refused(tmp_path):
    world = small_world()
    train(
        world,
        TrainConfig(total_agent_steps=2_000, num_worlds=2, rollout_steps=16),
        out=tmp_path / "tiny",
        progress=False,
    )
    from worlds import load_world

    env = MultiRobotEnv(load_world("navigation"))  # 60 lidar sectors, 3 neighbours: other shape
    with pytest.raises(PolicyError, match="expects observations of size"):
        make_policy(str(tmp_path / "tiny.pt"), PolicyContext.from_task(env.task))
    (tmp_path / "tiny.json").unlink()
    with pytest.raises(PolicyError, match="sidecar"):
        make_policy(str(tmp_path / "tiny.pt"), PolicyContext.from_task(env.task))
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "nope.pt")


def test_training_config_is_checked():
    with pytest.raises(ValueError, match="algo must be mappo or ippo"):
        TrainConfig(algo="dqn")
    with pytest.raises(ValueError, match="num_worlds must be at least 1"):
        TrainConfig(num_worlds=0)


def test_teacher_tuning_changes_the_baseline_and_names_unknown_settings():
    env = MultiRobotEnv(small_world())
    try:
        context = PolicyContext.from_task(env.task)
        cautious = make_scripted(context, {"safety_margin_m": 0.3})
        assert cautious.config.safety_margin_m == 0.3
        assert make_scripted(context).config.safety_margin_m != 0.3
        with pytest.raises(PolicyError, match=r"no setting safety_margin; its settings: .*safety_margin_m"):
            make_scripted(context, {"safety_margin": 0.3})
    finally:
        env.close()


@pytest.mark.parametrize("discrete", [0, 7])
def test_dagger_imitates_the_scripted_baseline_on_states_the_learner_visits(discrete):
    """Cloning then DAgger: the learner, driving alone on held-out seeds, does about as well
    as its teacher (continuous regression and the discrete classifier both)."""
    world = small_world()
    config = TrainConfig(
        num_worlds=8, bc_agent_steps=6_000, bc_epochs=40, dagger_rounds=2, dagger_epochs=20, discrete_per_axis=discrete
    )
    torch.manual_seed(0)
    model = make_model(BatchedEnv(world, 1), config)
    clone_scripted_baseline(model, world, config)
    env = MultiRobotEnv(world)
    try:
        context = PolicyContext.from_task(env.task)
        seeds = range(900, 908)
        learned = summarise(run_episodes(env, LearnedPolicy.from_model(context, model), seeds))
        teacher = summarise(run_episodes(env, make_policy("scripted", context), seeds))
    finally:
        env.close()
    assert learned["success_rate"] >= teacher["success_rate"] - 0.2, (learned["per_episode"], teacher["success_rate"])
    assert learned["collision_rate"] <= teacher["collision_rate"] + 0.2, learned["per_episode"]
    idle_like = learned["path_length_m"] < 0.5
    assert not idle_like, learned["per_episode"]
