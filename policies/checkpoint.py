"""Checkpoints: the model's ``state_dict`` (``NAME.pt``) and a JSON sidecar
(``NAME.json``) saying what it is: model class and arguments, observation and action
spaces, task, world, the training configuration, the command that trained it and its
evaluation metrics. Loaded with ``torch.load(..., weights_only=True)``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from policies.models import MODELS


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save(path: str | Path, model: torch.nn.Module, info: dict[str, Any]) -> Path:
    """Write ``path`` (.pt) and its sidecar; returns the .pt path."""
    path = Path(path).with_suffix(".pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    meta = {"model_class": type(model).__name__, "model_args": model.spec(), **info}
    sidecar_path(path).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return path


def load(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model (eval mode) and its sidecar."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    if not side.is_file():
        raise CheckpointError(f"{path}: its sidecar {side.name} is missing (model class, spaces, task)")
    try:
        meta = json.loads(side.read_text())
        cls = MODELS[meta["model_class"]]
        model = cls(**meta["model_args"])
    except (KeyError, TypeError, ValueError, OSError) as err:  # ValueError: bad JSON or UTF-8 too
        raise CheckpointError(f"{side}: not a sern checkpoint sidecar ({err})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, pickle.UnpicklingError) as err:  # a corrupt file is an UnpicklingError
        raise CheckpointError(f"{path}: cannot load the weights ({str(err).splitlines()[0]})") from None
    model.eval()
    return model, meta


def world_entries(world, env, action_type: str) -> dict[str, Any]:
    """The sidecar entries saying which world, robots, observation and action a checkpoint
    was trained on (``env``: a ``BatchedEnv`` of ``world``; ``action_type``: how the actor's
    output acts)."""
    layout = {name: [sl.start, sl.stop] for name, sl in env.task.observation_slices().items()}
    return {
        "task": world.task.name,
        "world": world.name,
        "world_file": world.source,
        "agents": env.agents,
        "observation": {"size": env.obs_dim, "layout": layout},
        "action": {
            "type": action_type,
            "layout": env.task.action_layout(),
            "low": env.action_low[0].tolist(),
            "high": env.action_high[0].tolist(),
        },
    }
