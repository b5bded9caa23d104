"""The launch_yaml vocabulary ``sern launch`` reads, checked before anything runs.

A launch file is read with the line of every mapping kept, then every action is checked
against the attributes ros2 launch (launch 3.7.1, launch_ros 0.28.0) accepts for it, with the
types launch_yaml insists on: ``TEXT`` attributes must be YAML strings (launch_yaml refuses
an unquoted ``5`` or ``true`` there), ``FLOAT`` ones YAML floats (it refuses ``1``; write
``1.0``), ``BOOL`` ones YAML booleans (a quoted ``'false'`` would be *true* in ros2 launch's
``scoped``/``shell``, so it is refused here). Actions and attributes that ros2 launch has but
``sern launch`` does not implement are refused by name, never ignored. Every error names
``FILE:LINE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim_bridge.launch.errors import LaunchError

TEXT, BOOL, FLOAT, INT, VALUE, TEXT_OR_BOOL = "text", "bool", "float", "int", "value", "text-or-bool"


@dataclass(frozen=True)
class Entities:
    """An attribute holding a list of sub-entities (``param``, ``remap``, ``env`` …)."""

    attributes: dict[str, Any]
    required: frozenset[str] = frozenset()
    one_of: tuple[str, ...] = ()  # exactly one of these must be given


NAME_VALUE = Entities({"name": TEXT, "value": TEXT}, frozenset({"name", "value"}))
PARAM = Entities(
    {"name": TEXT, "value": VALUE, "from": TEXT, "allow_substs": TEXT_OR_BOOL},  # "param" added below
    one_of=("name", "from"),
)
PARAM.attributes["param"] = PARAM
_PROCESS = {
    "cwd": TEXT,
    "env": NAME_VALUE,
    "output": TEXT,
    "respawn": TEXT,
    "respawn_delay": FLOAT,
    "respawn_max_retries": INT,
    "sigterm_timeout": FLOAT,
    "sigkill_timeout": FLOAT,
    "shell": BOOL,
    "emulate_tty": BOOL,
    "on_exit": TEXT,
    "launch-prefix": TEXT,
}


@dataclass(frozen=True)
class Action:
    attributes: dict[str, Any]
    required: frozenset[str] = frozenset()
    children: bool = False  # holds a list of actions (group)


ACTIONS: dict[str, Action] = {
    "arg": Action(
        {"name": TEXT, "default": TEXT, "description": TEXT, "choice": Entities({"value": TEXT}, frozenset({"value"}))},
        frozenset({"name"}),
    ),
    "let": Action({"name": TEXT, "value": TEXT}, frozenset({"name", "value"})),
    "set_env": Action({"name": TEXT, "value": TEXT}, frozenset({"name", "value"})),
    "unset_env": Action({"name": TEXT}, frozenset({"name"})),
    "append_env": Action(
        {"name": TEXT, "value": TEXT, "prepend": TEXT_OR_BOOL, "separator": TEXT}, frozenset({"name", "value"})
    ),
    "reset_env": Action({}),
    "reset": Action({"keep": NAME_VALUE}),
    "node": Action(
        {
            "pkg": TEXT,
            "exec": TEXT,
            "name": TEXT,
            "namespace": TEXT,
            "exec_name": TEXT,
            "args": TEXT,
            "ros_args": TEXT,
            "param": PARAM,
            "remap": Entities({"from": TEXT, "to": TEXT}, frozenset({"from", "to"})),
            **_PROCESS,
        },
        frozenset({"exec"}),
    ),
    "executable": Action({"cmd": TEXT, "name": TEXT, **_PROCESS}, frozenset({"cmd"})),
    "group": Action({"scoped": BOOL, "forwarding": BOOL, "keep": NAME_VALUE}, children=True),
    "push_ros_namespace": Action({"namespace": TEXT}, frozenset({"namespace"})),
    "push-ros-namespace": Action({"namespace": TEXT}, frozenset({"namespace"})),
    "include": Action({"file": TEXT, "arg": NAME_VALUE}, frozenset({"file"})),
    "set_parameter": Action({"name": TEXT, "value": TEXT}, frozenset({"name", "value"})),
    "set_parameters_from_file": Action({"filename": TEXT}, frozenset({"filename"})),
    "set_remap": Action({"from": TEXT, "to": TEXT}, frozenset({"from", "to"})),
    "log": Action({"message": TEXT}, frozenset({"message"})),
}
CONDITIONS = {"if": TEXT, "unless": TEXT}

# What ros2 launch has and sern launch refuses by name (so a file is never half-understood).
ROS2_ONLY_ACTIONS = {
    "timer": "delayed actions",
    "ros_timer": "delayed actions",
    "shutdown": "a shutdown action",
    "set_ros_log_dir": "a per-launch ROS log directory",
    "set_use_sim_time": "use_sim_time on the launch process's own ROS node",
    "node_container": "composable node containers",
    "load_composable_node": "composable nodes",
}
ROS2_ONLY_KEYS = {
    ("node", "node-name"): "an explicit node-name",
    ("param", "type"): "typed parameters (give the value in YAML form instead)",
}


class _Mapping(dict):
    """A YAML mapping that remembers the line it starts on."""

    line: int = 0


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's is ~10x faster
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode):
    data = _Mapping()
    data.line = node.start_mark.line + 1
    yield data
    data.update(loader.construct_mapping(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def line_of(value: Any) -> int | None:
    return getattr(value, "line", None) or None


@dataclass
class Entity:
    """One checked action of a launch file."""

    kind: str
    body: dict[str, Any]
    path: Path
    line: int | None
    children: list[Entity] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def error(self, message: str) -> LaunchError:
        return LaunchError(f"{self.where}: {self.kind}: {message}", located=True)


def load(path: Path) -> list[Entity]:
    """The checked actions of the launch file at ``path``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LaunchError(f"{path}: no such launch file", located=True) from None
    except IsADirectoryError:
        raise LaunchError(f"{path}: is a directory, not a launch file", located=True) from None
    except OSError as err:
        raise LaunchError(f"{path}: cannot read it ({err.strerror})", located=True) from None
    except UnicodeDecodeError:
        raise LaunchError(f"{path}: not a text file", located=True) from None
    try:
        tree = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise LaunchError(f"{path}{where}: invalid YAML: {getattr(err, 'problem', err)}", located=True) from None
    if not isinstance(tree, dict) or list(tree) != ["launch"]:
        raise LaunchError(f"{path}: a launch file has exactly one root key, 'launch'", located=True)
    return _actions(tree["launch"], path, line_of(tree) or 1, "launch")


