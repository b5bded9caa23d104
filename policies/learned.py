"""A trained checkpoint behind the ``Policy`` interface (simulation and the ROS node)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from policies import checkpoint
from policies.base import FunctionPolicy, Policy, PolicyContext
from policies.residual import residual_command, residual_input
from policies.scripted import make_scripted
from policies.steering import Steering, check_steerable
from policies.targets import target_controller

ACT_MODES = ("mode", "sample")


class LearnedPolicy(FunctionPolicy):
    """Commands from a MAPPO/IPPO checkpoint's actor: its most likely action (``act="mode"``)
    or an action drawn from it (``act="sample"``, the policy as PPO trained it), from a
    generator seeded at every ``reset(seed)``, so an episode replays exactly. Without
    ``act`` the checkpoint's sidecar decides (its ``act``; ``mode`` if it has none). An actor
    with memory keeps one per robot, forgotten at ``reset``."""

    name = "learned"

    def __init__(self, context: PolicyContext, path: str | Path, act: str | None = None):
        super().__init__(context, f"learned:{Path(path).stem}", self._model_commands)
        self.model, self.meta = checkpoint.load(path)
        self.path = Path(path)
        act = act or self.meta.get("act", "mode")
        if act not in ACT_MODES:
            raise checkpoint.CheckpointError(f"{path}: act must be one of {', '.join(ACT_MODES)}, got {act!r}")
        self.act_mode = act
        self.deterministic = act == "mode"
        self._generator = torch.Generator().manual_seed(0)
        self._memory: dict[str, torch.Tensor] = {}
        task = self.meta.get("task")
        if task != context.task_name:
            raise checkpoint.CheckpointError(
                f"{path}: trained for task {task!r}, this world's task is {context.task_name!r}"
            )
        self.base = _baseline(context, self.meta.get("residual"), self.meta.get("steering"))
        self.controller = target_controller(context, self.meta.get("targets"))
        try:
            self.steering = Steering.from_entry(self.meta.get("steering"))
        except ValueError as err:
            raise checkpoint.CheckpointError(f"{path}: {err}") from None
        size = self.meta.get("observation", {}).get("size")
        if size != context.observation_size:
            raise checkpoint.CheckpointError(
                f"{path}: expects observations of size {size}, this world gives {context.observation_size} "
                f"(it was trained on {self.meta.get('world_file', '?')}: different lidar beams, neighbours "
                "or messages? --world-set changes the world for one command)"
            )

    @classmethod
    def from_model(
        cls,
        context: PolicyContext,
        model,
        deterministic: bool = True,
        residual: dict | None = None,
        targets: dict | None = None,
        steering: dict | None = None,
    ) -> LearnedPolicy:
        """Serve a model still in memory (during or right after training), no checkpoint file
        (``residual``: the baseline tuning it corrects, as in a sidecar's ``residual``;
        ``targets``: its target controller's settings, as in a sidecar's ``targets``;
        ``steering``: the baseline it steers, as in a sidecar's ``steering``)."""
        policy = cls.__new__(cls)
        FunctionPolicy.__init__(policy, context, "learned:in-memory", policy._model_commands)
        policy.model, policy.meta, policy.path = model, {}, None
        policy.base = _baseline(context, residual, steering)
        policy.controller = target_controller(context, targets)
        policy.steering = Steering.from_entry(steering)
        policy.deterministic = deterministic
        policy.act_mode = "mode" if deterministic else "sample"
        policy._generator = torch.Generator().manual_seed(0)
        policy._memory = {}
        return policy

    def reset(self, seed: int | None = None) -> None:
        self._generator.manual_seed(0 if seed is None else int(seed))
        if self.base is not None:
            self.base.reset(seed)
        self._memory = {}

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not observations:
            return {}
        agents = list(observations)
        stacked = np.stack([np.asarray(observations[a], dtype=np.float32) for a in agents])
        if self.base is None:
            commands = self._model_commands(stacked, agents)
            return {a: np.asarray(commands[i], dtype=np.float32) for i, a in enumerate(agents)}
        base = self.base.act(observations)  # a residual policy corrects the baseline's commands
        if self.steering is not None and self._nothing_to_steer(agents):
            return base
        obs = torch.as_tensor(stacked)
        base_commands = torch.as_tensor(np.stack([base[a] for a in agents]), dtype=torch.float32)
        low, high = self.model.action_low, self.model.action_high
        model_input = residual_input(obs, base_commands, low, high)
        memory = self._remember(agents, model_input)
        if self.steering is not None:  # the baseline drives; the choice is where it searches next
            choices = self._choose(model_input, memory)
            self.steering.steer(self.base, agents, choices.tolist())
            return base
        if self.controller is not None:  # target choices, one of which is the baseline's command
            choices = self._choose(model_input, memory)
            commands = self.controller.commands(obs.numpy(), choices.numpy(), base_commands.numpy())
            return {a: commands[i] for i, a in enumerate(agents)}
        correction = self.model.act(
            model_input, deterministic=self.deterministic, generator=self._generator, memory=memory
        )
        commands = residual_command(base_commands, correction, low, high).numpy()
        return {a: commands[i] for i, a in enumerate(agents)}

    def _nothing_to_steer(self, agents: list[str]) -> bool:
        """No robot's choice counts now and running the actor would change nothing: it is
        memoryless (no memory to update) and picks its most likely choice (no draw to take
        from the generator). Choices are rare (coverage: about 1.6 per robot and episode), so
        this skips the actor on almost every step and plays exactly as running it would."""
        return self.deterministic and not self.model.memory_size and not self.steering.choosing(self.base, agents).any()

    def _model_commands(self, observations: np.ndarray, agents: list[str] | None = None) -> np.ndarray:
        """Stacked observations (n, D) of ``agents`` → commands (n, 2) from the actor (an actor
        with memory needs to know whose observations they are)."""
        obs = torch.as_tensor(observations, dtype=torch.float32)
        memory = self._remember(agents, obs)
        if self.controller is not None:  # a target-choice policy: the controller drives to its choices
            return self.controller.commands(observations, self._choose(obs, memory).numpy())
        return self.model.act(obs, deterministic=self.deterministic, generator=self._generator, memory=memory).numpy()

    def _choose(self, model_input: torch.Tensor, memory: torch.Tensor | None) -> torch.Tensor:
        return self.model.choose(
            model_input, deterministic=self.deterministic, generator=self._generator, memory=memory
        )

    @torch.no_grad()
    def _remember(self, agents: list[str] | None, model_input: torch.Tensor) -> torch.Tensor | None:
        """The agents' actor memory after this step's input, kept for their next step (None:
        the actor has no memory)."""
        if not self.model.memory_size:
            return None
        if agents is None:
            raise ValueError("an actor with memory keeps one per robot: call act() with the robots' names")
        fresh = self.model.initial_memory()
        before = torch.stack([self._memory.get(a, fresh) for a in agents])
        after = self.model.remember(model_input, before)
        self._memory.update(zip(agents, after, strict=True))
        return after


def _baseline(context: PolicyContext, residual: dict | None, steering_entry: dict | None = None) -> Policy | None:
    """The scripted baseline a residual checkpoint corrects or a steering one steers (None:
    neither)."""
    if residual is None and steering_entry is None:
        return None
    base = make_scripted(context, (residual or {}).get("tuning"))
    if steering_entry is not None:
        try:
            check_steerable(base)
        except ValueError as err:
            raise checkpoint.CheckpointError(str(err)) from None
    return base
