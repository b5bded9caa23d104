"""MAPPO and IPPO: multi-agent PPO with a shared-parameter actor and a centralised (MAPPO)
or per-robot (IPPO) critic, GAE, the clipped objective and value normalisation, on the
vectorised engine (``sim_bridge.batched_env``). One typed configuration, seeded; logs to
TensorBoard; a progress bar shows the live return and success.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policies import checkpoint
from policies.models import MultiAgentActorCritic, RunningNorm
from sim_bridge.batched_env import BatchedEnv
from worlds import WorldSpec, load_world


@dataclass
class TrainConfig:
    """Hyper-parameters of a MAPPO/IPPO run."""

    algo: str = "mappo"
    """mappo: the critic sees the whole team; ippo: each robot's own observation."""
    total_agent_steps: int = 2_000_000
    """Robot-steps of experience to collect (worlds × robots × control steps)."""
    num_worlds: int = 64
    """Worlds simulated side by side."""
    rollout_steps: int = 128
    """Control steps per world between updates."""
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 5
    minibatches: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 128
    """Width of the actor's and critic's two hidden layers."""
    discrete_per_axis: int = 0
    """0: continuous actions; k > 0: a k × k grid of (v, ω) commands."""
    value_norm: bool = True
    """Normalise value targets with running statistics."""
    seed: int = 0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.algo not in ("mappo", "ippo"):
            raise ValueError(f"algo must be mappo or ippo, got {self.algo!r}")
        for name in ("total_agent_steps", "num_worlds", "rollout_steps", "update_epochs", "minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class TrainResult:
    checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    agent_steps: int = 0
    seconds: float = 0.0


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
    env = BatchedEnv(world, config.num_worlds, seed=config.seed)
    B, N, D = config.num_worlds, env.num_agents, env.obs_dim
    T = config.rollout_steps
    model = MultiAgentActorCritic(
        D,
        N,
        env.action_low[0],
        env.action_high[0],
        hidden=config.hidden,
        centralised=config.algo == "mappo",
        discrete_per_axis=config.discrete_per_axis,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    value_norm = RunningNorm(1, clip=1e6)
    per_iteration = B * N * T
    iterations = max(1, math.ceil(config.total_agent_steps / per_iteration))
    writer = _writer(log_dir)
    bar = _bar(progress, iterations * per_iteration)

    obs = torch.as_tensor(env.reset(seed=config.seed))
    act_shape = () if model.discrete else (2,)
    buf_obs = torch.zeros((T, B, N, D))
    buf_act = torch.zeros((T, B, N, *act_shape))
    buf_logp = torch.zeros((T, B, N))
    buf_rew = torch.zeros((T, B, N))
    buf_done = torch.zeros((T, B, N))
    buf_val = torch.zeros((T, B, N))
    buf_mask = torch.zeros((T, B, N))
    episode_return = np.zeros(B)
    recent: deque[dict[str, float]] = deque(maxlen=200)
    result = TrainResult(None)
    started = time.monotonic()
    best_success = -1.0

    for it in range(iterations):
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = config.learning_rate * (1.0 - it / iterations)
        for t in range(T):
            with torch.no_grad():
                action, logp, _, value = model.get_action_and_value(obs)
                command = model.to_command(action)
            step = env.step(command.numpy())
            rewards = torch.as_tensor(step.rewards)
            if step.truncated.any():  # bootstrap the time limit instead of calling it an end
                with torch.no_grad():
                    v_final = _denorm(model.get_value(torch.as_tensor(step.final_obs)), value_norm, config)
                alive = torch.as_tensor(step.active & ~step.terminated & step.truncated[:, None])
                rewards = rewards + config.gamma * v_final * alive
            buf_obs[t], buf_act[t], buf_logp[t], buf_val[t] = obs, action, logp, value
            buf_rew[t] = rewards
            buf_done[t] = torch.as_tensor(step.terminated | step.world_done[:, None], dtype=torch.float32)
            buf_mask[t] = torch.as_tensor(step.active, dtype=torch.float32)
            episode_return += step.rewards.sum(axis=1) / N
            for w, metrics in zip(np.flatnonzero(step.world_done), step.episodes, strict=True):
                recent.append({"return": float(episode_return[w]), **_scalars(metrics)})
                episode_return[w] = 0.0
            obs = torch.as_tensor(step.obs)
            bar.update(B * N)
        # ---- advantages ----------------------------------------------------------------
        with torch.no_grad():
            model.obs_norm.update(buf_obs[buf_mask.bool()])
            next_value = _denorm(model.get_value(obs), value_norm, config)
            values = _denorm(buf_val, value_norm, config)
            adv = torch.zeros_like(buf_rew)
            last = torch.zeros((B, N))
            for t in reversed(range(T)):
                nv = next_value if t == T - 1 else values[t + 1]
                nonterminal = 1.0 - buf_done[t]
                delta = buf_rew[t] + config.gamma * nv * nonterminal - values[t]
                last = delta + config.gamma * config.gae_lambda * nonterminal * last
                adv[t] = last
            returns = adv + values
            mask = buf_mask
            if config.value_norm:
                value_norm.update(returns[mask.bool()].reshape(-1, 1))
            target = (returns - value_norm.mean) / torch.sqrt(value_norm.var + 1e-8) if config.value_norm else returns
        # ---- PPO update over (step, world) samples: each holds the whole team ---------------
        flat = lambda x: x.reshape(T * B, *x.shape[2:])  # noqa: E731
        b_obs, b_act, b_logp, b_adv = flat(buf_obs), flat(buf_act), flat(buf_logp), flat(adv)
        b_target, b_mask = flat(target), flat(mask)
        active_adv = b_adv[b_mask.bool()]
        b_adv = (b_adv - active_adv.mean()) / (active_adv.std() + 1e-8)
        size = T * B
        mb = max(1, size // config.minibatches)
        stats = []
        for _ in range(config.update_epochs):
            perm = torch.randperm(size)
            for start in range(0, size, mb):
                idx = perm[start : start + mb]
                m = b_mask[idx]
                denom = m.sum().clamp(min=1.0)
                _, new_logp, entropy, new_value = model.get_action_and_value(b_obs[idx], b_act[idx])
                ratio = (new_logp - b_logp[idx]).exp()
                a = b_adv[idx]
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef))
                pg_loss = (pg * m).sum() / denom
                v_loss = 0.5 * (((new_value - b_target[idx]) ** 2) * m).sum() / denom
                ent = (entropy * m).sum() / denom
                loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * ent
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    approx_kl = (((ratio - 1) - (new_logp - b_logp[idx])) * m).sum() / denom
                stats.append((pg_loss.item(), v_loss.item(), ent.item(), approx_kl.item()))
        # ---- report ----------------------------------------------------------------------
        steps_done = (it + 1) * per_iteration
        s = np.mean(stats, axis=0)
        row = {"iteration": it + 1, "agent_steps": steps_done, "seconds": time.monotonic() - started}
        row.update({"policy_loss": s[0], "value_loss": s[1], "entropy": s[2], "approx_kl": s[3]})
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
        if out is not None and row.get("success_rate", -1) >= best_success and len(recent) >= 20:
            best_success = row["success_rate"]
            result.checkpoint = _save(out, model, world, config, row, command, env)
        if seconds is not None and time.monotonic() - started >= seconds:
            break
    bar.close()
    if writer is not None:
        writer.close()
    result.agent_steps = result.history[-1]["agent_steps"] if result.history else 0
    result.seconds = time.monotonic() - started
    if out is not None and result.checkpoint is None:
        result.checkpoint = _save(out, model, world, config, result.history[-1], command, env)
    result.model = model  # type: ignore[attr-defined]
    return result


def _denorm(v: torch.Tensor, norm: RunningNorm, config: TrainConfig) -> torch.Tensor:
    if not config.value_norm:
        return v
    return v * torch.sqrt(norm.var + 1e-8) + norm.mean


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _save(out: Path, model, world: WorldSpec, config: TrainConfig, row: dict, command: str, env: BatchedEnv) -> Path:
    info = {
        "task": world.task.name,
        "world": world.name,
        "world_file": world.source,
        "agents": env.agents,
        "observation": {
            "size": env.obs_dim,
            "layout": env.task.observation_slices()
            and {name: [sl.start, sl.stop] for name, sl in env.task.observation_slices().items()},
        },
        "action": {
            "type": "discrete" if model.discrete else "continuous",
            "low": env.action_low[0].tolist(),
            "high": env.action_high[0].tolist(),
        },
        "train_config": asdict(config),
        "train_command": command,
        "train_metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
    }
    return checkpoint.save(out, model, info)


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


def history_json(result: TrainResult) -> str:
    return json.dumps(result.history)
