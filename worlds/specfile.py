"""Reading YAML specification files into pydantic models, with errors for people:
every problem as ``FILE:LINE: key.path: reason``, never a YAML or pydantic traceback.
Used for world files (``worlds.loader``) and other sern configuration files."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from worlds.errors import Problem, SpecFileError, key_path

# Limits on a specification file, far above any real one (the shipped worlds are < 4 KB and
# < 300 values), so that a runaway file is refused instead of exhausting memory or the stack.
MAX_FILE_BYTES = 1_000_000
MAX_NESTING = 32  # mappings and lists inside each other
MAX_VALUES = 200_000  # scalars and collections, with YAML aliases expanded


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader (its libyaml build when there is one: ~10x faster), plus YAML 1.2
    floats without a dot (``1e-3``, ``2E+6``), which YAML 1.1 reads as strings: a person
    writing ``1e-3`` means a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_text(path: Path, shown: str, error: type[SpecFileError] = SpecFileError, hint: str = "") -> str:
    """The file's text, or one clear error (missing, a directory or other non-file,
    unreadable, too large, not UTF-8)."""
    try:
        if path.is_dir():
            raise error(shown, [Problem("", "is a directory, not a file")])
        if path.exists() and not path.is_file():
            raise error(shown, [Problem("", "is not a regular file (a FIFO, socket or device?)")])
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise error(shown, [Problem("", f"no such file{hint}")]) from None
    except IsADirectoryError:
        raise error(shown, [Problem("", "is a directory, not a file")]) from None
    except PermissionError:
        raise error(shown, [Problem("", "cannot read it: permission denied")]) from None
    except OSError as err:
        raise error(shown, [Problem("", f"cannot read it: {err.strerror or err}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        line = raw[:MAX_FILE_BYTES].count(b"\n") + 1  # where the limit is crossed
        reason = f"is larger than {MAX_FILE_BYTES // 1000} kB (the limit falls on this line); not a specification file?"
        raise error(shown, [Problem("", reason, line)])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error(shown, [Problem("", f"is not UTF-8 text (byte {err.start})", line)]) from None


def parse_yaml(
    text: str, source: str, what: str, error: type[SpecFileError] = SpecFileError
) -> tuple[dict, LineFinder]:
    """The YAML mapping in ``text`` and a line finder for its keys.

    Refused with a line number: YAML syntax errors, nesting deeper than ``MAX_NESTING``,
    duplicate keys, aliases that refer to themselves or expand beyond ``MAX_VALUES``."""
    try:
        _check_nesting(text, source, error)
        loader = _Loader(text)  # safe: constructs plain data only
        try:
            tree = loader.get_single_node()
            if tree is not None:
                _check_tree(tree, source, error)
            data = loader.construct_document(tree) if tree is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise error(source, [_yaml_problem(err, text)]) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        line = tree.start_mark.line + 1 if tree is not None else 1
        raise error(source, [Problem("", f"{what} is a mapping of keys; this one is {kind}", line)])
    return data, LineFinder(tree)


def _yaml_problem(err: yaml.YAMLError, text: str) -> Problem:
    if isinstance(err, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text[: err.position].count("\n") + 1
        char = chr(err.character) if isinstance(err.character, int) else str(err.character)
        return Problem("", f"invalid YAML: character {char!r} is not allowed in YAML text", line)
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    reason = getattr(err, "problem", None) or str(err)
    line = mark.line + 1 if mark is not None else 1
    where = f" (column {mark.column + 1})" if mark is not None else ""
    return Problem("", f"invalid YAML: {reason}{where}", line)


_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _check_nesting(text: str, source: str, error: type[SpecFileError]) -> None:
    """Refuse deep nesting before the (recursive) composer meets it."""
    depth = 0
    for token in yaml.scan(text, Loader=_Loader):
        if isinstance(token, _OPENERS):
            depth += 1
            if depth > MAX_NESTING:
                line = token.start_mark.line + 1
                raise error(source, [Problem("", f"nested more than {MAX_NESTING} levels deep", line)])
        elif isinstance(token, _CLOSERS):
            depth -= 1


def _check_tree(root: yaml.Node, source: str, error: type[SpecFileError]) -> None:
    """Duplicate keys, self-referring aliases and alias bombs, each with its line."""
    expanded: dict[int, int] = {}  # node id -> values under it, aliases expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        line = node.start_mark.line + 1
        if done:
            on_path.discard(id(node))
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            expanded[id(node)] = 1 + sum(expanded[id(c)] for c in children)
            if expanded[id(node)] > MAX_VALUES:
                raise error(source, [Problem("", f"holds more than {MAX_VALUES} values (YAML aliases expanded)", line)])
            continue
        if id(node) in expanded:
            continue
        if id(node) in on_path:
            raise error(source, [Problem("", "a YAML alias refers to a collection that contains it", line)])
        if isinstance(node, yaml.ScalarNode):
            expanded[id(node)] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, source, error)
        on_path.add(id(node))
        stack.append((node, True))
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        for child in children:
            if id(child) in on_path:
                raise error(
                    source,
                    [Problem("", "a YAML alias refers to a collection that contains it", child.start_mark.line + 1)],
                )
            if id(child) not in expanded:
                stack.append((child, False))


def _check_duplicate_keys(node: yaml.MappingNode, source: str, error: type[SpecFileError]) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            raise error(
                source,
                [
                    Problem(
                        "",
                        f"key {key.value[:80]!r} appears twice in one mapping (first on line {seen[key.value]})",
                        line,
                    )
                ],
            )
        seen[key.value] = line


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
    if kind in ("too_long", "too_short"):
        ctx = e.get("ctx", {})
        bound = ctx.get("max_length") if kind == "too_long" else ctx.get("min_length")
        return (
            f"has {ctx.get('actual_length')} items; {'at most' if kind == 'too_long' else 'at least'} {bound} allowed"
        )
    if kind == "finite_number":
        allowed = _allowed_range(model, loc[len(prefix) :])
        return f"must be a finite number{f' in {allowed}' if allowed else ''}; got {e.get('input')}"
    if kind in _RANGE_ERRORS and (allowed := _allowed_range(model, loc[len(prefix) :])):
        got = e.get("input")
        return f"must be in {allowed}; got {_number(got)}" if isinstance(got, int | float) else f"must be in {allowed}"
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ")
    got = e.get("input")
    if isinstance(got, dict) or (got is None and kind != "none_required"):
        return _sentence(msg)
    shown = json.dumps(got, default=str)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{_sentence(msg)} (got {shown})"


_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
_UNITS = {"_m": " m", "_s": " s", "_hz": " Hz", "_mps": " m/s", "_mps2": " m/s²", "_deg": "°", "_radps": " rad/s"}


def _allowed_range(model: type[BaseModel], loc: tuple) -> str:
    """The interval a number at ``loc`` may take, e.g. ``[1, 1000] m`` (empty if unknown)."""
    node: Any = model
    meta: list = []
    name = ""
    for part in loc:
        node, _ = _strip_annotated(node)
        if typing.get_origin(node) in (typing.Union, types.UnionType):  # e.g. obstacle types
            node = next((m for m in typing.get_args(node) if part in getattr(m, "model_fields", {})), None)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return ""
            node, meta, name = field.annotation, list(field.metadata), part
        elif typing.get_origin(node) is list:
            node, meta = typing.get_args(node)[0], []
        elif typing.get_origin(node) is tuple and isinstance(part, int):
            args = typing.get_args(node)
            node = args[0] if len(args) == 2 and args[1] is Ellipsis else args[min(part, len(args) - 1)]
            meta = []
        else:
            return ""
    node, more = _strip_annotated(node)
    lo = hi = None
    lo_open = hi_open = False
    for m in meta + more:
        for c in getattr(m, "metadata", [m]):
            if getattr(c, "ge", None) is not None:
                lo, lo_open = c.ge, False
            elif getattr(c, "gt", None) is not None:
                lo, lo_open = c.gt, True
            elif getattr(c, "le", None) is not None:
                hi, hi_open = c.le, False
            elif getattr(c, "lt", None) is not None:
                hi, hi_open = c.lt, True
    if lo is None and hi is None:
        return ""
    low = "(-inf" if lo is None else f"{'(' if lo_open else '['}{_number(lo)}"
    high = "inf)" if hi is None else f"{_number(hi)}{')' if hi_open else ']'}"
    unit = next((u for suffix, u in sorted(_UNITS.items(), key=lambda kv: -len(kv[0])) if name.endswith(suffix)), "")
    return f"{low}, {high}{unit}"


def _number(x: float) -> str:
    """A number as a person writes it: 4294967295, 0.5, 1e+30."""
    if isinstance(x, int) and not isinstance(x, bool):
        if abs(x) < 10**15:
            return str(x)
        digits = str(abs(x))  # beyond a float's range too: 10**400
        return f"{'-' if x < 0 else ''}{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"
    return f"{x:g}"


def _strip_annotated(node: Any) -> tuple[Any, list]:
    """``node`` without ``Annotated`` and ``Optional`` wrappers, and the metadata they held."""
    meta: list = []
    while True:
        if typing.get_origin(node) is typing.Annotated:
            args = typing.get_args(node)
            node, meta = args[0], meta + list(args[1:])
        elif typing.get_origin(node) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(node) if a is not type(None)]
            if len(args) != 1:
                return node, meta
            node = args[0]
        else:
            return node, meta


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
    """``robots[0].spawn`` → ('robots', 0, 'spawn'); a part that is not a plain name or
    index ends the path (the line found is then its parent's)."""
    out: list[str | int] = []
    for chunk in key.split("."):
        name, *indices = chunk.split("[")
        if name:
            out.append(name)
        for index in indices:
            if not index.endswith("]") or not index[:-1].isdigit():
                return tuple(out)
            out.append(int(index[:-1]))
    return tuple(out)
