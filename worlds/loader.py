"""Load a world file: read, parse YAML, validate types, check the whole world.

Every failure is a ``WorldFileError`` that names the file, the line, the key path and
the reason, never a traceback from YAML or pydantic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worlds.checks import check_world
from worlds.errors import Problem, WorldFileError
from worlds.layout import PlacementError, sample_starts
from worlds.spec import WorldSpec
from worlds.specfile import LineFinder, parse_yaml, read_text, validate, with_line
from worlds.tasks import TASKS, Task, task_class

WORLDS_DIR = Path(__file__).resolve().parent


def resolve_world_path(name_or_path: str | Path) -> Path:
    """A path as given, or the name of a shipped world (``navigation`` → its YAML)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or "/" in str(name_or_path):
        return path
    shipped = WORLDS_DIR / f"{name_or_path}.yaml"
    return shipped if shipped.exists() else path


def list_worlds() -> list[str]:
    """Names of the world files shipped with sern."""
    return sorted(p.stem for p in WORLDS_DIR.glob("*.yaml"))


def load_world(name_or_path: str | Path) -> WorldSpec:
    """Read and validate a world file (or a shipped world by name)."""
    path = resolve_world_path(name_or_path)
    shown = str(name_or_path)
    hint = f"; shipped worlds: {', '.join(list_worlds())}" if not path.is_absolute() else ""
    return load_world_text(read_text(path, shown, WorldFileError, hint), source=shown)


def load_world_text(text: str, source: str = "<string>") -> WorldSpec:
    """Validate world-file text; ``source`` names it in error messages."""
    data, lines = parse_yaml(text, source, "a world file", WorldFileError)
    return load_world_data(data, source, lines)


def load_world_data(data: dict, source: str = "<data>", lines: LineFinder | None = None) -> WorldSpec:
    """Validate a world given as plain data (as YAML would parse it): all the checks a
    world file gets. Useful for worlds built in code, e.g. a shipped world with changes."""
    world = validate(WorldSpec, data, source, lines, error=WorldFileError, extra={"source": source})

    problems = check_world(world)
    task_problems, task = _validated_task(world, data, lines)
    problems += task_problems
    if not problems and task is not None:
        problems += _trial_episode(world, task)
    if problems:
        raise WorldFileError(source, [with_line(p, lines) if lines else p for p in problems])
    return world


def _trial_episode(world: WorldSpec, task: Task) -> list[Problem]:
    """Draw the episode of the world's own seed (the first ``sern run`` runs), exactly as
    ``sim_bridge.episode.draw_episode`` does: a region too small for the robots, goals,
    items, ... it must hold is a problem with the file, found before anything runs."""
    rng = np.random.default_rng(world.seed)
    rng.integers(2**31)  # draw_episode draws the backend's seed first
    try:
        task.reset(rng, sample_starts(world, rng))
    except PlacementError as err:
        return [Problem(err.key, f"{err.reason} (tried with the world's seed, {world.seed})")]
    return []


def world_file_error(world: WorldSpec, key: str, reason: str) -> WorldFileError:
    """A problem with a loaded world found later (e.g. while drawing an episode), located
    in its file (``FILE:LINE: key: reason``) when the world came from one."""
    problem = Problem(key, reason)
    path = resolve_world_path(world.source)
    try:
        if path.is_file():
            _, lines = parse_yaml(read_text(path, world.source, WorldFileError), world.source, "a world file")
            problem = with_line(problem, lines)
    except WorldFileError:
        pass  # the file changed since it was loaded: report without the line
    return WorldFileError(world.source, [problem])


def with_robot_count(world: WorldSpec, count: int) -> WorldSpec:
    """``world`` with ``count`` robots in its first robot group (others unchanged); 0 keeps it."""
    if count == 0 or count == world.robots[0].count:
        return world
    data = world.to_data()
    data["robots"][0]["count"] = count
    source = f"{world.source} (robots[0].count = {count})"
    if world.robots[0].spawn.poses is not None:
        raise WorldFileError(
            source,
            [Problem("robots[0].spawn", "places robots at explicit poses; use a spawn region to change the count")],
        )
    return load_world_data(data, source)


def with_changes(world: WorldSpec, changes: dict[str, object]) -> WorldSpec:
    """``world`` with values set at dotted key paths of its file, e.g.
    ``{"task.params.reward.collision_penalty": 20.0}``, and checked again like a file."""
    if not changes:
        return world
    data = world.to_data()
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split(".")
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {}) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                where = ".".join(parents[: depth + 1])
                raise WorldFileError(world.source, [Problem(key, f"{where} is not a mapping, so {key} cannot be set")])
            node = child
        node[leaf] = value
    shown = ", ".join(f"{k} = {v}" for k, v in changes.items())
    return load_world_data(data, f"{world.source} ({shown})")


def make_task(world: WorldSpec, num_worlds: int = 1) -> Task:
    """Build the task a (validated) world asks for, for ``num_worlds`` worlds at once."""
    problems, task = _validated_task(world, None, None, num_worlds)
    if problems:
        raise WorldFileError(world.source, problems)
    return task


def _validated_task(
    world: WorldSpec, data: dict | None, lines: LineFinder | None, num_worlds: int = 1
) -> tuple[list[Problem], Task | None]:
    if world.task.name not in TASKS:
        return [
            Problem("task.name", f"unknown task {world.task.name!r}; choose one of: {', '.join(sorted(TASKS))}")
        ], None
    cls = task_class(world.task.name)
    raw = world.task.params
    try:
        params = validate(cls.Params, raw, world.source, lines, ("task", "params"), WorldFileError)
    except WorldFileError as err:
        return err.problems, None
    problems = cls.check(world, params)
    if problems:
        return problems, None
    return [], cls(world, params, num_worlds)