def _actions(items: Any, path: Path, line: int | None, where: str) -> list[Entity]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise LaunchError(f"{path}:{line}: '{where}' must be a list of actions", located=True)
    out = []
    for item in items:
        item_line = line_of(item) or line
        if not isinstance(item, dict) or len(item) != 1:
            raise LaunchError(
                f"{path}:{item_line}: in '{where}': each action is a mapping with one key, its type "
                f"(e.g. '- node: {{pkg: sern, exec: sim_node}}')",
                located=True,
            )
        ((kind, body),) = item.items()
        out.append(_action(kind, body, path, item_line))
    return out


def _action(kind: Any, body: Any, path: Path, line: int | None) -> Entity:
    where = f"{path}:{line}"
    if kind in ROS2_ONLY_ACTIONS:
        raise LaunchError(
            f"{where}: '{kind}' ({ROS2_ONLY_ACTIONS[kind]}) is a ros2 launch action that sern launch does not "
            "support; run this file with ros2 launch",
            located=True,
        )
    if kind not in ACTIONS:
        raise LaunchError(f"{where}: unknown action '{kind}'; supported: {', '.join(ACTIONS)}", located=True)
    spec = ACTIONS[kind]
    if kind == "group" and isinstance(body, list):
        body = {"children": body}
    if body is None and not spec.required:
        raise LaunchError(
            f"{where}: {kind}: write '{kind}: {{}}' (ros2 launch refuses an empty '{kind}:')", located=True
        )
    if not isinstance(body, dict):
        raise LaunchError(f"{where}: {kind}: expected a mapping of attributes, got {body!r}", located=True)
    entity = Entity(kind, body, path, line)
    allowed = set(spec.attributes) | set(CONDITIONS) | ({"children"} if spec.children else set())
    _check_keys(entity, kind, body, allowed, spec.required)
    if "if" in body and "unless" in body:
        raise entity.error("'if' and 'unless' cannot be used together")
    for key, value in body.items():
        if key == "children":
            continue
        _check_value(entity, f"{kind}.{key}", {**spec.attributes, **CONDITIONS}[key], value)
    if spec.children:
        entity.children = _actions(body.get("children"), path, line, f"{kind}.children")
    return entity


