"""Search steering: the scripted coverage baseline drives; the actor chooses only where a
searching robot searches (``policies.steering``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from policies.base import PolicyContext
from policies.collector import Collector
from policies.learned import LearnedPolicy
from policies.mappo import train
from policies.models import RunningNorm
from policies.ppo_model import make_model
from policies.ppo_update import ppo_update
from policies.rollout import run_episode
from policies.scripted import make_scripted
from policies.steering import KEEP_LOGITS, heading_vectors
from policies.train_config import TrainConfig
from sim_bridge.env import MultiRobotEnv
from worlds import load_world, make_task


@pytest.fixture(scope="module")
def context() -> PolicyContext:
    return PolicyContext.from_task(make_task(load_world("coverage")))


def _obs(context, landmarks=()) -> np.ndarray:
    """A coverage observation with landmarks [(x, y, taken)] in view, no neighbours, walls out of range."""
    obs = np.zeros(context.observation_size, dtype=np.float32)
    lm = obs[context.observation_slices["landmarks"]].reshape(-1, 4)
    for j, (x, y, taken) in enumerate(landmarks):
        lm[j] = (x, y, taken, 1.0)
    obs[context.observation_slices["landmarks"]] = lm.reshape(-1)
    obs[context.observation_slices["lidar"]] = 5.0
    return obs


def _steering_model(context, keep_logit: float, heading: int | None = None):
    env_dims = make_model(_Env(context), TrainConfig(steer_search=True))
    with torch.no_grad():
        env_dims.actor[-1].bias[0] = keep_logit
        if heading is not None:
            env_dims.actor[-1].bias[1 + heading] = keep_logit + 10.0
    return env_dims


class _Env:
    """What ``make_model`` reads from a batched env."""

    def __init__(self, context):
        self.obs_dim = context.observation_size
        self.num_agents = len(context.agents)
        limits = context.limits[context.agents[0]]
        self.action_low = np.array([[limits.min_linear_speed_mps, -limits.max_angular_speed_radps]])
        self.action_high = np.array([[limits.max_linear_speed_mps, limits.max_angular_speed_radps]])


def test_a_heading_redirects_a_searching_robot_and_is_ignored_for_one_with_a_landmark(context):
    baseline = make_scripted(context)
    agent = context.agents[0]
    vmax = baseline.config.explore_mps
    nothing_in_view = _obs(context)
    first = baseline.act({agent: nothing_in_view})[agent]
    assert baseline.searching(agent) and np.linalg.norm(first) == pytest.approx(vmax, rel=1e-5)
    baseline.steer(agent, heading_vectors(8)[2])  # 90°: left in the robot frame
    for _ in range(3):  # the new heading holds, step after step
        assert np.allclose(baseline.act({agent: nothing_in_view})[agent], [0.0, vmax], atol=1e-6)
    with_landmark = _obs(context, landmarks=[(2.0, 0.0, 0.0)])
    toward = baseline.act({agent: with_landmark})[agent]
    assert not baseline.searching(agent)
    baseline.steer(agent, heading_vectors(8)[4])  # a robot with a landmark of its own is not steered
    assert np.allclose(baseline.act({agent: with_landmark})[agent], toward)


def test_keeping_every_heading_is_the_baseline_step_for_step(context):
    world = load_world("coverage")
    keep = LearnedPolicy.from_model(context, _steering_model(context, KEEP_LOGITS["search"]), steering={"headings": 8})
    env = MultiRobotEnv(world)
    try:
        steered = run_episode(env, keep, seed=1002)
        scripted = run_episode(env, make_scripted(context), seed=1002)
        turned = run_episode(
            env,
            LearnedPolicy.from_model(context, _steering_model(context, 0.0, heading=5), steering={"headings": 8}),
            1002,
        )
    finally:
        env.close()
    assert np.array_equal(steered.poses, scripted.poses)
    assert steered.metrics == scripted.metrics
    assert not np.allclose(turned.poses, scripted.poses)  # seed 1002 has searches: a heading choice changes them


def test_the_actor_learns_only_from_steps_where_a_robot_searches():
    config = TrainConfig(steer_search=True, num_worlds=8, rollout_steps=300, update_epochs=1)
    collector = Collector(load_world("coverage"), 8, seed=0, steering={"headings": 8})
    model = make_model(collector.env, config)
    rollout = collector.collect(model, 300, RunningNorm(1, clip=1e6), config)  # 15 s of 8 episodes
    searching = rollout.policy_mask.mean().item()
    assert 0.0 < searching < 1.0, "some robots search, some drive to landmarks"
    rollout.policy_mask.zero_()  # as if nobody had searched
    actor = [p.detach().clone() for p in model.actor.parameters()]
    critic = [p.detach().clone() for p in model.critic.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ppo_update(model, optimizer, [rollout], RunningNorm(1, clip=1e6), config)
    assert all(torch.equal(a, b) for a, b in zip(actor, model.actor.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(critic, model.critic.parameters(), strict=True))
    rollout.policy_mask[0, 0, 0] = 1.0  # one choice in the whole rollout: no spread of advantages
    ppo_update(model, optimizer, [rollout], RunningNorm(1, clip=1e6), config)
    assert all(torch.isfinite(p).all() for p in model.parameters()), "a lone choice must not poison the weights"


def test_a_steering_run_writes_a_checkpoint_that_serves_the_steered_baseline(tmp_path, context):
    config = TrainConfig(steer_search=True, total_agent_steps=6 * 16 * 64, num_worlds=16, rollout_steps=64)
    result = train("coverage", config, out=tmp_path / "steer.pt", progress=False)
    meta = json.loads((tmp_path / "steer.json").read_text())
    assert meta["steering"] == {"headings": 8, "on": "search"}
    assert meta["action"]["type"] == "steering"
    assert meta["model_args"]["choices"] == 9
    policy = LearnedPolicy(context, result.checkpoint)
    assert policy.steering.headings.shape == (8, 2) and policy.base is not None


def test_steering_refuses_a_task_whose_baseline_does_not_search():
    with pytest.raises(ValueError, match="the navigation baseline does not search"):
        Collector(load_world("navigation"), 1, seed=0, steering={"headings": 8})
    with pytest.raises(ValueError, match="steer_search runs the baseline"):
        TrainConfig(steer_search=True, bc_agent_steps=100)


def _with_neighbour(context, obs, x, y) -> np.ndarray:
    nb = obs[context.observation_slices["neighbours"]].reshape(-1, 5)
    nb[0] = (x, y, 0.0, 0.0, 1.0)
    obs[context.observation_slices["neighbours"]] = nb.reshape(-1)
    return obs


def test_a_holding_robot_hands_off_to_the_free_landmark_and_keeps_going_there(context):
    baseline = make_scripted(context)
    agent = context.agents[0]
    # on its own landmark (0.1 m away), a free one 3 m ahead-left; a neighbour 1 m behind
    on_mine = _with_neighbour(context, _obs(context, landmarks=[(0.1, 0.0, 0.0), (3.0, 2.0, 0.0)]), -1.0, 0.0)
    stay = baseline.act({agent: on_mine})[agent]
    assert baseline.holding(agent) and np.linalg.norm(stay) < 0.2, "it drives onto its own landmark"
    baseline.hand_off(agent)
    go = baseline.act({agent: on_mine})[agent]
    assert go @ np.array([3.0, 2.0]) / np.hypot(3.0, 2.0) > 0.9 * np.linalg.norm(go) > 0.5
    assert not baseline.holding(agent), "on its way it has no hand-off to choose"
    # a step later the same landmark is 5 cm nearer and the one it left is behind: it keeps going
    later = _with_neighbour(context, _obs(context, landmarks=[(0.05, 0.0, 0.0), (2.95, 1.97, 0.0)]), -1.0, 0.0)
    assert baseline.act({agent: later})[agent] @ np.array([3.0, 2.0]) > 0.5
    # once another robot covers it, the hand-off is over and the greedy matching decides again
    taken = _with_neighbour(context, _obs(context, landmarks=[(0.05, 0.0, 0.0), (2.9, 1.95, 1.0)]), -1.0, 0.0)
    assert np.linalg.norm(baseline.act({agent: taken})[agent]) < 0.2
    assert baseline.holding(agent) is False  # nothing free to leave for


def test_a_holding_robot_chooses_anew_only_when_what_it_sees_changes(context):
    baseline = make_scripted(context)
    agent = context.agents[0]
    alone = _obs(context, landmarks=[(0.1, 0.0, 0.0), (3.0, 2.0, 0.0)])
    baseline.act({agent: alone})
    assert baseline.holding(agent) and baseline.holding_anew(agent), "it has just come to hold"
    baseline.act({agent: alone})
    assert baseline.holding(agent) and not baseline.holding_anew(agent), "nothing changed"
    baseline.act({agent: _with_neighbour(context, alone.copy(), -1.0, 0.0)})
    assert baseline.holding_anew(agent), "a neighbour came into view"
    another = _with_neighbour(context, _obs(context, landmarks=[(0.1, 0.0, 0.0), (-2.0, 3.0, 0.0)]), -1.0, 0.0)
    baseline.act({agent: another})
    assert baseline.holding_anew(agent), "the free landmark it could leave for is another one"
    baseline.act({agent: _obs(context, landmarks=[(0.1, 0.0, 0.0), (-2.0, 3.0, 1.0)])})
    assert not baseline.holding(agent) and not baseline.holding_anew(agent), "nothing free: no choice"


def test_hand_off_is_ignored_for_a_robot_not_holding(context):
    baseline = make_scripted(context)
    agent = context.agents[0]
    on_the_way = _obs(context, landmarks=[(2.0, 0.0, 0.0), (0.0, 3.0, 0.0)])
    toward = baseline.act({agent: on_the_way})[agent]
    assert not baseline.holding(agent)
    baseline.hand_off(agent)
    assert np.allclose(baseline.act({agent: on_the_way})[agent], toward)


def test_hand_off_steering_learns_only_where_robots_hold_and_serves_from_its_checkpoint(tmp_path, context):
    masks = {}
    for on in ("holding", "holding_changes"):
        config = TrainConfig(steer_search=True, steer_on=on, num_worlds=8, rollout_steps=300, update_epochs=1)
        collector = Collector(load_world("coverage"), 8, seed=0, steering={"on": on})
        model = make_model(collector.env, config)
        assert model.actor[-1].out_features == 2 and model.actor[-1].bias[0] == KEEP_LOGITS[on]
        masks[on] = collector.collect(model, 300, RunningNorm(1, clip=1e6), config).policy_mask.float().mean().item()
    assert 0.0 < masks["holding"] < 0.5, "some robots hold a landmark with another free in view, for part of the time"
    assert 0.0 < masks["holding_changes"] < masks["holding"] / 5, "moments of change are a small part of holding"
    explorer = make_model(collector.env, dataclasses.replace(config, steer_keep_logit=1.5))
    assert explorer.actor[-1].bias[0] == 1.5, "steer_keep_logit overrides the start"
    small = TrainConfig(
        steer_search=True, steer_on="holding", total_agent_steps=6 * 16 * 64, num_worlds=16, rollout_steps=64
    )
    result = train("coverage", small, out=tmp_path / "hand.pt", progress=False)
    assert json.loads((tmp_path / "hand.json").read_text())["steering"] == {"on": "holding"}
    policy = LearnedPolicy(context, result.checkpoint)
    assert policy.steering.on == "holding" and policy.steering.headings is None


def test_always_handing_off_changes_the_team_and_never_handing_off_is_the_baseline(context):
    def hand_off_model(logit_keep: float):
        model = make_model(_Env(context), TrainConfig(steer_search=True, steer_on="holding"))
        with torch.no_grad():
            model.actor[-1].weight.zero_()
            model.actor[-1].bias.copy_(torch.tensor([logit_keep, 0.0]))
        return LearnedPolicy.from_model(context, model, steering={"on": "holding"})

    env = MultiRobotEnv(load_world("coverage"))
    try:
        never = run_episode(env, hand_off_model(50.0), seed=1002)
        scripted = run_episode(env, make_scripted(context), seed=1002)
        always = run_episode(env, hand_off_model(-50.0), seed=1002)
    finally:
        env.close()
    assert np.array_equal(never.poses, scripted.poses)
    assert not np.allclose(always.poses, scripted.poses)
