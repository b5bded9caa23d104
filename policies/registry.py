"""Choosing a policy by name (``scripted``, ``idle``, ``learned``) or by checkpoint path. The
scripted baselines themselves are in ``policies.scripted``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from policies.base import Policy, PolicyContext, PolicyError
from policies.scripted import SCRIPTED, make_scripted

__all__ = [
    "CHECKPOINTS_DIR",
    "POLICY_NAMES",
    "SCRIPTED",
    "IdlePolicy",
    "PolicyError",
    "default_policy",
    "make_policy",
    "make_scripted",
    "shipped_checkpoint",
]


class IdlePolicy(Policy):
    """Commands every robot to stand still: a floor for metrics and a safe default."""

    name = "idle"

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: np.zeros(2, dtype=np.float32) for agent in observations}


POLICY_NAMES = ("scripted", "idle", "learned")


def make_policy(name_or_path: str, context: PolicyContext, act: str | None = None) -> Policy:
    """A policy for ``context``: a name from ``POLICY_NAMES`` or a checkpoint file; ``act``
    (``mode`` or ``sample``) overrides a checkpoint's own choice of action selection."""
    if name_or_path == "idle":
        return IdlePolicy(context)
    if name_or_path == "scripted":
        return make_scripted(context)
    if name_or_path == "learned":
        shipped = shipped_checkpoint(context.task_name)
        if shipped is None:
            raise PolicyError(f"no shipped checkpoint for task {context.task_name!r}; train one with 'sern train'")
        name_or_path = str(shipped)
    path = Path(name_or_path)
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.exists():
            raise PolicyError(f"checkpoint {path} does not exist")
        # torch is imported only when a checkpoint is asked for (scripted runs start faster)
        from policies.checkpoint import CheckpointError
        from policies.learned import LearnedPolicy

        try:
            return LearnedPolicy(context, path, act=act)
        except CheckpointError as err:
            raise PolicyError(str(err)) from None
    raise PolicyError(f"unknown policy {name_or_path!r}; use one of {', '.join(POLICY_NAMES)} or a checkpoint path")


CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"


def shipped_checkpoint(task_name: str) -> Path | None:
    """The checkpoint shipped for a task (``policies/checkpoints/<task>.pt``), if any."""
    path = CHECKPOINTS_DIR / f"{task_name}.pt"
    return path if path.is_file() else None


def default_policy(context: PolicyContext) -> tuple[Policy, str | None]:
    """What ``sern run`` uses when no policy is given: the task's shipped checkpoint if it
    fits the world (a world may change what the robots observe: other lidar beams,
    neighbours, messages), else the scripted baseline. Returns the policy and, when a shipped
    checkpoint was passed over, why (to tell the user; ``--policy learned`` insists)."""
    if shipped_checkpoint(context.task_name) is None:
        return make_scripted(context), None
    try:
        return make_policy("learned", context), None
    except PolicyError as err:
        return make_scripted(context), f"the shipped checkpoint does not fit this world ({err})"
