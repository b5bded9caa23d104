"""An actor with memory (recurrent MAPPO): each robot's memory is kept across steps, fresh at
episode starts, replayed exactly in the PPO update, and carried by checkpoints and policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.base import PolicyContext
from policies.collector import Collector
from policies.learned import LearnedPolicy
from policies.mappo import train
from policies.models import RunningNorm
from policies.ppo_model import make_model
from policies.ppo_update import as_sequences, unroll_memory
from policies.registry import make_policy
from policies.train_config import TrainConfig
from sim_bridge.env import MultiRobotEnv
from tests.test_training import small_world
from worlds import load_world, load_world_data


def short_coverage():
    """Coverage with one-second episodes, so a rollout crosses episode starts."""
    data = load_world("coverage").to_data()
    data["task"]["params"]["max_episode_s"] = 1.0
    return load_world_data(data, "short_coverage")


def test_the_update_replays_each_robots_memory_exactly_across_episode_starts():
    torch.manual_seed(0)
    config = TrainConfig(num_worlds=3, rollout_steps=48, memory=16, memory_chunk=16)
    collector = Collector(short_coverage(), config.num_worlds, seed=0)
    model = make_model(collector.env, config)
    rollout = collector.collect(model, config.rollout_steps, RunningNorm(1), config)
    episode = collector.env.max_steps  # 20 control steps: episodes start again at steps 20 and 40
    assert rollout.done[episode - 1].all() and not rollout.done[: episode - 1].any()
    assert torch.count_nonzero(rollout.memory[episode]) == 0  # fresh at the start of an episode
    assert torch.count_nonzero(rollout.memory[episode - 1]) > 0
    L = config.memory_chunk
    obs, act, done = (as_sequences(x, L) for x in (rollout.obs, rollout.act, rollout.done))
    start = as_sequences(rollout.memory, L)[0]
    with torch.no_grad():
        memory = unroll_memory(model, obs, start, done)
        _, logp, _, _ = model.get_action_and_value(obs, act, memory=memory)
    assert torch.allclose(logp, as_sequences(rollout.logp, L), atol=1e-5)  # what the robots did, replayed
    with torch.no_grad():  # a replay that ignores the episode starts gets the later steps wrong
        kept = unroll_memory(model, obs, start, torch.zeros_like(done))
        _, wrong, _, _ = model.get_action_and_value(obs, act, memory=kept)
    assert not torch.allclose(wrong, logp, atol=1e-3)


def test_the_actor_acts_on_its_memory():
    env = MultiRobotEnv(small_world())
    try:
        model = make_model(_batched(), TrainConfig(memory=8))
        obs = torch.as_tensor(np.stack(list(env.reset(seed=0)[0].values())))
        fresh = model.initial_memory(len(obs))
        seen = model.remember(obs, fresh)
        assert seen.shape == (len(obs), 8) and not torch.allclose(seen, fresh)
        with torch.no_grad():
            model.actor[-1].weight.normal_()  # an actor that is not (near) uniform
        assert not torch.allclose(model.choose(obs, memory=fresh), model.choose(obs, memory=seen))
        with pytest.raises(ValueError, match="this actor has a memory"):
            model.act(obs)
        with pytest.raises(ValueError, match="memory of shape"):
            model.remember(obs, model.initial_memory(len(obs) + 1))
    finally:
        env.close()


def _batched():
    from sim_bridge.batched_env import BatchedEnv

    return BatchedEnv(small_world(), 1)


def test_a_policy_keeps_a_memory_per_robot_and_forgets_it_at_reset(tmp_path):
    world = small_world()
    config = TrainConfig(total_agent_steps=2_000, num_worlds=2, rollout_steps=16, memory=8, memory_chunk=8)
    train(world, config, out=tmp_path / "rnn", progress=False)
    env = MultiRobotEnv(world)
    try:
        policy = make_policy(str(tmp_path / "rnn.pt"), PolicyContext.from_task(env.task))
        assert isinstance(policy, LearnedPolicy) and policy.model.memory_size == 8
        obs, _ = env.reset(seed=3)

        def episode():
            policy.reset(seed=1)
            return [policy.act(obs)["robot_0"] for _ in range(4)]

        first = episode()
        assert not np.allclose(first[0], first[1])  # same observation, a memory that has moved on
        assert np.array_equal(np.array(first), np.array(episode()))  # reset: the same episode again
        policy.reset(seed=1)
        alone = policy.act({"robot_1": obs["robot_1"]})["robot_1"]
        policy.reset(seed=1)
        policy.act({"robot_0": obs["robot_0"]})
        policy.act({"robot_0": obs["robot_0"]})
        assert np.array_equal(policy.act({"robot_1": obs["robot_1"]})["robot_1"], alone)  # its own memory
    finally:
        env.close()


def test_memory_settings_are_checked():
    with pytest.raises(ValueError, match=r"memory_chunk \(5\) must divide rollout_steps \(128\)"):
        TrainConfig(memory=8, memory_chunk=5)
    with pytest.raises(ValueError, match="cloning"):
        TrainConfig(memory=8, bc_agent_steps=1000)
    with pytest.raises(ValueError, match="memory is a GRU size"):
        TrainConfig(memory=-1)


@pytest.mark.slow
def test_short_training_with_memory_improves_the_return(tmp_path):
    config = TrainConfig(total_agent_steps=120_000, num_worlds=16, rollout_steps=64, memory=32, memory_chunk=16, seed=1)
    result = train(small_world(), config, out=tmp_path / "rnn", progress=False)
    returns = [h["return"] for h in result.history if "return" in h]
    assert len(returns) > 5
    first, last = np.mean(returns[:2]), np.mean(returns[-2:])
    assert last > first + 1.0, returns
    assert result.model.spec()["memory"] == 32
