"""Rollout policy iteration (``policies.rollout_iteration``): branches that replay exactly,
choices judged by what follows them, and an actor fitted to the better ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies.base import PolicyContext
from policies.learned import LearnedPolicy
from policies.rollout import run_episode
from policies.rollout_iteration import (
    SEED_BASE,
    Moments,
    RolloutIterationConfig,
    SteeredEpisode,
    fit,
    make_model,
    play_with_branches,
    train,
)
from policies.scripted import make_scripted
from policies.steering import Steering
from sim_bridge.env import MultiRobotEnv
from worlds import load_world

SEED = 100_001  # a training seed whose first hand-off moment decides the episode (measured)


@pytest.fixture(scope="module")
def world():
    return load_world("coverage")


def _model(world, hand_off_logit: float | None = None):
    model = make_model(world, RolloutIterationConfig())
    if hand_off_logit is not None:  # an actor that hands off at every moment
        with torch.no_grad():
            model.actor[-1].bias[1] = hand_off_logit
    return model


@pytest.mark.parametrize("hand_off", [False, True])
def test_a_steered_episode_plays_as_the_learned_policy_serves_it(world, hand_off):
    model = _model(world, 20.0 if hand_off else None)
    env = MultiRobotEnv(world)
    steering = {"on": "holding_changes"}
    served = run_episode(
        env, LearnedPolicy.from_model(PolicyContext.from_task(env.task), model, True, steering=steering), SEED
    )
    episode = SteeredEpisode(env, model, Steering.from_entry(steering), SEED)
    poses = [env.snapshot.poses[0].copy()]
    while env.agents:
        agents, commands, _, choices, _ = episode.decide()
        episode.apply(agents, commands, choices)
        poses.append(env.snapshot.poses[0].copy())
    np.testing.assert_array_equal(np.stack(poses), served.poses)
    assert env.episode_metrics()["success_rate"] == served.metrics["success_rate"]
    env.close()


def test_a_branch_replays_the_episode_exactly_and_the_other_choice_changes_it(world):
    model = _model(world)
    env = MultiRobotEnv(world)
    episode = SteeredEpisode(env, model, Steering.from_entry({"on": "holding_changes"}), SEED)
    for _ in range(40):
        episode.apply(*episode.decide()[:2], np.zeros(6, np.int64))
    same = episode.branch()
    assert same.env is not episode.env and same.base is not episode.base and same.model is episode.model
    played_on = same.finish("mean_coverage_fraction")
    assert episode.finish("mean_coverage_fraction") == played_on
    env.close()

    config = RolloutIterationConfig(workers=0)
    moments = play_with_branches(world, model, config, [SEED])
    assert len(moments.taken) >= 3 and (moments.taken == 0).all()  # the untrained actor keeps
    assert moments.episode_outcomes.tolist() == [1.0]
    assert (moments.outcomes[:, 0] == 1.0).all()  # keeping: the episode as played
    assert moments.outcomes[:, 1].min() == 0.0  # one hand-off loses a landmark for good ...
    assert moments.outcomes.shape == (len(moments.taken), 2) and not np.isnan(moments.outcomes).any()


def test_targets_teach_the_best_choice_and_keep_on_ties():
    moments = Moments(
        np.zeros((4, 3), np.float32),
        np.array([0, 0, 1, 0]),
        np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]]),
        np.array([1.0]),
    )
    target, weight = moments.targets(tie_weight=0.05)
    assert target.tolist() == [0, 1, 0, 0]
    np.testing.assert_allclose(weight, [1.0, 1.0, 0.05, 0.05])


def test_fit_learns_which_moments_a_choice_pays_at(world):
    model = _model(world)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(600, model.obs_dim)).astype(np.float32)
    pays = inputs[:, 3] > 0.5  # handing off pays where feature 3 is high, costs elsewhere
    outcomes = np.stack([np.where(pays, 0.0, 1.0), np.where(pays, 1.0, 0.0)], axis=1)
    moments = Moments(inputs, np.zeros(600, np.int64), outcomes, np.ones(1))
    before = model.choose(torch.as_tensor(inputs)).numpy()
    assert (before == 0).all()
    stats = fit(model, moments, RolloutIterationConfig(epochs=300))
    after = model.choose(torch.as_tensor(inputs)).numpy()
    assert (after == pays).mean() > 0.95
    assert stats["fit_agreement"] > 0.95


def _outcome(env, policy, seeds, metric: str) -> float:
    return float(np.mean([run_episode(env, policy, s).metrics[metric] for s in seeds]))


@pytest.mark.slow
def test_a_short_run_writes_a_checkpoint_served_as_a_steering_policy(world, tmp_path):
    # judged by a continuous outcome (success is 1.0 on these seeds whatever the actor does)
    outcome = "mean_coverage_fraction"
    config = RolloutIterationConfig(episodes=2, workers=2, epochs=20, outcome=outcome)
    result = train(world, config, out=tmp_path / "coverage", log=lambda *_: None)
    meta = json.loads((tmp_path / "coverage.json").read_text())
    assert meta["steering"] == {"on": "holding_changes"} and meta["act"] == "mode"
    assert meta["train_config"]["algo"] == "rollouts"
    assert len(result.history) == 2  # a round that fits, a round that only plays its actor
    row, check = result.history
    assert row["moments"] > 0 and "moments" not in check
    kept = max(range(2), key=lambda k: (result.history[k][outcome], -k))  # ties keep the earlier
    assert result.chosen_fit == meta["train_metrics"]["chosen_fit"] == kept
    # Each round's outcome is that of its actor on its own training seeds, replayed here: the
    # first round's untrained actor keeps every choice, so it plays as the baseline does; the
    # kept checkpoint plays its round's seeds as that round reported.
    first = [SEED_BASE, SEED_BASE + 1]
    second = [SEED_BASE + 2, SEED_BASE + 3]
    env = MultiRobotEnv(world)
    try:
        context = PolicyContext.from_task(env.task)
        assert row[outcome] == _outcome(env, make_scripted(context), first, outcome)
        policy = LearnedPolicy(context, result.checkpoint)
        assert policy.steering is not None and policy.steering.on == "holding_changes"
        if result.chosen_fit == 1:
            assert check[outcome] == _outcome(env, policy, second, outcome)
        else:  # the start was kept: the checkpoint is the baseline, and the fit played no better
            assert check[outcome] <= row[outcome]
            assert _outcome(env, policy, first, outcome) == row[outcome]
    finally:
        env.close()


def test_config_is_checked():
    with pytest.raises(ValueError, match="steer_on must be one of"):
        RolloutIterationConfig(steer_on="sideways")
    with pytest.raises(ValueError, match="episodes must be at least 1"):
        RolloutIterationConfig(episodes=0)
