"""Launch substitutions, as the ROS 2 launch frontend writes them: ``$(var NAME [DEFAULT])``,
``$(env NAME [DEFAULT])``, ``$(find-pkg-share PKG)``, ``$(find-pkg-prefix PKG)``,
``$(exec-in-pkg EXEC PKG)``, ``$(find-exec NAME)``, ``$(file-content PATH)``,
``$(eval EXPR)``, ``$(not X)``, ``$(and A B)``, ``$(or A B)``, ``$(all A ...)``,
``$(any A ...)``, ``$(if COND THEN [ELSE])``, ``$(equals A B)``, ``$(not-equals A B)``,
``$(anon NAME)``, ``$(dirname)``, ``$(filename)``.

Arguments are separated by single spaces; ``'…'`` or ``"…"`` quote an argument (and may
hold spaces and nested substitutions); backslash escapes ``$ ( ) ' " \\``. Booleans are read
as ros2 launch reads them (``1``/``0`` and YAML's true/false/yes/no/on/off); ``equals``
compares booleans and numbers by value. ``$(eval)`` is a bounded, code-free subset of Python
(see ``sim_bridge.launch.safe_eval``). ``$(dirname)``/``$(filename)`` name the file they are
written in (ros2 launch 3.7.1 keeps naming the last included file after an ``include``).
"""

from __future__ import annotations

import math
import os
import random
import shlex
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sim_bridge.launch.errors import LaunchError
from sim_bridge.launch.safe_eval import safe_eval

__all__ = ["Context", "LaunchError", "expand", "expand_command", "expand_tracking", "safe_eval", "yaml_bool"]


@dataclass
class Context:
    """What substitutions can see while a launch file is being expanded."""

    configurations: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    current_file: Path | None = None
    find_package_share: Callable[[str], Path] | None = None
    find_package_prefix: Callable[[str], Path] | None = None
    find_executable: Callable[[str, str], Path] | None = None
    anon_names: dict[str, str] = field(default_factory=dict)


def expand(text: str, ctx: Context) -> str:
    """``text`` with every substitution replaced."""
    return expand_tracking(text, ctx)[0]


def expand_command(text: str, ctx: Context) -> list[str]:
    """``text`` split into command-line words as ros2 launch splits ``cmd``/``args``: the
    literal text by shell rules, while a substitution's value stays inside the word it is
    written in, spaces and all (``--world $(var w)`` is two words whatever ``w`` holds)."""
    parser = _Parser(text, ctx)
    words: list[list[str]] = []
    word: list[str] = []
    for is_substitution, piece in parser.segments():
        if is_substitution:
            word.append(piece)
            continue
        try:
            tokens = shlex.split(piece)
        except ValueError as err:
            raise LaunchError(f"cannot split {text!r} into words ({err})") from None
        if not tokens:
            if word and piece:
                words.append(word)
                word = []
            continue
        if piece[0].isspace() and word:
            words.append(word)
            word = []
        word.append(tokens[0])
        if len(tokens) > 1:
            words.append(word)
            words.extend([t] for t in tokens[1:-1])
            word = [tokens[-1]]
        if piece[-1].isspace():
            words.append(word)
            word = []
    if word:
        words.append(word)
    return ["".join(w) for w in words]


def expand_tracking(text: str, ctx: Context) -> tuple[str, bool]:
    """``text`` with every substitution replaced, and whether it held any substitution
    (ros2 launch reads a parameter value as YAML only then)."""
    parser = _Parser(text, ctx)
    out = parser.text(stop=None)
    return out, parser.substitutions > 0


class _Parser:
    def __init__(self, src: str, ctx: Context):
        self.src = src
        self.i = 0
        self.ctx = ctx
        self.substitutions = 0

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if j < len(self.src) else ""

    def segments(self) -> list[tuple[bool, str]]:
        """The whole text as (is_substitution, text) pieces, literal escapes resolved."""
        out: list[tuple[bool, str]] = []
        literal: list[str] = []
        while self.i < len(self.src):
            c = self._peek()
            if c == "\\" and self._peek(1) in "$()'\"\\":
                literal.append(self._peek(1))
                self.i += 2
            elif c == "$" and self._peek(1) == "(":
                if literal:
                    out.append((False, "".join(literal)))
                    literal = []
                out.append((True, self.substitution()))
            else:
                literal.append(c)
                self.i += 1
        if literal:
            out.append((False, "".join(literal)))
        return out

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
        self.substitutions += 1
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


