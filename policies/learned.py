"""A trained checkpoint behind the ``Policy`` interface (simulation and the ROS node)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from policies import checkpoint
from policies.base import Policy, PolicyContext

ACT_MODES = ("mode", "sample")


class LearnedPolicy(Policy):
    """Commands from a MAPPO/IPPO checkpoint's actor: its most likely action (``act="mode"``)
    or an action drawn from it (``act="sample"``, the policy as PPO trained it), from a
    generator seeded at every ``reset(seed)``, so an episode replays exactly. Without
    ``act`` the checkpoint's sidecar decides (its ``act``; ``mode`` if it has none)."""

    name = "learned"

    def __init__(self, context: PolicyContext, path: str | Path, act: str | None = None):
        super().__init__(context)
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
        self.name = f"learned:{self.path.stem}"

    @classmethod
    def from_model(cls, context: PolicyContext, model, deterministic: bool = True) -> LearnedPolicy:
        """Serve a model still in memory (during or right after training), no checkpoint file."""
        policy = cls.__new__(cls)
        Policy.__init__(policy, context)
        policy.model, policy.meta, policy.path = model, {}, None
        policy.deterministic = deterministic
        policy.act_mode = "mode" if deterministic else "sample"
        policy._generator = torch.Generator().manual_seed(0)
        policy.name = "learned:in-memory"
        return policy

    def reset(self, seed: int | None = None) -> None:
        self._generator.manual_seed(0 if seed is None else int(seed))

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not observations:
            return {}
        agents = list(observations)
        obs = torch.as_tensor(np.stack([np.asarray(observations[a], dtype=np.float32) for a in agents]))
        commands = self.model.act(obs, deterministic=self.deterministic, generator=self._generator).numpy()
        return {a: commands[i].astype(np.float32) for i, a in enumerate(agents)}
