"""Declared, typed, validated ROS parameters; unknown ones are refused.

Every node lists its parameters as ``Param``s. ``declare_params`` declares them with their
defaults and descriptions, checks each value's type (an int is accepted where a float is
expected, as YAML and ``-p x:=1`` give ints) and range, refuses parameters the node does not
have, and refuses changes at run time (restart the node to change a parameter). Problems
raise ``ParameterError`` with one line per parameter, which ``ros_nodes.runtime`` prints
before exiting with code 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node

# Parameters rclpy declares itself on every node.
_BUILT_IN = {"use_sim_time", "start_type_description_service"}


class ParameterError(ValueError):
    """One or more parameters a node cannot run with."""

    def __init__(self, node: str, problems: list[str]):
        self.node = node
        self.problems = problems
        super().__init__(f"{node}: bad parameters:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Param:
    """A node parameter: name, default (which fixes its type), description, check."""

    name: str
    default: Any
    description: str
    check: Callable[[Any], str | None] | None = None

    @property
    def kind(self) -> type:
        if isinstance(self.default, bool):
            return bool
        if isinstance(self.default, (list, tuple)):
            return list
        return type(self.default)


def positive(value) -> str | None:
    return None if value > 0 else f"must be > 0, got {value}"


def non_negative(value) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value):
        return None if value in choices else f"must be one of {', '.join(choices)}; got {value!r}"

    return check


def declare_params(node: Node, params: Sequence[Param]) -> SimpleNamespace:
    """Declare ``params`` on ``node``; return their checked values as attributes."""
    known = {p.name for p in params}
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    problems = [
        f"unknown parameter '{name}'; this node takes: {', '.join(sorted(known))}"
        for name in sorted(set(overrides) - known - _BUILT_IN)
    ]
    values = {}
    for p in params:
        descriptor = ParameterDescriptor(description=p.description, dynamic_typing=True)
        node.declare_parameter(p.name, p.default, descriptor)
        raw = node.get_parameter(p.name).value
        value, problem = _coerce(p, raw)
        if problem is None and p.check is not None:
            problem = p.check(value)
        if problem is not None:
            problems.append(f"'{p.name}': {problem}")
        values[p.name] = value
    if problems:
        raise ParameterError(node.get_name(), problems)
    node.add_on_set_parameters_callback(lambda changes: _refuse_changes(changes, known))
    return SimpleNamespace(**values)


def _coerce(p: Param, raw: Any) -> tuple[Any, str | None]:
    kind = p.kind
    if kind is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            return raw, f"must be a number, got {raw!r}"
        if not math.isfinite(raw):
            return raw, f"must be finite, got {raw}"
        return float(raw), None
    if kind is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            return raw, f"must be a whole number, got {raw!r}"
        return raw, None
    if kind is bool:
        return (raw, None) if isinstance(raw, bool) else (raw, f"must be true or false, got {raw!r}")
    if kind is str:
        return (raw, None) if isinstance(raw, str) else (raw, f"must be a string, got {raw!r}")
    if kind is list:
        if isinstance(raw, (list, tuple)):
            return list(raw), None
        # An empty list cannot carry a type through ROS parameters; accept "" for [].
        if raw == "" or raw is None:
            return [], None
        return raw, f"must be a list, got {raw!r}"
    return raw, None


def _refuse_changes(changes, known: set[str]) -> SetParametersResult:
    names = [c.name for c in changes if c.name not in _BUILT_IN]
    if not names:
        return SetParametersResult(successful=True)
    return SetParametersResult(
        successful=False, reason=f"{', '.join(names)}: read at start-up only; restart the node to change"
    )