def yaml_bool(value: str, what: str) -> bool:
    """``value`` as a boolean the way ros2 launch coerces one: ``1``/``0`` or a YAML boolean."""
    v = value.strip()
    if v in ("1", "0"):
        return v == "1"
    try:
        parsed = yaml.safe_load(v) if v else None
    except yaml.YAMLError:
        parsed = None
    if isinstance(parsed, bool):
        return parsed
    raise LaunchError(f"{what}: expected a boolean (true, false, 1 or 0); got {value!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _equal(left: str, right: str) -> bool:
    """ros2 launch's ``equals``: booleans by truth, numbers by closeness, else the text."""
    bools = ("true", "false", "1", "0")
    if left.lower() in bools and right.lower() in bools:
        return (left.lower() in ("true", "1")) == (right.lower() in ("true", "1"))
    if _is_number(left) and _is_number(right):
        return math.isclose(float(left), float(right))
    return left == right


def _need(name: str, args: list[str], low: int, high: int | None) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        want = str(low) if low == high else (f"{low} to {high}" if high is not None else f"at least {low}")
        raise LaunchError(f"$({name}) takes {want} argument(s), got {len(args)}: {args}")


def _text(value: bool) -> str:
    return "true" if value else "false"


_SUPPORTED = (
    "var, env, find-pkg-share, find-pkg-prefix, exec-in-pkg, find-exec, file-content, eval, not, and, or, "
    "all, any, if, equals, not-equals, anon, dirname, filename"
)
_ROS2_ONLY = {"command", "log_dir", "launch_log_dir"}


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
    if name == "exec-in-pkg":
        _need(name, args, 2, 2)
        if ctx.find_executable is None:
            raise LaunchError(f"$({name}) is not available here")
        return str(ctx.find_executable(args[1], args[0]))
    if name == "find-exec":
        _need(name, args, 1, 1)
        found = shutil.which(args[0], path=ctx.environment.get("PATH", os.defpath))
        if found is None:
            raise LaunchError(f"$(find-exec {args[0]}): no executable of that name on PATH")
        return found
    if name == "file-content":
        _need(name, args, 1, 1)
        try:
            return Path(args[0]).read_text()
        except OSError as err:
            raise LaunchError(f"$(file-content {args[0]}): cannot read it ({err.strerror})") from None
    if name in ("dirname", "filename"):
        _need(name, args, 0, 0)
        if ctx.current_file is None:
            raise LaunchError(f"$({name}) outside a launch file")
        return str(ctx.current_file.parent if name == "dirname" else ctx.current_file)
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
        return _text(not yaml_bool(args[0], "$(not)"))
    if name in ("and", "or"):
        _need(name, args, 2, 2)
        a, b = yaml_bool(args[0], f"$({name})"), yaml_bool(args[1], f"$({name})")
        return _text(a and b if name == "and" else a or b)
    if name in ("all", "any"):
        _need(name, args, 0, None)
        values = [yaml_bool(a, f"$({name})") for a in args]
        return _text(all(values) if name == "all" else any(values))
    if name == "if":
        _need(name, args, 2, 3)
        return args[1] if yaml_bool(args[0], "$(if)") else (args[2] if len(args) == 3 else "")
    if name in ("equals", "not-equals"):
        _need(name, args, 2, 2)
        return _text(_equal(args[0], args[1]) == (name == "equals"))
    if name == "eval":
        _need(name, args, 1, 2)
        modules = [m.strip() for m in args[1].split(",") if m.strip()] if len(args) == 2 else None
        return str(safe_eval(args[0], modules))
    if name in _ROS2_ONLY:
        raise LaunchError(
            f"$({name}) exists in ros2 launch but sern launch does not support it; supported: {_SUPPORTED}"
        )
    raise LaunchError(f"unknown substitution $({name}); supported: {_SUPPORTED}")
