"""One PPO update over collected rollouts: GAE, then epochs of the clipped objective over
(step, world) samples, or over sequences of steps for an actor with memory (recurrent MAPPO).

Everything in an update is computed with the input statistics the actor acted with while
collecting (the model's ``obs_norm``/``state_norm``), so the importance ratio is exactly 1
before the first gradient step and GAE and the value loss see the critic's values in one
normalisation; the statistics learn from the rollout only after the update (as SB3's
``VecNormalize`` stores observations normalised with the statistics of the moment).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policies.collector import Rollout, denormalise
from policies.models import MultiAgentActorCritic, RunningNorm
from policies.train_config import TrainConfig


def ppo_update(
    model: MultiAgentActorCritic,
    optimizer: torch.optim.Optimizer,
    rollouts: list[Rollout],
    value_norm: RunningNorm,
    config: TrainConfig,
    train_actor: bool = True,
) -> dict[str, float]:
    """GAE over the rollouts, clipped-objective epochs over their samples, then the model's
    input statistics learn from them. Returns the mean losses, entropy, approximate KL and
    the fraction of samples whose ratio was clipped."""
    obs = torch.cat([r.obs for r in rollouts], dim=1)
    act = torch.cat([r.act for r in rollouts], dim=1)
    logp = torch.cat([r.logp for r in rollouts], dim=1)
    rew = torch.cat([r.rew for r in rollouts], dim=1)
    done = torch.cat([r.done for r in rollouts], dim=1)
    val = torch.cat([r.val for r in rollouts], dim=1)
    mask = torch.cat([r.mask for r in rollouts], dim=1)
    policy_mask = torch.cat([r.mask if r.policy_mask is None else r.policy_mask for r in rollouts], dim=1)
    next_obs = torch.cat([r.next_obs for r in rollouts], dim=0)
    state = next_state = None
    if model.state_dim:
        state = torch.cat([r.state for r in rollouts], dim=1)
        next_state = torch.cat([r.next_state for r in rollouts], dim=0)
    T, B = rew.shape[:2]
    with torch.no_grad():
        # The critic's value of the last observations under the statistics it acted with, the
        # same normalisation as the values it gave while acting (``val``).
        next_value = denormalise(model.get_value(next_obs, next_state), value_norm, config)
        values = denormalise(val, value_norm, config)
        adv = gae(rew, done, values, next_value, config.gamma, config.gae_lambda)
        returns = adv + values
        if config.value_norm:
            value_norm.update(returns[mask.bool()].reshape(-1, 1))
            target = (returns - value_norm.mean) / torch.sqrt(value_norm.var + 1e-8)
        else:
            target = returns

    # Samples are sequences of L steps of one world (L = 1 for a memoryless actor): an actor
    # with memory replays each sequence from the memory it had at the sequence's start.
    L = config.memory_chunk if model.memory_size else 1
    seqs = (T // L) * B
    b_obs, b_act, b_logp, b_adv, b_target, b_mask, b_pmask, b_done = (
        as_sequences(x, L) for x in (obs, act, logp, adv, target, mask, policy_mask, done)
    )
    b_state = None if state is None else as_sequences(state, L)
    b_memory = None
    if model.memory_size:  # (seqs, N, H): the memory at each sequence's start
        b_memory = as_sequences(torch.cat([r.memory for r in rollouts], dim=1), L)[0]
    active = b_adv[b_pmask.bool()] if b_pmask.any() else b_adv[b_mask.bool()]
    # A sparse choice (steering at moments) can count once in a whole rollout: no spread to scale by.
    spread = active.std() if active.numel() > 1 else torch.tensor(1.0)
    b_adv = (b_adv - active.mean()) / (spread + 1e-8)
    mb = max(1, seqs // config.minibatches)
    stats = []
    for _ in range(config.update_epochs):
        perm = torch.randperm(seqs)
        for start in range(0, seqs, mb):
            idx = perm[start : start + mb]
            m, pm = b_mask[:, idx], b_pmask[:, idx]
            denom, pdenom = m.sum().clamp(min=1.0), pm.sum().clamp(min=1.0)
            memory = None
            if b_memory is not None:
                memory = unroll_memory(model, b_obs[:, idx], b_memory[idx], b_done[:, idx])
            _, new_logp, entropy, new_value = model.get_action_and_value(
                b_obs[:, idx], b_act[:, idx], None if b_state is None else b_state[:, idx], memory
            )
            ratio = (new_logp - b_logp[:, idx]).exp()
            a = b_adv[:, idx]
            pg = torch.max(-a * ratio, -a * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef))
            pg_loss = (pg * pm).sum() / pdenom
            v_loss = 0.5 * (((new_value - b_target[:, idx]) ** 2) * m).sum() / denom
            ent = (entropy * pm).sum() / pdenom
            loss = config.vf_coef * v_loss
            if train_actor:
                loss = loss + pg_loss - config.ent_coef * ent
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                approx_kl = (((ratio - 1) - (new_logp - b_logp[:, idx])) * pm).sum() / pdenom
                clipped = (((ratio - 1.0).abs() > config.clip_coef).float() * pm).sum() / pdenom
            stats.append((pg_loss.item(), v_loss.item(), ent.item(), approx_kl.item(), clipped.item()))
    # Only now do the input statistics learn from this rollout: the next one is collected with them.
    with torch.no_grad():
        model.obs_norm.update(obs[mask.bool()])
        if state is not None:
            model.state_norm.update(state)
    s = np.mean(stats, axis=0)
    keys = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    return {key: float(v) for key, v in zip(keys, s, strict=True)}


def gae(
    rewards: torch.Tensor, done: torch.Tensor, values: torch.Tensor, next_value: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Generalised advantage estimates (T, B, N) from rewards, episode ends (1 where an
    episode ended on the step), the values of the steps' observations and of the observation
    after the last step (B, N), all on the return scale."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        after = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        nonterminal = 1.0 - done[t]
        delta = rewards[t] + gamma * after * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv


def as_sequences(x: torch.Tensor, length: int) -> torch.Tensor:
    """(T, B, ...) → (length, T / length · B, ...): the rollout cut into sequences of ``length``
    steps of one world each (sequence c · B + b is world b's steps c · length ...)."""
    T, B = x.shape[:2]
    return x.reshape(T // length, length, B, *x.shape[2:]).transpose(0, 1).reshape(length, -1, *x.shape[2:])


def unroll_memory(
    model: MultiAgentActorCritic, obs: torch.Tensor, start: torch.Tensor, done: torch.Tensor
) -> torch.Tensor:
    """Replay an actor's memory over sequences: observations (L, S, N, D), the memory before
    each sequence's first step (S, N, H) and where episodes ended (L, S, N; a robot done at
    step l starts step l + 1 afresh, as in ``Collector.collect``) → memory after each step
    (L, S, N, H)."""
    memory, out = start, []
    for step in range(obs.shape[0]):
        if step:
            memory = memory * (1.0 - done[step - 1]).unsqueeze(-1)
        memory = model.remember(obs[step], memory)
        out.append(memory)
    return torch.stack(out)
