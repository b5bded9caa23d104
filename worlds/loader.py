"""Load a world file: read, parse YAML, validate types, check the whole world.

Every failure is a ``WorldFileError`` that names the file, the line, the key path and
the reason, never a traceback from YAML or pydantic.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from worlds.checks import check_world
from worlds.errors import Problem, WorldFileError, key_path
from worlds.layout import PlacementError, sample_starts
from worlds.spec import WorldSpec
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
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        hint = f"; shipped worlds: {', '.join(list_worlds())}" if not path.is_absolute() else ""
        raise WorldFileError(shown, [Problem("", f"no such file{hint}")]) from None
    except IsADirectoryError:
        raise WorldFileError(shown, [Problem("", "is a directory, not a world file")]) from None
    except PermissionError:
        raise WorldFileError(shown, [Problem("", "cannot read it: permission denied")]) from None
    except UnicodeDecodeError as err:
        raise WorldFileError(shown, [Problem("", f"is not UTF-8 text (byte {err.start})")]) from None
    except OSError as err:
        raise WorldFileError(shown, [Problem("", f"cannot read it: {err.strerror}")]) from None
    return load_world_text(text, source=shown)


def load_world_text(text: str, source: str = "<string>") -> WorldSpec:
    """Validate world-file text; ``source`` names it in error messages."""
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        reason = getattr(err, "problem", None) or str(err)
        line = mark.line + 1 if mark is not None else None
        where = f" (column {mark.column + 1})" if mark is not None else ""
        raise WorldFileError(source, [Problem("", f"invalid YAML: {reason}{where}", line)]) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise WorldFileError(
            source, [Problem("", f"a world file is a mapping of keys (name, arena, ...); this one is {kind}")]
        )
    return load_world_data(data, source, _LineFinder(tree))


def load_world_data(data: dict, source: str = "<data>", lines: _LineFinder | None = None) -> WorldSpec:
    """Validate a world given as plain data (as YAML would parse it): all the checks a
    world file gets. Useful for worlds built in code, e.g. a shipped world with changes."""
    try:
        world = WorldSpec.model_validate_json(json.dumps({**data, "source": source}, default=str), strict=True)
    except ValidationError as err:
        raise WorldFileError(source, _problems_from(err, data, (), WorldSpec, lines)) from None

    problems = check_world(world)
    task_problems, _ = _validated_task(world, data, lines)
    problems += task_problems
    if not problems:
        try:
            sample_starts(world, np.random.default_rng(world.seed))
        except PlacementError as err:
            problems.append(Problem(err.key, str(err)))
    if problems:
        raise WorldFileError(source, [_with_line(p, lines) if lines else p for p in problems])
    return world


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


def make_task(world: WorldSpec) -> Task:
    """Build the task a (validated) world asks for."""
    problems, task = _validated_task(world, None, None)
    if problems:
        raise WorldFileError(world.source, problems)
    return task


def _validated_task(
    world: WorldSpec, data: dict | None, lines: _LineFinder | None
) -> tuple[list[Problem], Task | None]:
    if world.task.name not in TASKS:
        return [
            Problem("task.name", f"unknown task {world.task.name!r}; choose one of: {', '.join(sorted(TASKS))}")
        ], None
    cls = task_class(world.task.name)
    raw = world.task.params
    try:
        params = cls.Params.model_validate_json(json.dumps(raw, default=str), strict=True)
    except ValidationError as err:
        return _problems_from(err, raw, ("task", "params"), cls.Params, lines), None
    problems = cls.check(world, params)
    if problems:
        return problems, None
    return [], cls(world, params)


# ---- turning pydantic errors into problems for people ---------------------------------
def _problems_from(
    err: ValidationError, data: Any, prefix: tuple, model: type[BaseModel], lines: _LineFinder | None
) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        loc = prefix + _strip_union_tags(e["loc"], data)
        reason = _reason(e, prefix, loc, model)
        line = lines.line(loc) if lines else None
        problems.append(Problem(key_path(loc), reason, line))
    return problems


def _strip_union_tags(loc: tuple, data: Any) -> tuple:
    """Drop the discriminator/union-member parts pydantic adds to a location."""
    out, node = [], data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and part not in node and not last:
            continue  # a union tag like 'box' or 'function-after[...]'
        if isinstance(part, str) and ("[" in part or part.startswith("constrained")) and not last:
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _reason(e: dict, prefix: tuple, loc: tuple, model: type[BaseModel]) -> str:
    kind, msg = e["type"], e["msg"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[len(prefix) : -1])
        return f"unknown key; allowed here: {', '.join(allowed)}" if allowed else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = e.get("ctx", {})
        field = str(ctx.get("discriminator", "type")).strip("'")
        return f"unknown {field} {ctx.get('tag')!r}; choose one of: {ctx.get('expected_tags')}"
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ")
    got = e.get("input")
    if isinstance(got, dict) or (got is None and kind != "none_required"):
        return _sentence(msg)
    return f"{_sentence(msg)} (got {json.dumps(got, default=str)})"


def _sentence(msg: str) -> str:
    return msg[0].lower() + msg[1:] if msg else msg


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at ``loc`` inside ``model`` (empty when it cannot tell)."""
    node: Any = model
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            node = field.annotation
        elif typing.get_origin(node) in (list, tuple):
            args = typing.get_args(node)
            node = args[0] if args else None
        else:
            return []
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [name for name, f in node.model_fields.items() if not f.exclude]
    if typing.get_origin(node) in (typing.Union, types.UnionType):
        names: list[str] = []
        for arg in typing.get_args(node):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names += [n for n in arg.model_fields if n not in names]
        return names
    return []


def _unwrap(node: Any) -> Any:
    while typing.get_origin(node) is typing.Annotated:
        node = typing.get_args(node)[0]
    if typing.get_origin(node) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(node) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return node


class _LineFinder:
    """Maps a key path to the line it sits on in the YAML text."""

    def __init__(self, tree: yaml.Node | None):
        self.tree = tree

    def line(self, loc: tuple) -> int | None:
        node = self.tree
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                pair = next(((k, v) for k, v in node.value if k.value == part), None)
                if pair is None:
                    return line  # a missing key: point at the mapping that lacks it
                line, node = pair[0].start_mark.line + 1, pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def _with_line(problem: Problem, lines: _LineFinder) -> Problem:
    if problem.line is not None or not problem.key:
        return problem
    return Problem(problem.key, problem.reason, lines.line(_parse_key(problem.key)))


def _parse_key(key: str) -> tuple:
    """``robots[0].spawn`` → ('robots', 0, 'spawn')."""
    out: list[str | int] = []
    for chunk in key.split("."):
        name, *indices = chunk.split("[")
        if name:
            out.append(name)
        out += [int(i.rstrip("]")) for i in indices]
    return tuple(out)
