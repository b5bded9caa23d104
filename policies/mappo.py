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
from torch import nn

from policies import checkpoint
from policies.base import PolicyContext
from policies.models import MultiAgentActorCritic, RunningNorm
from policies.residual import BASE_CHANNELS, ScriptedTeam, residual_command, residual_input
from policies.steering import KEEP_LOGITS, STEER_ON, Steering, check_steerable, num_choices, steering_settings
from policies.targets import BASELINE_LOGIT, target_controller, target_settings
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
    """Worlds simulated side by side (per worker when ``workers`` > 0)."""
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
    init_log_std: float = -0.5
    """Initial exploration noise (log std in the [-1, 1] action space)."""
    bc_agent_steps: int = 0
    """Robot-steps of scripted-baseline demonstrations to clone before PPO (0: none)."""
    bc_epochs: int = 30
    dagger_rounds: int = 0
    """Rounds of DAgger after cloning: the learner drives, the baseline labels, refit."""
    dagger_agent_steps: int = 0
    """Robot-steps labelled per DAgger round (0: as many as ``bc_agent_steps``)."""
    dagger_epochs: int = 10
    """Passes over the aggregated data set after each DAgger round."""
    teacher: dict[str, float] = field(default_factory=dict)
    """Changes to the scripted baseline's tuning while it teaches (cloning and DAgger), e.g.
    ``{"safety_margin_m": 0.2}``: a teacher that keeps more clearance than the learner needs
    leaves room for the learner's imprecision. ``--set teacher.safety_margin_m=0.2``."""
    residual: bool = False
    """Learn a correction to the scripted baseline's command (tuned by ``teacher``) instead
    of the command itself (``policies.residual``): the run starts from the baseline's team.
    Pair it with a small ``init_log_std`` (the baseline plus wide noise is a weak start)."""
    targets: bool = False
    """Choose targets instead of commands (``policies.targets``): each robot's action is which
    landmark in view to drive to, or which heading to search along, and a fixed controller
    (the baseline's driving) turns it into a command. For assignment tasks (coverage). With
    ``residual`` the baseline's own command is one more choice, the one the actor starts on."""
    target_headings: int = 8
    """Search headings a target-choice (or steering) actor can pick from."""
    steer_search: bool = False
    """Run the scripted baseline and learn only where it searches (``policies.steering``):
    each searching robot's choice is to keep its search heading or take one of
    ``target_headings``. For coverage; no cloning, targets or residual with it."""
    critic_state: bool = False
    """MAPPO's critic sees the task's global state (``Task.critic_state``: where everything is,
    what is done, the time left) with the robot's own observation, instead of every robot's
    observation. Training only: the actor, and so the checkpoint's behaviour, is unchanged."""
    steer_on: str = "search"
    """When a steering choice counts: every step a robot searches (``search``), or only when
    its search direction is set anew (``turns``: a search begins, a wall turns it); or
    (``holding``) every step a robot holds its landmark and sees another free one, and the
    choice is whether to hand its own off (``policies.steering``); ``holding_changes``: that
    choice only where what the holding robot sees changes."""
    steer_keep_logit: float | None = None
    """The untrained actor's logit for keeping the baseline's choice (choice 0), the others
    starting at 0 (None: ``steering.KEEP_LOGITS`` for ``steer_on``). High starts PPO at the
    baseline; lower explores the alternatives more often at first."""
    memory: int = 0
    """Give the actor a memory: a GRU of this size that reads every observation (recurrent
    MAPPO; 0: a memoryless actor). For partially observed tasks, where what a robot saw a
    while ago matters (coverage: landmarks out of view now). Trained by backpropagation
    through ``memory_chunk`` control steps."""
    memory_chunk: int = 16
    """Length (control steps) of the sequences a memory is trained on; divides rollout_steps."""
    critic_warmup_iterations: int = 0
    """PPO iterations that train only the critic (after cloning, so the actor is kept)."""
    init_checkpoint: str = ""
    """Start from this checkpoint's weights (fine-tuning; same task and spaces), not from scratch."""
    workers: int = 0
    """Ray rollout workers (0: collect in this process)."""
    seed: int = 0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.algo not in ("mappo", "ippo"):
            raise ValueError(f"algo must be mappo or ippo, got {self.algo!r}")
        for name in ("total_agent_steps", "num_worlds", "rollout_steps", "update_epochs", "minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dagger_rounds and not self.bc_agent_steps:
            raise ValueError("dagger_rounds needs bc_agent_steps > 0 (DAgger refines a clone)")
        if self.residual and (self.bc_agent_steps or self.discrete_per_axis):
            raise ValueError(
                "residual starts from the baseline itself: it takes continuous actions and no cloning "
                "(bc_agent_steps 0, discrete_per_axis 0)"
            )
        if self.steer_search and (self.targets or self.residual or self.bc_agent_steps or self.discrete_per_axis):
            raise ValueError(
                "steer_search runs the baseline itself and learns only its search headings: no targets, "
                "residual, cloning (bc_agent_steps) or command grid (discrete_per_axis) with it"
            )
        if self.critic_state and self.algo != "mappo":
            raise ValueError("critic_state is for MAPPO's centralised critic (algo mappo)")
        if self.steer_on not in STEER_ON:
            raise ValueError(f"steer_on must be one of {', '.join(STEER_ON)}, got {self.steer_on!r}")
        if self.memory < 0:
            raise ValueError(f"memory is a GRU size (0: none), got {self.memory}")
        if self.memory and (self.memory_chunk < 1 or self.rollout_steps % self.memory_chunk):
            raise ValueError(
                f"memory_chunk ({self.memory_chunk}) must divide rollout_steps ({self.rollout_steps}): "
                "a memory is trained on whole chunks of each rollout"
            )
        if self.memory and self.bc_agent_steps:
            raise ValueError("cloning (bc_agent_steps) trains a memoryless actor: use memory 0 with it")
        if self.targets and self.discrete_per_axis:
            raise ValueError(
                "targets replaces the action space with target choices: no command grid (discrete_per_axis 0)"
            )


@dataclass
class TrainResult:
    checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    agent_steps: int = 0
    seconds: float = 0.0
    model: Any = None


@dataclass
class Rollout:
    """T control steps of B worlds × N robots, and where the worlds ended up."""

    obs: torch.Tensor  # (T, B, N, D)
    act: torch.Tensor
    logp: torch.Tensor
    rew: torch.Tensor  # truncation already bootstrapped in
    done: torch.Tensor
    val: torch.Tensor
    mask: torch.Tensor
    next_obs: torch.Tensor  # (B, N, D)
    episodes: list[dict[str, float]]
    state: torch.Tensor | None = None  # (T, B, S): the critic state, for a critic that has one
    next_state: torch.Tensor | None = None  # (B, S)
    policy_mask: torch.Tensor | None = None
    """(T, B, N) where the actor's choice counted (steering: searching robots); None: as ``mask``."""
    memory: torch.Tensor | None = None
    """(T, B, N, H) each robot's actor memory before the step's observation (zero at an
    episode's first step), for an actor with memory."""


class Collector:
    """Runs the model in a batched env and hands back rollouts (keeps the env's state).

    With ``residual`` (the baseline's tuning, ``{}`` for the default) the model corrects the
    scripted baseline's commands (``policies.residual``): its input is the observation and
    the baseline's command, and what the env gets is their sum. With ``targets`` (a sidecar's
    ``targets`` entry) the model's actions are target choices that a ``TargetController``
    turns into commands. With ``steering`` (a sidecar's ``steering`` entry) the baseline
    drives and the model's choices steer its searches (``policies.steering``). With
    ``critic_state`` the env keeps the task's critic state for a critic that reads it. For an
    actor with memory it keeps each robot's memory across rollouts, fresh at episode starts."""

    def __init__(
        self,
        world: WorldSpec,
        num_worlds: int,
        seed: int,
        residual: dict[str, float] | None = None,
        targets: dict | None = None,
        steering: dict | None = None,
        critic_state: bool = False,
    ):
        self.env = BatchedEnv(world, num_worlds, seed=seed, critic_state=critic_state)
        self.base = None
        context = PolicyContext.from_task(self.env.task)
        if residual is not None or steering is not None:
            self.base = ScriptedTeam(context, self.env.agents, num_worlds, residual, seed=seed)
        self.controller = target_controller(context, targets)
        self.steering = Steering.from_entry(steering)
        if self.steering is not None:
            check_steerable(self.base.policies[0])
        # the model's limits (robot 0's, as make_model and LearnedPolicy use), so training and serving agree
        self._low = torch.as_tensor(self.env.action_low[0], dtype=torch.float32)
        self._high = torch.as_tensor(self.env.action_high[0], dtype=torch.float32)
        self.base_command = None
        self.obs = self._model_input(self.env.reset(seed=seed), self.env.task.active)
        self.episode_return = np.zeros(num_worlds)
        self.memory: torch.Tensor | None = None  # (B, N, H) for an actor with memory

    @property
    def obs_dim(self) -> int:
        """Size of the model's input per robot."""
        return self.env.obs_dim + (BASE_CHANNELS if self.base is not None else 0)

    def _model_input(self, obs: np.ndarray, active: np.ndarray, worlds=None) -> torch.Tensor:
        """The model's input for raw observations (B, N, D); with a residual base this
        also steps the baselines of ``worlds`` (all by default) and keeps their commands."""
        raw = torch.as_tensor(obs)
        if self.base is None:
            return raw
        base = torch.as_tensor(self.base.commands(obs, active, worlds))
        if worlds is None:
            self.base_command = base
        return residual_input(raw, base, self._low, self._high)

    def _command(self, model: MultiAgentActorCritic, action: torch.Tensor) -> torch.Tensor:
        if self.steering is not None:  # the baseline drives, the choice is its next search heading
            self.base.steer(action.numpy(), self.steering)
            return self.base_command
        if self.controller is not None:
            raw = self.obs[..., : self.env.obs_dim].numpy()
            base = None if self.base_command is None else self.base_command.numpy()
            return torch.as_tensor(self.controller.commands(raw, action.numpy(), base))
        command = model.to_command(action)
        if self.base is None:
            return command
        return residual_command(self.base_command, command, self._low, self._high)

    def collect(
        self, model: MultiAgentActorCritic, steps: int, value_norm: RunningNorm, config: TrainConfig
    ) -> Rollout:
        env = self.env
        B, N, D = env.num_worlds, env.num_agents, self.obs_dim
        act_shape = () if model.discrete else (2,)
        buf = {
            "obs": torch.zeros((steps, B, N, D)),
            "act": torch.zeros((steps, B, N, *act_shape)),
            "logp": torch.zeros((steps, B, N)),
            "rew": torch.zeros((steps, B, N)),
            "done": torch.zeros((steps, B, N)),
            "val": torch.zeros((steps, B, N)),
            "mask": torch.zeros((steps, B, N)),
        }
        if self.steering is not None:
            buf["policy_mask"] = torch.zeros((steps, B, N))
        if model.memory_size:
            buf["memory"] = torch.zeros((steps, B, N, model.memory_size))
            if self.memory is None or self.memory.shape[-1] != model.memory_size:
                self.memory = model.initial_memory(B, N)
        use_state = bool(model.state_dim)
        if use_state:
            buf["state"] = torch.zeros((steps, B, model.state_dim))
        state = torch.as_tensor(env.state) if use_state else None
        episodes = []
        for t in range(steps):
            if self.steering is not None:  # the choice counts for robots searching now
                counts = self.base.choosing(self.steering) & env.task.active
                buf["policy_mask"][t] = torch.as_tensor(counts, dtype=torch.float32)
            with torch.no_grad():
                memory = None
                if model.memory_size:
                    buf["memory"][t] = self.memory
                    memory = model.remember(self.obs, self.memory)
                action, logp, _, value = model.get_action_and_value(self.obs, state=state, memory=memory)
                command = self._command(model, action)
            step = env.step(command.numpy())
            rewards = torch.as_tensor(step.rewards)
            if step.truncated.any():  # bootstrap the time limit instead of calling it an end
                final = self._model_input(step.final_obs, step.active, np.flatnonzero(step.truncated))
                with torch.no_grad():
                    final_state = torch.as_tensor(step.final_state) if use_state else None
                    v_final = denormalise(model.get_value(final, final_state), value_norm, config)
                alive = torch.as_tensor(step.active & ~step.terminated & step.truncated[:, None])
                rewards = rewards + config.gamma * v_final * alive
            buf["obs"][t], buf["act"][t], buf["logp"][t], buf["val"][t] = self.obs, action, logp, value
            buf["rew"][t] = rewards
            if use_state:
                buf["state"][t] = state
                state = torch.as_tensor(step.state)
            buf["done"][t] = torch.as_tensor(step.terminated | step.world_done[:, None], dtype=torch.float32)
            if memory is not None:  # a robot whose episode ended starts the next one afresh
                self.memory = memory * (1.0 - buf["done"][t]).unsqueeze(-1)
            buf["mask"][t] = torch.as_tensor(step.active, dtype=torch.float32)
            self.episode_return += step.rewards.sum(axis=1) / N
            for w, metrics in zip(np.flatnonzero(step.world_done), step.episodes, strict=True):
                episodes.append({"return": float(self.episode_return[w]), **_scalars(metrics)})
                self.episode_return[w] = 0.0
            if self.base is not None:
                self.base.reset(np.flatnonzero(step.world_done))
            self.obs = self._model_input(step.obs, env.task.active)
        next_state = state.clone() if use_state else None
        return Rollout(**buf, next_obs=self.obs.clone(), episodes=episodes, next_state=next_state)


def residual_tuning(config: TrainConfig) -> dict[str, float] | None:
    """The baseline's tuning for a residual run (None: not residual)."""
    return dict(config.teacher) if config.residual else None


def denormalise(v: torch.Tensor, norm: RunningNorm, config: TrainConfig) -> torch.Tensor:
    if not config.value_norm:
        return v
    return v * torch.sqrt(norm.var + 1e-8) + norm.mean


def ppo_update(
    model: MultiAgentActorCritic,
    optimizer: torch.optim.Optimizer,
    rollouts: list[Rollout],
    value_norm: RunningNorm,
    config: TrainConfig,
    train_actor: bool = True,
) -> dict[str, float]:
    """GAE over each rollout, then clipped-objective epochs over (step, world) samples."""
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
    T, B, N = rew.shape
    with torch.no_grad():
        model.obs_norm.update(obs[mask.bool()])
        if state is not None:
            model.state_norm.update(state)
        next_value = denormalise(model.get_value(next_obs, next_state), value_norm, config)
        values = denormalise(val, value_norm, config)
        adv = torch.zeros_like(rew)
        last = torch.zeros((B, N))
        for t in reversed(range(T)):
            nv = next_value if t == T - 1 else values[t + 1]
            nonterminal = 1.0 - done[t]
            delta = rew[t] + config.gamma * nv * nonterminal - values[t]
            last = delta + config.gamma * config.gae_lambda * nonterminal * last
            adv[t] = last
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
            stats.append((pg_loss.item(), v_loss.item(), ent.item(), approx_kl.item()))
    s = np.mean(stats, axis=0)
    return {"policy_loss": float(s[0]), "value_loss": float(s[1]), "entropy": float(s[2]), "approx_kl": float(s[3])}


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


def make_model(env: BatchedEnv, config: TrainConfig) -> MultiAgentActorCritic:
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
    result.agent_steps = result.history[-1]["agent_steps"] if result.history else 0
    result.seconds = time.monotonic() - started
    if out is not None and result.checkpoint is None:
        result.checkpoint = _save(
            out, model, world, config, result.history[-1] if result.history else {}, command, env_info, parent
        )
    result.model = model
    return result


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


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
