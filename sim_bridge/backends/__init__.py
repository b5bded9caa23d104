"""Simulator backends behind one interface (``Backend``), chosen by name, imported lazily."""

from __future__ import annotations

import importlib

from sim_bridge.backends.base import (
    Backend,
    CameraFrame,
    Capabilities,
    CommandError,
    Dynamics,
    RobotStates,
    require_runnable,
)
from worlds.spec import WorldSpec

# name -> "module:Class"; a backend's engine is imported only when it is chosen.
BACKENDS: dict[str, str] = {
    "pybullet": "sim_bridge.backends.pybullet_backend:PyBulletBackend",
    "kinematic": "sim_bridge.backends.kinematic_backend:KinematicBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The backend class called ``name``; an unknown name lists the available ones."""
    if name == "unity":
        raise ValueError(
            "backend 'unity' is not a simulator sern steps: its worlds run on the other side of ML-Agents' "
            "protocol (sim_bridge.env.make_env gives their env)"
        )
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(
    world: WorldSpec, name: str | None = None, num_worlds: int = 1, dynamics: Dynamics | None = None
) -> Backend:
    """A backend for ``world``: its own ``backend`` field unless ``name`` overrides it.

    A backend that cannot run the world is a ``WorldFileError`` (a ``ValueError``) saying
    why, e.g. a robot model the chosen backend cannot simulate."""
    name = name or world.backend
    require_runnable(world, name)
    return backend_class(name)(world, num_worlds=num_worlds, dynamics=dynamics)


__all__ = [
    "BACKENDS",
    "Backend",
    "CameraFrame",
    "Capabilities",
    "CommandError",
    "Dynamics",
    "RobotStates",
    "backend_class",
    "make_backend",
    "require_runnable",
]
