"""``$(eval EXPR)`` without arbitrary code and with a bounded cost.

ros2 launch (launch 3.7.1, ``PythonExpression``) hands the text to Python's ``eval`` with
``math`` in scope: ``$(eval '9**9**9')`` then computes a 370-million-digit integer and the
launch hangs, and ``$(eval '1/0')`` ends it with a Python exception. Here the expression is
an AST walked node by node over the subset launch files use: literals, tuples and lists,
arithmetic, bit shifts and masks, comparisons, ``and``/``or``/``not``, ``x if c else y``,
indexing, ``math`` functions and constants (as ``sqrt(2)`` or ``math.sqrt(2)``) and the
builtins ``abs int float str bool len min max round``. Work is bounded before it is done, in
this thread: an integer may hold at most ``MAX_INT_BITS`` bits (``**``, ``*`` and ``<<`` check
their operands first), a string or list at most ``MAX_SEQUENCE_LEN`` items (``*`` and ``+``
check first; ``%`` formatting of strings is refused, its width field allocates), the
expression at most ``MAX_NODES`` syntax nodes, and the whole evaluation ``MAX_SECONDS``.
Every failure (division by zero, overflow, a math domain error such as ``sqrt(-1)``, a type
error, a bound) is a ``LaunchError`` that quotes the expression.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from typing import Any

from sim_bridge.launch.errors import LaunchError

MAX_INT_BITS = 4096  # 10**1233: ample for launch arithmetic, instant to compute and print
MAX_SEQUENCE_LEN = 100_000
MAX_NODES = 2_000
MAX_SECONDS = 1.0
_MAX_COMBINATORIAL_ARG = 10_000  # factorial/comb/perm cost grows with the argument, not the result

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
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
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_MATH = {k: v for k, v in vars(math).items() if not k.startswith("_")}
_BUILTINS = {
    "abs": abs,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "len": len,
    "min": min,
    "max": max,
    "round": round,
}
_CONSTANTS = {"True": True, "False": False, "None": None}


class _Bounds(Exception):
    """An operation refused because its result would be too large."""


def safe_eval(expression: str, modules: list[str] | None = None) -> Any:
    """The value of a restricted Python ``expression`` (what launch files put in ``$(eval)``).

    ``modules`` is ``$(eval)``'s optional second argument; only ``math`` (always in scope, as
    in ros2 launch) is available.
    """
    shown = expression if len(expression) <= 200 else expression[:200] + "…"
    for module in modules or []:
        if module != "math":
            raise LaunchError(f"$(eval {shown!r} {module!r}): sern launch offers only the math module to $(eval)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise LaunchError(f"$(eval {shown!r}): not a Python expression ({err.msg})") from None
    except (MemoryError, RecursionError, ValueError):
        raise LaunchError(f"$(eval {shown!r}): expression too deeply nested") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise LaunchError(f"$(eval {shown!r}): expression too long ({nodes} syntax nodes; at most {MAX_NODES})")
    evaluator = _Evaluator(time.monotonic() + MAX_SECONDS)
    try:
        return evaluator.eval(tree.body)
    except LaunchError as err:
        raise LaunchError(f"$(eval {shown!r}): {err}") from None
    except _Bounds as err:
        raise LaunchError(f"$(eval {shown!r}): {err}") from None
    except ZeroDivisionError:
        raise LaunchError(f"$(eval {shown!r}): division by zero") from None
    except OverflowError as err:
        raise LaunchError(f"$(eval {shown!r}): overflow ({err})") from None
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise LaunchError(f"$(eval {shown!r}): {type(err).__name__}: {err}") from None
    except (MemoryError, RecursionError):
        raise LaunchError(f"$(eval {shown!r}): too costly to evaluate") from None


def _check_size(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Bounds(f"integer result has more than {MAX_INT_BITS} bits")
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_SEQUENCE_LEN:
        raise _Bounds(f"result longer than {MAX_SEQUENCE_LEN} items")
    return value


def _bits(value: Any) -> int:
    return abs(int(value)).bit_length() if isinstance(value, int) else 0


def _check_binary(op: type, left: Any, right: Any) -> None:
    """Refuse an operation whose result would break a bound, before computing it."""
    ints = isinstance(left, int) and isinstance(right, int)
    if op is ast.Pow and ints and right > 0 and abs(left) > 1:
        if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
            raise _Bounds(f"{left} ** {right} would exceed {MAX_INT_BITS} bits")
    elif op is ast.Mult and ints:
        if _bits(left) + _bits(right) > MAX_INT_BITS + 1:
            raise _Bounds(f"product would exceed {MAX_INT_BITS} bits")
    elif op is ast.Mult:
        seq, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
        if (
            isinstance(seq, (str, list, tuple))
            and isinstance(count, int)
            and len(seq) * max(count, 0) > MAX_SEQUENCE_LEN
        ):
            raise _Bounds(f"repetition would be longer than {MAX_SEQUENCE_LEN} items")
    elif op is ast.Add and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        if len(left) + len(right) > MAX_SEQUENCE_LEN:
            raise _Bounds(f"concatenation would be longer than {MAX_SEQUENCE_LEN} items")
    elif op is ast.LShift and ints and right > 0 and _bits(left) + right > MAX_INT_BITS:
        raise _Bounds(f"{left} << {right} would exceed {MAX_INT_BITS} bits")
    elif op is ast.Mod and isinstance(left, (str, bytes)):
        raise LaunchError("%-formatting of strings is not supported; build the text with + and str()")


class _Evaluator:
    def __init__(self, deadline: float):
        self.deadline = deadline

    def eval(self, node: ast.AST) -> Any:
        if time.monotonic() > self.deadline:
            raise _Bounds(f"took longer than {MAX_SECONDS:g} s")
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            raise LaunchError(
                f"{type(node).__name__} is not allowed: only literals, arithmetic, comparisons, and/or/not, "
                "x if c else y, indexing, math functions and abs/int/float/str/bool/len/min/max/round"
            )
        return _check_size(method(node))

    def eval_Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise LaunchError(f"{type(node.value).__name__} literals are not allowed")
        return node.value

    def eval_Name(self, node: ast.Name) -> Any:
        for table in (_CONSTANTS, _MATH, _BUILTINS):
            if node.id in table:
                return table[node.id]
        if node.id == "math":
            return math
        raise LaunchError(f"unknown name {node.id!r}")

    def eval_Attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in _MATH:
            return _MATH[node.attr]
        raise LaunchError("attribute access is allowed only on math (e.g. math.pi)")

    def eval_Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.eval(e) for e in node.elts)

    def eval_List(self, node: ast.List) -> list:
        return [self.eval(e) for e in node.elts]

    def eval_BoolOp(self, node: ast.BoolOp) -> Any:
        # Python's semantics: short-circuit, and the value is the deciding operand
        value = None
        for operand in node.values:
            value = self.eval(operand)
            if bool(value) != isinstance(node.op, ast.And):
                return value
        return value

    def eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return +operand
        if isinstance(node.op, ast.Invert):
            return ~operand
        raise LaunchError(f"unary {type(node.op).__name__} is not allowed")

    def eval_BinOp(self, node: ast.BinOp) -> Any:
        op = type(node.op)
        if op not in _BINARY:
            raise LaunchError(f"operator {op.__name__} is not allowed")
        left, right = self.eval(node.left), self.eval(node.right)
        _check_binary(op, left, right)
        return _BINARY[op](left, right)

    def eval_Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def eval_IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def eval_Subscript(self, node: ast.Subscript) -> Any:
        container = self.eval(node.value)
        if isinstance(node.slice, ast.Slice):
            parts = [None if p is None else self.eval(p) for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            return container[slice(*parts)]
        return container[self.eval(node.slice)]

    def eval_Call(self, node: ast.Call) -> Any:
        fn = self.eval(node.func)
        if node.keywords or not callable(fn) or any(isinstance(a, ast.Starred) for a in node.args):
            raise LaunchError("only plain calls of math functions and abs/int/float/str/bool/len/min/max/round")
        args = [self.eval(a) for a in node.args]
        combinatorial = fn in (math.factorial, math.comb, math.perm)
        if combinatorial and any(isinstance(a, int) and abs(a) > _MAX_COMBINATORIAL_ARG for a in args):
            raise _Bounds(f"{fn.__name__}() arguments above {_MAX_COMBINATORIAL_ARG} are refused")
        if fn is round and len(args) == 2 and isinstance(args[1], int) and abs(args[1]) > 1000:
            raise _Bounds("round() to more than 1000 digits is refused")
        return fn(*args)
