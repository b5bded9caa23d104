"""Launch substitutions, as the ROS 2 launch frontend writes them: ``$(var NAME [DEFAULT])``,
``$(env NAME [DEFAULT])``, ``$(find-pkg-share PKG)``, ``$(find-pkg-prefix PKG)``,
``$(eval EXPR)``, ``$(not X)``, ``$(and A B)``, ``$(or A B)``, ``$(equals A B)``,
``$(not-equals A B)``, ``$(anon NAME)``, ``$(dirname)``.

Arguments are separated by single spaces; ``'…'`` or ``"…"`` quote an argument (and may
hold spaces and nested substitutions); backslash escapes ``$ ( ) ' " \\``. ``$(eval)``
accepts Python expressions over literals, comparisons, boolean and arithmetic operators
and ``math`` functions only: never arbitrary code.
"""

from __future__ import annotations

import ast
import math
import operator
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class LaunchError(ValueError):
    """A launch file that cannot be run as written (usage error)."""


@dataclass
class Context:
    """What substitutions can see while a launch file is being expanded."""

    configurations: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    current_file: Path | None = None
    find_package_share: Callable[[str], Path] | None = None
    find_package_prefix: Callable[[str], Path] | None = None
    anon_names: dict[str, str] = field(default_factory=dict)


def expand(text: str, ctx: Context) -> str:
    """``text`` with every substitution replaced."""
    parser = _Parser(text, ctx)
    out = parser.text(stop=None)
    return out


class _Parser:
    def __init__(self, src: str, ctx: Context):
        self.src = src
        self.i = 0
        self.ctx = ctx

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if j < len(self.src) else ""

    def text(self, stop: str | None) -> str:
        """Literal text and substitutions up to ``stop`` (a closing quote) or the end."""
        out = []
        while self.i < len(self.src):
            c = self._peek()
            if stop is not None and c == stop:
                break
            if c == "\\" and self._peek(1) in "$()'\"\\":
                out.append(self._peek(1))
                self.i += 2
            elif c == "$" and self._peek(1) == "(":
                out.append(self.substitution())
            else:
                out.append(c)
                self.i += 1
        return "".join(out)

    def substitution(self) -> str:
        start = self.i
        self.i += 2  # "$("
        name_start = self.i
        while self.i < len(self.src) and (self._peek().isalnum() or self._peek() in "-_"):
            self.i += 1
        name = self.src[name_start : self.i]
        if not name:
            raise LaunchError(f"substitution without a name at: {self.src[start:]!r}")
        args: list[str] = []
        while True:
            c = self._peek()
            if c == ")":
                self.i += 1
                break
            if c == " ":
                self.i += 1
                args.append(self.argument())
                continue
            if c == "":
                raise LaunchError(f"unclosed substitution $({name} …) in {self.src!r}")
            raise LaunchError(f"unexpected {c!r} in $({name} …) in {self.src!r}")
        return _evaluate(name, args, self.ctx)

    def argument(self) -> str:
        c = self._peek()
        if c in ("'", '"'):
            self.i += 1
            value = self.text(stop=c)
            if self._peek() != c:
                raise LaunchError(f"unclosed quote in {self.src!r}")
            self.i += 1
            return value
        out = []
        while self.i < len(self.src):
            c = self._peek()
            if c in " )":
                break
            if c == "\\" and self._peek(1) in "$()'\"\\":
                out.append(self._peek(1))
                self.i += 2
            elif c == "$" and self._peek(1) == "(":
                out.append(self.substitution())
            else:
                out.append(c)
                self.i += 1
        return "".join(out)


def _truthy(value: str, what: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise LaunchError(f"{what}: expected one of true, 1, false, 0; got {value!r}")


def _need(name: str, args: list[str], low: int, high: int) -> None:
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise LaunchError(f"$({name}) takes {want} argument(s), got {len(args)}: {args}")


def _evaluate(name: str, args: list[str], ctx: Context) -> str:
    if name == "var":
        _need(name, args, 1, 2)
        if args[0] in ctx.configurations:
            return ctx.configurations[args[0]]
        if len(args) == 2:
            return args[1]
        raise LaunchError(f"launch argument '{args[0]}' does not exist (no arg of that name, no default)")
    if name == "env":
        _need(name, args, 1, 2)
        if args[0] in ctx.environment:
            return ctx.environment[args[0]]
        if len(args) == 2:
            return args[1]
        raise LaunchError(f"environment variable '{args[0]}' does not exist; write $(env {args[0]} '') to allow that")
    if name in ("find-pkg-share", "find-pkg-prefix"):
        _need(name, args, 1, 1)
        finder = ctx.find_package_share if name == "find-pkg-share" else ctx.find_package_prefix
        if finder is None:
            raise LaunchError(f"$({name}) is not available here")
        return str(finder(args[0]))
    if name == "dirname":
        _need(name, args, 0, 0)
        if ctx.current_file is None:
            raise LaunchError("$(dirname) outside a launch file")
        return str(ctx.current_file.parent)
    if name == "anon":
        _need(name, args, 1, 1)
        if args[0] not in ctx.anon_names:
            ctx.anon_names[args[0]] = (
                f"{args[0]}_{socket.gethostname()}_{os.getpid()}_{random.randint(0, 10**9)}".replace("-", "_").replace(
                    ".", "_"
                )
            )
        return ctx.anon_names[args[0]]
    if name == "not":
        _need(name, args, 1, 1)
        return "false" if _truthy(args[0], "$(not)") else "true"
    if name in ("and", "or"):
        _need(name, args, 2, 2)
        a, b = _truthy(args[0], f"$({name})"), _truthy(args[1], f"$({name})")
        return "true" if (a and b if name == "and" else a or b) else "false"
    if name in ("equals", "not-equals"):
        _need(name, args, 2, 2)
        same = args[0] == args[1]
        return "true" if same == (name == "equals") else "false"
    if name == "eval":
        _need(name, args, 1, 2)
        return str(safe_eval(args[0]))
    raise LaunchError(
        f"unknown substitution $({name}); supported: var, env, find-pkg-share, find-pkg-prefix, eval, "
        "not, and, or, equals, not-equals, anon, dirname"
    )


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_NAMES = {k: v for k, v in vars(math).items() if not k.startswith("_")} | {"True": True, "False": False}


def safe_eval(expression: str):
    """Evaluate a restricted Python expression (what launch files put in ``$(eval)``)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise LaunchError(f"$(eval {expression!r}): not a Python expression ({err.msg})") from None
    return _eval_node(tree.body, expression)


def _eval_node(node, src: str):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _NAMES:
            return _NAMES[node.id]
        raise LaunchError(f"$(eval {src!r}): unknown name {node.id!r}")
    if isinstance(node, ast.BoolOp):
        values = [_eval_node(v, src) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        operand = _eval_node(node.operand, src)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return +operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval_node(node.left, src), _eval_node(node.right, src))
    if isinstance(node, ast.Compare):
        left = _eval_node(node.left, src)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval_node(comparator, src)
            if type(op) not in _COMPARE or not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval_node(node.body, src) if _eval_node(node.test, src) else _eval_node(node.orelse, src)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_eval_node(e, src) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _NAMES and not node.keywords:
        fn = _NAMES[node.func.id]
        if callable(fn):
            return fn(*[_eval_node(a, src) for a in node.args])
    raise LaunchError(f"$(eval {src!r}): only literals, comparisons, and/or/not, arithmetic and math functions")
