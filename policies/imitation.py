"""Warm-starting a learned policy from the task's scripted baseline: behaviour cloning, then
DAgger (dataset aggregation, Ross et al. 2011).

Cloning: the baseline drives the vectorised worlds and every active robot's (observation,
command) pair is kept; the actor's mean is fitted to the commands (in its [-1, 1] action
space) and the observation normaliser to the observations. A clone alone drifts into
states the baseline never visited and does not know how to leave them (on navigation it
reaches the goals but brushes obstacles). DAgger fixes that: the *learner* drives, the
baseline labels every state the learner visits with what it would have done, the labels
join the data set and the actor is fitted again, round after round. The baselines are
functions of the observation alone, so any visited state can be labelled. PPO then
improves on the result: imitation gives a competent start, reinforcement learning is what
makes it better than its teacher.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policies.base import PolicyContext
from policies.models import MultiAgentActorCritic, to_unit
from policies.residual import ScriptedTeam
from policies.targets import target_controller, target_settings
from sim_bridge.batched_env import BatchedEnv
from worlds import WorldSpec

BATCH = 2048


def collect_demonstrations(
    world: WorldSpec,
    agent_steps: int,
    num_worlds: int,
    seed: int,
    learner: MultiAgentActorCritic | None = None,
    teacher: dict[str, float] | None = None,
    targets: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(observations (M, D), baseline commands (M, 2)) of the active robots; with ``targets``
    (a target controller's settings) the labels are the baseline's target choices (M,)
    instead, and the controller drives them.

    With ``learner`` the learner's deterministic actions drive and the baseline only labels
    (DAgger); without it the baseline drives (cloning). ``teacher`` changes the baseline's
    tuning (``policies.scripted.make_scripted``).
    """
    env = BatchedEnv(world, num_worlds, seed=seed + 7919)
    context = PolicyContext.from_task(env.task)
    expert = ScriptedTeam(context, env.agents, num_worlds, teacher, seed=seed)
    controller = target_controller(context, targets)
    obs = env.reset()
    xs, ys = [], []
    collected = 0
    while collected < agent_steps:
        active = env.task.active
        if controller is None:
            labels = expert.commands(obs, active)
        else:
            labels = expert.choices(obs, active, controller.config.headings)
        xs.append(obs[active])
        ys.append(labels[active])
        collected += int(active.sum())
        # the baseline drives (cloning) or the learner does (DAgger)
        if controller is None:
            commands = labels if learner is None else learner.act(torch.as_tensor(obs)).numpy()
        else:
            picks = labels if learner is None else learner.choose(torch.as_tensor(obs)).numpy()
            commands = controller.commands(obs, picks)
        step = env.step(commands)
        expert.reset(np.flatnonzero(step.world_done))
        obs = step.obs
    return np.concatenate(xs), np.concatenate(ys)


def clone_scripted_baseline(model: MultiAgentActorCritic, world: WorldSpec, config) -> float:
    """Fit the actor to the baseline's demonstrations (``bc_agent_steps``), then run
    ``dagger_rounds`` rounds of DAgger of ``dagger_agent_steps`` each; returns the final
    mean squared error (in the [-1, 1] action space) over the whole data set."""
    num_worlds = min(config.num_worlds, 32)
    teacher = config.teacher
    targets = target_settings(config)
    x, y = collect_demonstrations(
        world, config.bc_agent_steps, num_worlds, config.seed, teacher=teacher, targets=targets
    )
    model.obs_norm.update(torch.as_tensor(x))
    optimizer = torch.optim.Adam(model.actor.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(config.seed)
    loss = _fit(model, optimizer, x, y, config.bc_epochs, generator)
    for k in range(getattr(config, "dagger_rounds", 0)):
        steps = config.dagger_agent_steps or config.bc_agent_steps
        xk, yk = collect_demonstrations(
            world, steps, num_worlds, config.seed + 1 + k, learner=model, teacher=teacher, targets=targets
        )
        x, y = np.concatenate([x, xk]), np.concatenate([y, yk])
        loss = _fit(model, optimizer, x, y, config.dagger_epochs, generator)
    return loss


def _fit(model, optimizer, x: np.ndarray, y: np.ndarray, epochs: int, generator: torch.Generator) -> float:
    """Minibatch fit of the actor to the commands: regression of the mean in [-1, 1] units
    (continuous actions), or classification onto the nearest command of the grid (discrete
    actions: a classifier picks one of two ways round an obstacle where a regression would
    average them into the obstacle). Returns the final loss over the whole set."""
    x_t = torch.as_tensor(x)
    if model.choices:  # target choices: classification onto the baseline's own choice
        target = torch.as_tensor(y, dtype=torch.long)

        def loss_of(out, idx):
            return nn.functional.cross_entropy(out, target[idx])

    elif model.discrete:
        low, high = model.action_low, model.action_high  # in [-1, 1] both axes weigh alike in "nearest"
        target = torch.cdist(to_unit(torch.as_tensor(y), low, high), to_unit(model.commands, low, high)).argmin(dim=1)

        def loss_of(out, idx):
            return nn.functional.cross_entropy(out, target[idx])

    else:
        target = to_unit(torch.as_tensor(y, dtype=torch.float32), model.action_low, model.action_high).clamp(-1, 1)

        def loss_of(out, idx):
            return ((out - target[idx]) ** 2).mean()

    for _ in range(epochs):
        perm = torch.randperm(len(x_t), generator=generator)
        for start in range(0, len(x_t), BATCH):
            idx = perm[start : start + BATCH]
            loss = loss_of(model.actor(model.obs_norm(x_t[idx])), idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float(loss_of(model.actor(model.obs_norm(x_t)), slice(None)))
