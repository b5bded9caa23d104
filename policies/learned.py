"""A trained checkpoint behind the ``Policy`` interface (simulation and the ROS node)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from policies import checkpoint
from policies.base import FunctionPolicy, PolicyContext

ACT_MODES = ("mode", "sample")


class LearnedPolicy(FunctionPolicy):
    """Commands from a MAPPO/IPPO checkpoint's actor: its most likely action (``act="mode"``)
    or an action drawn from it (``act="sample"``, the policy as PPO trained it), from a
    generator seeded at every ``reset(seed)``, so an episode replays exactly. Without
    ``act`` the checkpoint's sidecar decides (its ``act``; ``mode`` if it has none)."""

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
        task = self.meta.get("task")
        if task != context.task_name:
            raise checkpoint.CheckpointError(
                f"{path}: trained for task {task!r}, this world's task is {context.task_name!r}"
            )
        size = self.meta.get("observation", {}).get("size")
        if size != context.observation_size:
            raise checkpoint.CheckpointError(
                f"{path}: expects observations of size {size}, this world gives {context.observation_size} "
                "(different lidar beams or neighbour count?)"
            )

    @classmethod
    def from_model(cls, context: PolicyContext, model, deterministic: bool = True) -> LearnedPolicy:
        """Serve a model still in memory (during or right after training), no checkpoint file."""
        policy = cls.__new__(cls)
        FunctionPolicy.__init__(policy, context, "learned:in-memory", policy._model_commands)
        policy.model, policy.meta, policy.path = model, {}, None
        policy.deterministic = deterministic
        policy.act_mode = "mode" if deterministic else "sample"
        policy._generator = torch.Generator().manual_seed(0)
        return policy

    def reset(self, seed: int | None = None) -> None:
        self._generator.manual_seed(0 if seed is None else int(seed))

    def _model_commands(self, observations: np.ndarray) -> np.ndarray:
        """Stacked observations (n, D) → commands (n, 2) from the actor."""
        obs = torch.as_tensor(observations, dtype=torch.float32)
        return self.model.act(obs, deterministic=self.deterministic, generator=self._generator).numpy()
