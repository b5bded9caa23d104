"""Reading YAML specification files into pydantic models, with errors for people:
every problem as ``FILE:LINE: key.path: reason``, never a YAML or pydantic traceback.
Used for world files (``worlds.loader``) and other sern configuration files."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from worlds.errors import Problem, SpecFileError, key_path


def read_text(path: Path, shown: str, error: type[SpecFileError] = SpecFileError, hint: str = "") -> str:
    """The file's text, or one clear error (missing, a directory, unreadable, not UTF-8)."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(shown, [Problem("", f"no such file{hint}")]) from None
    except IsADirectoryError:
        raise error(shown, [Problem("", "is a directory, not a file")]) from None
    except PermissionError:
        raise error(shown, [Problem("", "cannot read it: permission denied")]) from None
    except UnicodeDecodeError as err:
        raise error(shown, [Problem("", f"is not UTF-8 text (byte {err.start})")]) from None
    except OSError as err:
        raise error(shown, [Problem("", f"cannot read it: {err.strerror}")]) from None


def parse_yaml(
    text: str, source: str, what: str, error: type[SpecFileError] = SpecFileError
) -> tuple[dict, LineFinder]:
    """The YAML mapping in ``text`` and a line finder for its keys."""
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        reason = getattr(err, "problem", None) or str(err)
        line = mark.line + 1 if mark is not None else None
        where = f" (column {mark.column + 1})" if mark is not None else ""
        raise error(source, [Problem("", f"invalid YAML: {reason}{where}", line)]) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise error(source, [Problem("", f"{what} is a mapping of keys; this one is {kind}")])
    return data, LineFinder(tree)


def validate(
    model: type[BaseModel],
    data: Any,
    source: str,
    lines: LineFinder | None = None,
    prefix: tuple = (),
    error: type[SpecFileError] = SpecFileError,
    extra: dict | None = None,
):
    """``model`` from plain data, strictly (JSON types: "2" is not a number)."""
    payload = {**data, **(extra or {})} if isinstance(data, dict) else data
    try:
        return model.model_validate_json(json.dumps(payload, default=str), strict=True)
    except ValidationError as err:
        raise error(source, problems_from(err, data, prefix, model, lines)) from None


def problems_from(
    err: ValidationError, data: Any, prefix: tuple, model: type[BaseModel], lines: LineFinder | None
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


class LineFinder:
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


def with_line(problem: Problem, lines: LineFinder) -> Problem:
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
