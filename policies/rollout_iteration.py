"""Rollout policy iteration: a steering choice learned from counterfactual rollouts.

PPO does not learn coverage's hand-off choice (README, Learning): the choice is rare (about
1.6 moments per robot and episode), its consequence is the episode's success up to 30 s
later, and in a return that noisy PPO cannot tell a good hand-off from a bad one. The
kinematic engine is deterministic, so what a choice is worth can be measured instead of
estimated. At each moment a robot's choice counts (``policies.steering``), the world and
the policy are copied; the copy takes each other choice; every branch plays on to the
episode's end under the same policy; the outcomes' differences are the choices' exact
advantages under that policy (the "vine" of TRPO, Schulman et al. 2015, with common random
numbers to the end). The actor is then fitted to make, at each moment, the choice with the
best outcome, weighted by how much it gains over the worst (cost-sensitive classification:
classification-based policy iteration, Lagoudakis & Parr 2003); where the choices tie it is
taught to keep what the baseline does. An iteration plays the next episodes with the fitted
actor, so its choices are judged by what follows under it.

By the policy improvement theorem, choosing per moment what beats the current policy does
at least as well as it wherever the fitted actor generalises; held-out seeds measure that
(``sern eval``, ``benchmarks/learned_vs_scripted.py``).

    sern train coverage --algo rollouts --set steer_on=holding_changes --set episodes=1200

The actor is the steering actor of a MAPPO run (``make_model``) and the checkpoint is
served the same way (sidecar ``steering``); it acts by its most likely choice.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies import checkpoint
from policies.base import PolicyContext
from policies.models import MultiAgentActorCritic
from policies.residual import BASE_CHANNELS, residual_input
from policies.scripted import make_scripted
from policies.steering import HAND_OFF_ON, KEEP_LOGITS, STEER_ON, Steering, check_steerable, num_choices
from sim_bridge.batched_env import BatchedEnv
from sim_bridge.env import MultiRobotEnv
from worlds import WorldSpec, load_world, make_task

SEED_BASE = 100_000
"""Training episodes use seeds from here up (``seed`` × 10⁷ + ``SEED_BASE`` + iteration ×
``episodes`` + i): clear of the seeds evaluations and benchmarks use (0..9999)."""


@dataclass
class RolloutIterationConfig:
    """Settings of a rollout policy iteration run."""

    steer_on: str = "holding_changes"
    """Which choice is learned (``policies.steering.STEER_ON``)."""
    headings: int = 8
    """Search headings, when the choice is one (``steer_on`` search or turns)."""
    iterations: int = 1
    """Rounds of playing episodes with the current actor and fitting it to their outcomes;
    one more round only plays, to measure the last fit. Of the start and the fits, the actor
    that played best (on its round's own training seeds) is kept."""
    episodes: int = 1200
    """Episodes per iteration (each with one branch per other choice at every moment)."""
    outcome: str = "success_rate"
    """The episode metric a choice is judged by (larger is better)."""
    tie_weight: float = 0.2
    """Weight of a moment where no choice changes the outcome (taught: keep)."""
    hidden: int = 64
    epochs: int = 400
    """Full-batch passes of the fit per iteration."""
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 2
    """Processes playing episodes (0: in this one)."""
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.steer_on not in STEER_ON:
            raise ValueError(f"steer_on must be one of {', '.join(STEER_ON)}, got {self.steer_on!r}")
        for name in ("iterations", "episodes", "hidden", "epochs", "headings"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")
        if not (self.tie_weight >= 0 and math.isfinite(self.tie_weight)):
            raise ValueError(f"tie_weight must be a finite number ≥ 0, got {self.tie_weight}")

    def steering(self) -> dict:
        """The sidecar's ``steering`` entry."""
        if self.steer_on in HAND_OFF_ON:
            return {"on": self.steer_on}
        return {"headings": self.headings, "on": self.steer_on}


@dataclass
class Moments:
    """Every moment a choice counted in some episodes, and what each choice led to."""

    inputs: np.ndarray  # (M, D) the actor's input (observation + baseline command)
    taken: np.ndarray  # (M,) the choice the policy made
    outcomes: np.ndarray  # (M, C) the episode's outcome after each choice
    episode_outcomes: np.ndarray  # (E,) outcome of each episode as played

    @classmethod
    def join(cls, parts: list[Moments], input_size: int, choices: int) -> Moments:
        return cls(
            np.concatenate([p.inputs for p in parts]) if parts else np.zeros((0, input_size), np.float32),
            np.concatenate([p.taken for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.outcomes for p in parts]) if parts else np.zeros((0, choices)),
            np.concatenate([p.episode_outcomes for p in parts]) if parts else np.zeros(0),
        )

    def targets(self, tie_weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Per moment the choice to teach (the best; keep, 0, where it is among the best) and
        its weight (best minus worst outcome; ``tie_weight`` where all tie)."""
        best = self.outcomes.max(axis=1, keepdims=True)
        is_best = np.isclose(self.outcomes, best)
        target = np.where(is_best[:, 0], 0, is_best.argmax(axis=1))
        gain = (best[:, 0] - self.outcomes.min(axis=1)).astype(np.float32)
        return target, np.where(gain > 1e-9, gain, tie_weight).astype(np.float32)


class SteeredEpisode:
    """One episode of the baseline steered by an actor's most likely choices, as
    ``LearnedPolicy`` (mode) plays it, that can be copied at any step to play another choice."""

    def __init__(self, env: MultiRobotEnv, model: MultiAgentActorCritic, steering: Steering, seed: int):
        self.env, self.model, self.steering = env, model, steering
        self.base = make_scripted(PolicyContext.from_task(env.task))
        check_steerable(self.base)
        self.obs, _ = env.reset(seed=seed)
        self.base.reset(seed)

    def decide(self) -> tuple[list[str], dict, np.ndarray, np.ndarray, np.ndarray]:
        """The baseline's commands and the actor's choices for this step, not yet applied:
        (agents, commands, actor inputs (n, D), choices (n,), where they count (n,))."""
        agents = list(self.obs)
        commands = self.base.act(self.obs)
        counts = self.steering.choosing(self.base, agents)
        if not counts.any():  # the actor's choices would change nothing: skip it
            return agents, commands, np.zeros((len(agents), 0), np.float32), np.zeros(len(agents), np.int64), counts
        obs = torch.as_tensor(np.stack([np.asarray(self.obs[a], dtype=np.float32) for a in agents]))
        base = torch.as_tensor(np.stack([commands[a] for a in agents]), dtype=torch.float32)
        inputs = residual_input(obs, base, self.model.action_low, self.model.action_high)
        choices = self.model.choose(inputs, deterministic=True).numpy()
        return agents, commands, inputs.numpy(), choices, counts

    def apply(self, agents: list[str], commands: dict, choices: np.ndarray) -> None:
        """Steer the baseline by ``choices`` and step the world."""
        self.steering.steer(self.base, agents, choices.tolist())
        self.obs, *_ = self.env.step(commands)

    def branch(self) -> SteeredEpisode:
        """A copy that plays on independently (the actor is shared, not copied)."""
        return copy.deepcopy(self, memo={id(self.model): self.model})

    def finish(self, outcome: str) -> float:
        """Play to the end with the actor's choices; the episode's ``outcome`` metric."""
        while self.env.agents:
            agents, commands, _, choices, _ = self.decide()
            self.apply(agents, commands, choices)
        return episode_outcome(self.env, outcome)


def episode_outcome(env: MultiRobotEnv, outcome: str) -> float:
    """The ended episode's ``outcome`` metric (None, e.g. a time never reached: 0); ValueError
    naming the metrics there are when the task has no such metric."""
    metrics = env.episode_metrics()
    value = metrics.get(outcome)
    if outcome not in metrics or isinstance(value, (list, dict, str)):
        numbers = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
        raise ValueError(
            f"outcome {outcome!r} is not a {env.task.name} episode metric; choose from {', '.join(numbers)}"
        )
    return float(value or 0.0)


def check_outcome(world: WorldSpec, outcome: str) -> None:
    """ValueError naming the task's metrics unless ``outcome`` is one of its episode metrics."""
    env = MultiRobotEnv(world)
    try:
        env.reset(seed=0)
        episode_outcome(env, outcome)
    finally:
        env.close()


def play_with_branches(
    world: WorldSpec, model: MultiAgentActorCritic, config: RolloutIterationConfig, seeds: list[int], branch=True
) -> Moments:
    """Play one episode per seed; at every moment a choice counts, branch on each other
    choice and play every branch to the end (``branch`` False: only play, and record
    nothing but the episodes' outcomes)."""
    env = MultiRobotEnv(world)
    steering = Steering.from_entry(config.steering())
    n_choices = model.choices
    parts = []
    try:
        for seed in seeds:
            episode = SteeredEpisode(env, model, steering, seed)
            inputs, taken, branches = [], [], []
            while env.agents:
                agents, commands, step_inputs, choices, counts = episode.decide()
                for i in np.flatnonzero(counts) if branch else ():
                    outcomes = np.full(n_choices, np.nan)
                    for other in range(n_choices):
                        if other == choices[i]:
                            continue
                        fork = episode.branch()  # its own world and baseline, at this step
                        changed = choices.copy()
                        changed[i] = other
                        fork.apply(agents, commands, changed)
                        outcomes[other] = fork.finish(config.outcome)
                    inputs.append(step_inputs[i])
                    taken.append(int(choices[i]))
                    branches.append(outcomes)
                episode.apply(agents, commands, choices)
            played = episode_outcome(env, config.outcome)
            outcomes = np.array(branches).reshape(-1, n_choices)
            outcomes[np.arange(len(taken)), taken] = played  # the choice made: the episode as played
            parts.append(
                Moments(
                    np.array(inputs, np.float32).reshape(len(taken), model.obs_dim),
                    np.array(taken, np.int64),
                    outcomes,
                    np.array([played]),
                )
            )
    finally:
        env.close()
    return Moments.join(parts, model.obs_dim, n_choices)


def _play_chunk(args) -> Moments:
    world, model, config, seeds, branch = args
    torch.set_num_threads(1)
    return play_with_branches(world, model, config, seeds, branch)


def collect(
    world: WorldSpec, model: MultiAgentActorCritic, config: RolloutIterationConfig, seeds: list[int], branch=True
) -> Moments:
    """``play_with_branches`` over ``config.workers`` processes (in this one when 0)."""
    if config.workers == 0 or len(seeds) < 2:
        return play_with_branches(world, model, config, seeds, branch)
    chunks = [seeds[i :: config.workers] for i in range(config.workers)]
    chunks = [c for c in chunks if c]
    with multiprocessing.get_context("spawn").Pool(len(chunks)) as pool:
        parts = pool.map(_play_chunk, [(world, model, config, c, branch) for c in chunks])
    return Moments.join(parts, model.obs_dim, model.choices)


def fit(model: MultiAgentActorCritic, moments: Moments, config: RolloutIterationConfig) -> dict[str, float]:
    """Fit the actor to choose each moment's best choice (``Moments.targets``); returns the
    weighted loss, the fraction of weight it chooses right and how often it leaves keep."""
    if not len(moments.taken):
        return {"fit_loss": float("nan"), "fit_agreement": float("nan"), "fit_changes": 0.0}
    inputs = torch.as_tensor(moments.inputs)
    target, weight = (torch.as_tensor(a) for a in moments.targets(config.tie_weight))
    model.obs_norm.update(inputs)
    norm = model.obs_norm(inputs)
    optimizer = torch.optim.Adam(model.actor.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    for _ in range(config.epochs):
        loss = (torch.nn.functional.cross_entropy(model.actor(norm), target, reduction="none") * weight).sum()
        loss = loss / weight.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        chosen = model.actor(norm).argmax(-1)
    right = float(weight[chosen == target].sum() / weight.sum())
    return {
        "fit_loss": float(loss.detach()),
        "fit_agreement": right,
        "fit_changes": float((chosen != 0).float().mean()),
    }


def make_model(world: WorldSpec, config: RolloutIterationConfig) -> MultiAgentActorCritic:
    """The steering actor, starting by keeping what the baseline does (``KEEP_LOGITS``)."""
    env = BatchedEnv(world, 1)
    model = MultiAgentActorCritic(
        env.obs_dim + BASE_CHANNELS,
        env.num_agents,
        env.action_low[0],
        env.action_high[0],
        hidden=config.hidden,
        choices=num_choices(config.steering()),
    )
    with torch.no_grad():
        model.actor[-1].bias[0] = KEEP_LOGITS[config.steer_on]
    return model


@dataclass
class RolloutIterationResult:
    checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    model: MultiAgentActorCritic | None = None
    seconds: float = 0.0
    chosen_fit: int = 0
    """Which fit the returned actor is (0: none played better than the start)."""


def train(
    world: WorldSpec | str,
    config: RolloutIterationConfig,
    out: Path | None = None,
    command: str = "",
    log=print,
) -> RolloutIterationResult:
    """Run ``config.iterations`` rounds of play-with-branches and fit, and a round that only
    plays; keep the actor that played best; write ``out`` (+ sidecar)."""
    world = world if isinstance(world, WorldSpec) else load_world(world)
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    model = make_model(world, config)
    check_steerable(make_scripted(PolicyContext.from_task(make_task(world))))
    check_outcome(world, config.outcome)
    started = time.monotonic()
    result = RolloutIterationResult(None)
    best: tuple[float, int, dict] | None = None  # (outcome as played, iteration fitted, actor)
    for it in range(config.iterations + 1):
        first = config.seed * 10_000_000 + SEED_BASE + it * config.episodes
        seeds = list(range(first, first + config.episodes))
        last = it == config.iterations  # only play: how the last fit does
        moments = collect(world, model, config, seeds, branch=not last)
        played = float(moments.episode_outcomes.mean())
        if best is None or played > best[0]:  # the actor fitted so far that played best
            best = (played, it, copy.deepcopy(model.state_dict()))
        row: dict[str, float] = {"iteration": it + 1, "episodes": config.episodes, config.outcome: played}
        if not last:
            target, weight = moments.targets(config.tie_weight)
            row["moments"] = len(target)
            row["moments_better_changed"] = int(((target != 0) & (weight > config.tie_weight)).sum())
            row["moments_better_kept"] = int(((target == 0) & (weight > config.tie_weight)).sum())
            row.update(fit(model, moments, config))
        row["seconds"] = time.monotonic() - started
        result.history.append(row)
        what = "the start (the baseline)" if it == 0 else f"the actor of fit {it}"
        log(
            f"round {it + 1}/{config.iterations + 1}: {what} played {config.outcome} {played:.3f}"
            + (
                ""
                if last
                else f"; {row['moments']} moments ({row['moments_better_changed']} better changed, "
                f"{row['moments_better_kept']} better kept), fit agreement {row['fit_agreement']:.3f}"
            )
            + f", {row['seconds']:.0f} s"
        )
    model.load_state_dict(best[2])
    result.chosen_fit = best[1]
    log(
        f"keeping the actor of fit {best[1]} ({config.outcome} {best[0]:.3f} as played)"
        if best[1]
        else f"no fit played better than the start ({best[0]:.3f}): keeping the start"
    )
    result.seconds = time.monotonic() - started
    result.model = model
    if out is not None:
        result.checkpoint = save(out, model, world, config, result.history, command, best[1])
    return result


def save(
    out: Path,
    model: MultiAgentActorCritic,
    world: WorldSpec,
    config: RolloutIterationConfig,
    history,
    command: str,
    chosen_fit: int,
) -> Path:
    """Checkpoint + sidecar, served like a MAPPO steering checkpoint."""
    info: dict[str, Any] = {
        **checkpoint.world_entries(world, BatchedEnv(world, 1), "steering"),
        "act": "mode",
        "steering": config.steering(),
        "train_config": {"algo": "rollouts", **asdict(config)},
        "train_command": command,
        "train_metrics": {"chosen_fit": chosen_fit, **(history[chosen_fit] if history else {})},
        "train_history": history,
    }
    return checkpoint.save(out, model, info)
