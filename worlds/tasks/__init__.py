"""Task registry: a world file's ``task.name`` picks one of these."""

from __future__ import annotations

import importlib

from worlds.tasks.base import ObservationPart, Snapshot, Task

# name -> "module:Class"; modules are imported only when their task is used.
TASKS: dict[str, str] = {
    "navigation": "worlds.tasks.navigation:NavigationTask",
    "flocking": "worlds.tasks.flocking:FlockingTask",
    "coverage": "worlds.tasks.coverage:CoverageTask",
    "foraging": "worlds.tasks.foraging:ForagingTask",
    "pursuit": "worlds.tasks.pursuit:PursuitTask",
    "transport": "worlds.tasks.transport:TransportTask",
}


def task_class(name: str) -> type[Task]:
    """The task class for ``name``; an unknown name lists the valid ones."""
    try:
        target = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["TASKS", "ObservationPart", "Snapshot", "Task", "task_class"]
