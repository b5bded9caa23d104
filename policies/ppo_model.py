"""The actor-critic a training configuration describes (sizes from the env, the action space
from the configuration, and where the untrained actor starts)."""

from __future__ import annotations

import torch

from policies.base import PolicyContext
from policies.models import MultiAgentActorCritic
from policies.residual import BASE_CHANNELS
from policies.steering import KEEP_LOGITS, num_choices, steering_settings
from policies.targets import BASELINE_LOGIT, target_controller, target_settings
from policies.train_config import TrainConfig
from sim_bridge.batched_env import BatchedEnv


def make_model(env: BatchedEnv, config: TrainConfig) -> MultiAgentActorCritic:
    """The untrained actor-critic of a run of ``config`` on ``env``'s task: input sizes (with the
    baseline's command for residual and steering actors, and the task's critic state when
    asked), commands, a command grid or choices, its initial exploration noise, and for
    target-choice and steering actors a start that follows the baseline."""
    model = MultiAgentActorCritic(
        env.obs_dim + (BASE_CHANNELS if config.residual or config.steer_search else 0),
        env.num_agents,
        env.action_low[0],
        env.action_high[0],
        hidden=config.hidden,
        centralised=config.algo == "mappo",
        discrete_per_axis=config.discrete_per_axis,
        choices=_num_choices(env, config),
        state_dim=_state_dim(env, config),
        memory=config.memory,
    )
    if not model.discrete:
        with torch.no_grad():
            model.log_std.fill_(config.init_log_std)
    if config.targets and config.residual:  # start by following the baseline
        with torch.no_grad():
            model.actor[-1].bias[-1] = BASELINE_LOGIT
    if config.steer_search:  # start by keeping the baseline's search headings
        with torch.no_grad():
            keep = config.steer_keep_logit
            model.actor[-1].bias[0] = KEEP_LOGITS[config.steer_on] if keep is None else keep
    return model


def _state_dim(env: BatchedEnv, config: TrainConfig) -> int:
    if not config.critic_state:
        return 0
    size = env.task.critic_state_size
    if not size:
        raise ValueError(f"critic_state: the {env.task.name} task has no critic state (Task.critic_state)")
    return size


def _num_choices(env: BatchedEnv, config: TrainConfig) -> int:
    if config.steer_search:
        return num_choices(steering_settings(config))
    controller = target_controller(PolicyContext.from_task(env.task), target_settings(config))
    return 0 if controller is None else controller.num_choices