def _check_keys(entity: Entity, kind: str, body: dict, allowed: set[str], required: frozenset[str]) -> None:
    for key in body:
        if key in allowed:
            continue
        if (kind, key) in ROS2_ONLY_KEYS:
            raise entity.error(
                f"'{key}' ({ROS2_ONLY_KEYS[(kind, key)]}) is valid in ros2 launch but sern launch does not support it"
            )
        raise entity.error(f"unexpected key '{key}'; '{kind}' takes: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(body))
    if missing:
        raise entity.error(f"missing {', '.join(repr(m) for m in missing)}")


def _check_value(entity: Entity, what: str, kind: Any, value: Any) -> None:
    if isinstance(kind, Entities):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise entity.error(f"'{what}' must be a list of mappings, e.g. [{{name: a, value: b}}]")
        leaf = what.rsplit(".", 1)[-1]
        for item in value:
            sub = Entity(leaf, item, entity.path, line_of(item) or entity.line)
            _check_keys(sub, leaf, item, set(kind.attributes), kind.required)
            if kind.one_of and sum(k in item for k in kind.one_of) != 1:
                raise sub.error(f"give exactly one of {' or '.join(repr(k) for k in kind.one_of)}")
            for key, sub_value in item.items():
                _check_value(sub, f"{leaf}.{key}", kind.attributes[key], sub_value)
        return
    if kind == TEXT and not isinstance(value, str):
        raise entity.error(
            f"'{what}' must be a string; quote it ('{value}'): ros2 launch refuses an unquoted {type(value).__name__} here"
        )
    if kind == BOOL and not isinstance(value, bool):
        raise entity.error(
            f"'{what}' must be an unquoted true or false (ros2 launch treats a quoted 'false' as true here)"
        )
    if kind == TEXT_OR_BOOL and not isinstance(value, (str, bool)):
        raise entity.error(f"'{what}' must be true, false or a string expanding to one")
    if kind == FLOAT and (isinstance(value, bool) or not isinstance(value, float)):
        hint = f"; write {float(value)!r}" if isinstance(value, int) and not isinstance(value, bool) else ""
        raise entity.error(f"'{what}' must be a number written as a float (ros2 launch refuses {value!r}){hint}")
    if kind == FLOAT and value < 0:
        raise entity.error(f"'{what}' must be zero or more, got {value}")
    if kind == INT and (isinstance(value, bool) or not isinstance(value, int)):
        raise entity.error(f"'{what}' must be an integer, got {value!r}")
    if kind == VALUE:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise entity.error(f"'{what}' is an empty list; ROS parameters cannot be empty lists")
        if not all(isinstance(v, (str, int, float, bool)) for v in items):
            raise entity.error(f"'{what}' must be a scalar or a list of scalars, got {value!r}")
        if isinstance(value, list) and len({type(v) for v in value}) > 1:
            raise entity.error(f"'{what}': all items of a parameter list must have one type, got {value!r}")
