"""Warm-starting a learned policy from the task's scripted baseline (behaviour cloning).

The baseline drives the vectorised worlds; every active robot's (observation, command)
pair is kept; the actor's mean is fitted to the commands (in its [-1, 1] action space)
and the observation normaliser to the observations. PPO then improves on it: cloning
gives the policy a competent start, reinforcement learning is what makes it better.
"""

from __future__ import annotations

import numpy as np
import torch

from policies.base import PolicyContext
from policies.models import MultiAgentActorCritic
from policies.registry import make_policy
from sim_bridge.batched_env import BatchedEnv
from worlds import WorldSpec


def collect_demonstrations(world: WorldSpec, agent_steps: int, num_worlds: int, seed: int):
    """(observations (M, D), commands (M, 2)) from the scripted baseline."""
    env = BatchedEnv(world, num_worlds, seed=seed + 7919)
    context = PolicyContext.from_task(env.task)
    policies = [make_policy("scripted", context) for _ in range(num_worlds)]
    obs = env.reset()
    names = env.agents
    xs, ys = [], []
    collected = 0
    while collected < agent_steps:
        commands = np.zeros((num_worlds, env.num_agents, 2), dtype=np.float32)
        active = env.task.active if hasattr(env.task, "active") else np.ones(commands.shape[:2], dtype=bool)
        for b, policy in enumerate(policies):
            acts = policy.act({names[i]: obs[b, i] for i in range(env.num_agents) if active[b, i]})
            for i, name in enumerate(names):
                if name in acts:
                    commands[b, i] = acts[name]
        xs.append(obs[active])
        ys.append(commands[active])
        collected += int(active.sum())
        step = env.step(commands)
        for b in np.flatnonzero(step.world_done):
            policies[b].reset(None)
        obs = step.obs
    return np.concatenate(xs), np.concatenate(ys)


def clone_scripted_baseline(model: MultiAgentActorCritic, world: WorldSpec, config) -> float:
    """Fit the actor to the baseline's demonstrations; returns the final mean squared error."""
    x, y = collect_demonstrations(world, config.bc_agent_steps, min(config.num_worlds, 32), config.seed)
    x_t = torch.as_tensor(x)
    low, high = model.action_low, model.action_high
    target = torch.as_tensor(2.0 * (y - low.numpy()) / (high - low).numpy() - 1.0, dtype=torch.float32).clamp(-1, 1)
    model.obs_norm.update(x_t)
    optimizer = torch.optim.Adam(model.actor.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(config.seed)
    loss = torch.tensor(0.0)
    for _ in range(config.bc_epochs):
        perm = torch.randperm(len(x_t), generator=generator)
        for start in range(0, len(x_t), 2048):
            idx = perm[start : start + 2048]
            mean = model.actor(model.obs_norm(x_t[idx]))
            loss = ((mean - target[idx]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return float(loss.item())
