"""MAPPO and IPPO: multi-agent PPO with a shared-parameter actor and a centralised (MAPPO)
or per-robot (IPPO) critic, GAE, the clipped objective and value normalisation, on the
vectorised engine (``sim_bridge.batched_env``). One typed configuration, seeded; logs to
TensorBoard; a progress bar shows the live return and success.

Optionally (``bc_agent_steps``) the actor starts from the task's scripted baseline
(behaviour cloning on its demonstrations) and PPO improves it from there; (``residual``)
the actor corrects the baseline's commands (``policies.residual``); (``targets``) it chooses
targets that a fixed controller drives to (``policies.targets``); (``memory``) the actor
has a GRU memory, trained on sequences of ``memory_chunk`` steps replayed from the memory
each robot had when they began (recurrent MAPPO); and (``workers``) rollouts are collected
by Ray actors (``policies.distributed``).

This module is the training loop; the parts it runs each have their own:
``policies.train_config`` (``TrainConfig``), ``policies.ppo_model`` (the model a config
describes), ``policies.collector`` (rollouts) and ``policies.ppo_update`` (GAE and the
clipped-objective epochs).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies import checkpoint
from policies.collector import Collector, Rollout
from policies.models import MultiAgentActorCritic, RunningNorm
from policies.ppo_model import make_model
from policies.ppo_update import ppo_update
from policies.steering import steering_settings
from policies.targets import target_settings
from policies.train_config import TrainConfig, residual_tuning
from worlds import WorldSpec, load_world

__all__ = ["Collector", "Rollout", "TrainConfig", "TrainResult", "make_model", "ppo_update", "train"]


@dataclass
class TrainResult:
    checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    agent_steps: int = 0
    seconds: float = 0.0
    model: Any = None


def train(
    world: WorldSpec | str,
    config: TrainConfig,
    out: Path | None = None,
    progress: bool = True,
    log_dir: Path | None = None,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
    command: str = "",
    seconds: float | None = None,
) -> TrainResult:
    """Train on ``world``; write ``out`` (checkpoint + sidecar) if given.

    ``seconds`` caps wall-clock time (for budgeted comparisons) on top of the step count.
    """
    world = world if isinstance(world, WorldSpec) else load_world(world)
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    started = time.monotonic()
    if config.workers > 0:
        from policies.distributed import RayCollectors

        collectors = RayCollectors(world, config)
        env_info = collectors.env_info
    else:
        local = Collector(
            world,
            config.num_worlds,
            config.seed,
            residual_tuning(config),
            target_settings(config),
            steering_settings(config),
            config.critic_state,
            config.backend,
        )
        env_info = local.env
    model = make_model(env_info, config)
    parent: dict[str, Any] = {}
    if config.init_checkpoint:
        parent = _load_parent(model, config.init_checkpoint, world)
    if config.bc_agent_steps > 0:
        from policies.imitation import clone_scripted_baseline

        clone_scripted_baseline(model, world, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    value_norm = RunningNorm(1, clip=1e6)
    groups = max(config.workers, 1)
    per_iteration = groups * config.num_worlds * env_info.num_agents * config.rollout_steps
    iterations = max(1, math.ceil(config.total_agent_steps / per_iteration))
    writer = _writer(log_dir)
    bar = _bar(progress, iterations * per_iteration)
    recent: deque[dict[str, float]] = deque(maxlen=200)
    result = TrainResult(None)
    best_return = -math.inf
    fresh = 0  # episodes finished since the last actor-only warm-up iteration
    try:
        for it in range(iterations):
            frac = 1.0 - it / iterations
            if config.anneal_lr:
                optimizer.param_groups[0]["lr"] = config.learning_rate * frac
            if config.workers > 0:
                rollouts = collectors.collect(model, value_norm)
            else:
                rollouts = [local.collect(model, config.rollout_steps, value_norm, config)]
            for r in rollouts:
                recent.extend(r.episodes)
            bar.update(per_iteration)
            stats = ppo_update(
                model, optimizer, rollouts, value_norm, config, train_actor=it >= config.critic_warmup_iterations
            )
            steps_done = (it + 1) * per_iteration
            row = {"iteration": it + 1, "agent_steps": steps_done, "seconds": time.monotonic() - started, **stats}
            if recent:
                for key in recent[0]:
                    vals = [r[key] for r in recent if key in r]
                    row[key] = float(np.mean(vals))
            row["episodes"] = len(recent)
            result.history.append(row)
            if writer is not None:
                for key, value in row.items():
                    if key not in ("iteration", "agent_steps"):
                        writer.add_scalar(f"train/{key}", value, steps_done)
            bar.set_postfix_str(
                f"return {row.get('return', float('nan')):.2f}, success {row.get('success_rate', float('nan')):.0%}"
            )
            if on_iteration is not None:
                on_iteration(row)
            # Keep the best policy by mean return over the last 200 episodes once all of them
            # were played by the trained actor (not the warm-up's, whose actor is the start).
            fresh = fresh + sum(len(r.episodes) for r in rollouts) if it >= config.critic_warmup_iterations else 0
            mean_return = row.get("return", -math.inf)
            if out is not None and fresh >= recent.maxlen and mean_return >= best_return:
                best_return = mean_return
                result.checkpoint = _save(out, model, world, config, row, command, env_info, parent)
            if seconds is not None and time.monotonic() - started >= seconds:
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if config.workers > 0:
            collectors.close()
        elif hasattr(local.env, "close"):  # a Unity connection (the vectorised engine holds nothing)
            local.env.close()
    result.agent_steps = result.history[-1]["agent_steps"] if result.history else 0
    result.seconds = time.monotonic() - started
    if out is not None and result.checkpoint is None:
        result.checkpoint = _save(
            out, model, world, config, result.history[-1] if result.history else {}, command, env_info, parent
        )
    result.model = model
    return result


def _load_parent(model: MultiAgentActorCritic, path: str, world: WorldSpec) -> dict[str, Any]:
    """Copy a checkpoint's weights into ``model``; its sidecar's training history is kept."""
    parent, meta = checkpoint.load(path)
    if meta.get("task") != world.task.name:
        raise ValueError(f"init_checkpoint {path}: trained for task {meta.get('task')!r}, not {world.task.name!r}")
    if parent.spec() != model.spec():
        raise ValueError(f"init_checkpoint {path}: model {parent.spec()} does not match this run's {model.spec()}")
    model.load_state_dict(parent.state_dict())
    return {
        "checkpoint": path,
        "train_command": meta.get("train_command", ""),
        "train_config": meta.get("train_config", {}),
        "parent": meta.get("parent"),
    }


def _save(
    out: Path, model, world: WorldSpec, config: TrainConfig, row: dict, command: str, env, parent: dict | None = None
) -> Path:
    info = {
        **checkpoint.world_entries(world, env, _action_type(config, model)),
        "train_config": asdict(config),
        "train_command": command,
        "train_metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
    }
    if config.residual:
        info["residual"] = {"base": "scripted", "tuning": residual_tuning(config)}
    if config.targets:
        info["targets"] = target_settings(config)
    if config.steer_search:
        info["steering"] = steering_settings(config)
    if parent:
        info["parent"] = parent  # the run this one fine-tuned, and its own parents
    return checkpoint.save(out, model, info)


def _action_type(config: TrainConfig, model: MultiAgentActorCritic) -> str:
    if config.steer_search:
        return "steering"
    if config.targets:
        return "targets"
    return "discrete" if model.discrete else "continuous"


class _NoBar:
    def update(self, n): ...
    def set_postfix_str(self, s): ...
    def close(self): ...


def _bar(progress: bool, total: int):
    if not progress:
        return _NoBar()
    import sys

    from tqdm import tqdm

    return tqdm(total=total, unit=" robot-steps", unit_scale=True, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)


def _writer(log_dir: Path | None):
    if log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))
