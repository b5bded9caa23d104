"""Choosing a policy by name (``scripted``, ``idle``) or by checkpoint path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from policies.base import Policy, PolicyContext

# task name -> "module:Class" of its scripted baseline
SCRIPTED: dict[str, str] = {
    "navigation": "policies.scripted_navigation:ScriptedNavigationPolicy",
}


class IdlePolicy(Policy):
    """Commands every robot to stand still: a floor for metrics and a safe default."""

    name = "idle"

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: np.zeros(2, dtype=np.float32) for agent in observations}


POLICY_NAMES = ("scripted", "idle")


class PolicyError(ValueError):
    """A policy that cannot be made for this task (unknown name, bad checkpoint)."""


def make_policy(name_or_path: str, context: PolicyContext) -> Policy:
    """A policy for ``context``: a name from ``POLICY_NAMES`` or a checkpoint file."""
    if name_or_path == "idle":
        return IdlePolicy(context)
    if name_or_path == "scripted":
        target = SCRIPTED.get(context.task_name)
        if target is None:
            raise PolicyError(f"no scripted baseline for task {context.task_name!r}")
        import importlib

        module, cls = target.split(":")
        return getattr(importlib.import_module(module), cls)(context)
    path = Path(name_or_path)
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.exists():
            raise PolicyError(f"checkpoint {path} does not exist")
        raise PolicyError(
            f"{path}: learned-policy checkpoints are not supported by this version of sern yet; "
            f"use one of: {', '.join(POLICY_NAMES)}"
        )
    raise PolicyError(f"unknown policy {name_or_path!r}; use one of {', '.join(POLICY_NAMES)} or a checkpoint path")
