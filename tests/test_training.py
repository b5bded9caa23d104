"""A short, real MAPPO/IPPO training run improves the return; checkpoints round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies import checkpoint
from policies.base import PolicyContext, PolicyError
from policies.collector import Collector
from policies.imitation import clone_scripted_baseline
from policies.learned import LearnedPolicy
from policies.mappo import train
from policies.models import RunningNorm
from policies.ppo_model import make_model
from policies.ppo_update import ppo_update
from policies.registry import make_policy
from policies.rollout import run_episodes, summarise
from policies.scripted import make_scripted
from policies.train_config import TrainConfig
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _second_rollout(config: TrainConfig):
    """A model after one real PPO update (so its input statistics are not the identity) and
    the rollout it then collects, with the value normalisation it acted with."""

    torch.manual_seed(0)
    collector = Collector(small_world(), config.num_worlds, config.seed)
    model = make_model(collector.env, config)
    value_norm = RunningNorm(1, clip=1e6)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    first = collector.collect(model, config.rollout_steps, value_norm, config)
    ppo_update(model, optimizer, [first], value_norm, config)
    return model, value_norm, collector.collect(model, config.rollout_steps, value_norm, config)


def _reference_value_loss(model, rollout, value_norm, config: TrainConfig) -> float:
    """The value loss before any step, computed here from the rollout alone: GAE over the
    values the critic gave while acting (and its value of the last observations under the same
    input statistics), targets normalised by the value statistics updated with the returns,
    and the critic's values as they were while acting."""
    import copy

    std = float(torch.sqrt(value_norm.var + 1e-8))
    mean = float(value_norm.mean)
    with torch.no_grad():
        next_value = model.get_value(rollout.next_obs).numpy() * std + mean
    values = rollout.val.numpy() * std + mean
    rew, done, mask = rollout.rew.numpy(), rollout.done.numpy(), rollout.mask.numpy().astype(bool)
    adv = np.zeros_like(rew)
    last = np.zeros_like(rew[0])
    for t in reversed(range(len(rew))):
        after = next_value if t == len(rew) - 1 else values[t + 1]
        delta = rew[t] + config.gamma * after * (1 - done[t]) - values[t]
        last = delta + config.gamma * config.gae_lambda * (1 - done[t]) * last
        adv[t] = last
    returns = adv + values
    updated = copy.deepcopy(value_norm)
    updated.update(torch.as_tensor(returns[mask]).reshape(-1, 1))
    target = (returns - float(updated.mean)) / float(torch.sqrt(updated.var + 1e-8))
    return float(0.5 * ((rollout.val.numpy() - target) ** 2)[mask].mean())


@pytest.mark.parametrize("memory", [0, 8])
def test_ppo_starts_each_update_at_ratio_one_with_one_normalisation(memory):
    """Before the first gradient step of an update the policy is the one that acted: the
    importance ratio is 1 for every sample (a learning rate of 0 keeps it there, so the
    approximate KL is 0), and GAE and the value loss see the critic's values under the input
    statistics it acted with. The statistics then learn from the rollout, after the update."""
    config = TrainConfig(num_worlds=4, rollout_steps=16, update_epochs=2, minibatches=2, memory=memory, memory_chunk=8)
    model, value_norm, rollout = _second_rollout(config)
    expected_value_loss = _reference_value_loss(model, rollout, value_norm, config)
    count = float(model.obs_norm.count)
    frozen = torch.optim.Adam(model.parameters(), lr=0.0)
    one_pass = TrainConfig(**{**config.__dict__, "update_epochs": 1, "minibatches": 1})
    stats = ppo_update(model, frozen, [rollout], value_norm, one_pass)
    assert abs(stats["approx_kl"]) < 1e-9, stats  # ratio 1 everywhere
    assert stats["clip_fraction"] == 0.0, stats
    assert stats["value_loss"] == pytest.approx(expected_value_loss, rel=1e-4), stats
    active = int(rollout.mask.sum())
    assert float(model.obs_norm.count) == pytest.approx(count + active)  # learned, after the update
