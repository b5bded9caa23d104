"""``$(eval)``: Python's semantics on the subset launch files use, bounded cost, and every
evaluation error a launch error with the file (exit 2 through ``sern launch``).

ros2 launch 3.7.1 hands the text to ``eval`` with ``math`` in scope: ``9**9**9`` hangs it and
``1/0`` ends it with a Python exception. Here both are errors that name the file.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from launch_helpers import write_launch

from sim_bridge.launch import LaunchError
from sim_bridge.launch.safe_eval import MAX_INT_BITS, MAX_SEQUENCE_LEN, safe_eval

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "expression, value",
    [
        ("2**10", 1024),
        ("-2**3", -8),
        ("2**-1", 0.5),
        ("7 // 2 + 7 % 2", 4),
        ("1 << 10 | 3", 1027),
        ("math.pi > 3.14 and pi < 3.15", True),
        ("sqrt(16) == math.sqrt(16.0)", True),
        ("max(1, 2, 3) + min([4, 5]) + abs(-1) + len('abc')", 11),
        ("int('42') + float('0.5')", 42.5),
        ("round(2.567, 2)", 2.57),
        ("(1, 2)", (1, 2)),
        ("'abc'[1] + 'abc'[-2:]", "bbc"),
        ("1 if 'x' in ('x', 'y') else 2", 1),
        ("0 or 'fallback'", "fallback"),  # and/or return the deciding operand, as in Python
        ("'' and 1/0", ""),  # and short-circuits
        ("1 < 2 < 3 != 4", True),
        ("None is None", True),
        ("2**" + str(MAX_INT_BITS - 1), 2 ** (MAX_INT_BITS - 1)),
        ("'ab' * 10", "ab" * 10),
        ("factorial(20)", 2432902008176640000),
    ],
)
def test_eval_values(expression, value):
    assert safe_eval(expression) == value


@pytest.mark.parametrize(
    "expression, message",
    [
        # costs that must be refused before they are paid (each would take minutes or GBs)
        ("9**9**9", "would exceed"),
        ("2**100000", "would exceed"),
        ("10**10**10", "would exceed"),
        ("(10**1000)*(10**1000)*(10**1000)*(10**1000)*(10**1000)", "exceed"),
        ("'a'*10**9", "repetition would be longer"),
        ("[0]*10**9", "repetition would be longer"),
        ("10**9*'a'", "repetition would be longer"),
        ("1<<10**9", "would exceed"),
        ("factorial(10**6)", "factorial() arguments above"),
        ("comb(10**7, 5*10**6)", "comb() arguments above"),
        ("round(7, -10**9)", "round() to more than"),
        ("'%0999999999d' % 1", "%-formatting of strings is not supported"),
        ("[" + ",".join(["1"] * 3000) + "]", "expression too long"),
        ("+".join(["1"] * 3000), "too deeply nested"),
        # evaluation errors
        ("1/0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("2.0**10000", "overflow"),
        ("exp(1000)", "overflow"),
        ("sqrt(-1)", "ValueError: math domain error"),
        ("math.log(0)", "ValueError"),
        ("acos(2)", "ValueError: math domain error"),
        ("'a' + 1", "TypeError"),
        ("-'a'", "TypeError"),
        ("[1][5]", "IndexError"),
        ("int('x')", "ValueError"),
        ("1 +", "not a Python expression"),
        # no code
        ("__import__('os')", "unknown name '__import__'"),
        ("open('/etc/passwd')", "unknown name 'open'"),
        ("().__class__", "attribute access is allowed only on math"),
        ("math.__dict__", "attribute access is allowed only on math"),
        ("(lambda: 1)()", "Lambda is not allowed"),
        ("[i for i in (1, 2)]", "ListComp is not allowed"),
        ("int(x='1')", "only plain calls"),
        ("b'x'", "bytes literals are not allowed"),
    ],
)
def test_eval_bounded_and_errors_are_launch_errors(expression, message):
    started = time.monotonic()
    with pytest.raises(LaunchError) as info:
        safe_eval(expression)
    assert message in str(info.value), str(info.value)
    assert str(info.value).startswith("$(eval "), "the error quotes the expression"
    assert time.monotonic() - started < 2.0, "refused before doing the work"


def test_eval_results_stay_small():
    with pytest.raises(LaunchError, match="longer than"):
        safe_eval("'x' * 1000 + 'y' * " + str(MAX_SEQUENCE_LEN))
    with pytest.raises(LaunchError, match="sern launch offers only the math module"):
        safe_eval("1", modules=["os"])
    assert safe_eval("math.floor(2.5)", modules=["math"]) == 2


@pytest.mark.parametrize(
    "where, expression, message",
    [
        ("cmd", "9**9**9", "9 ** 387420489 would exceed"),
        ("if", "1/0", "division by zero"),
        ("param", "sqrt(-1)", "math domain error"),
        ("arg", 'int("seven")', "ValueError: invalid literal for int()"),
    ],
)
def test_eval_errors_through_sern_launch(tmp_path, where, expression, message):
    """Through the CLI: exit 2, the file and line named, no traceback, no hang."""
    sub = f"$(eval '{expression}')"
    actions = {
        "cmd": [{"executable": {"cmd": f"echo {sub}"}}],
        "if": [{"executable": {"cmd": "echo x", "if": sub}}],
        "param": [{"node": {"pkg": "sern", "exec": "sim_node", "param": [{"name": "p", "value": sub}]}}],
        "arg": [{"arg": {"name": "n", "default": sub}}],
    }[where]
    path = write_launch(tmp_path / "eval_launch.yaml", actions)
    started = time.monotonic()
    res = subprocess.run(
        [str(BIN / "sern"), "launch", "--no-ros2", str(path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith(f"sern launch: error: {path}:"), res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert time.monotonic() - started < 30
