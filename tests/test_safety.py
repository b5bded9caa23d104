"""Command gate: NaN/inf refused, out-of-limit clamped, stale commands time out."""

from __future__ import annotations

import math

import pytest

from sim_bridge.safety import CommandGate, Throttle, Verdict
from worlds.robots import HUSKY


def test_good_commands_pass_and_time_out():
    gate = CommandGate(HUSKY.limits, timeout_s=0.5)
    assert gate.current(0.0) == (0.0, 0.0)  # nothing yet: stand still
    r = gate.submit(0.5, -0.2, now_s=1.0)
    assert r.verdict is Verdict.ACCEPTED and r.command == (0.5, -0.2)
    assert gate.current(1.4) == (0.5, -0.2)
    assert gate.current(1.51) == (0.0, 0.0)
    assert gate.stopped_by_watchdog
    gate.submit(0.1, 0.0, now_s=2.0)
    assert not gate.stopped_by_watchdog


def test_out_of_limit_commands_are_clamped_with_a_reason():
    gate = CommandGate(HUSKY.limits)
    r = gate.submit(3.0, -9.0, now_s=0.0)
    assert r.verdict is Verdict.CLAMPED
    assert r.command == (1.0, -2.0)
    assert "clamped to (v=1, ω=-2)" in r.reason


@pytest.mark.parametrize("bad", [(math.nan, 0.0), (0.0, math.inf), (-math.inf, 1.0)])
def test_non_finite_commands_are_rejected_and_the_last_good_one_stands(bad):
    gate = CommandGate(HUSKY.limits)
    gate.submit(0.3, 0.1, now_s=0.0)
    r = gate.submit(*bad, now_s=0.1)
    assert r.verdict is Verdict.REJECTED and "non-finite" in r.reason
    assert gate.current(0.2) == (0.3, 0.1)
    assert gate.current(0.6) == (0.0, 0.0)  # and a NaN does not refresh the watchdog


def test_bad_timeout_is_refused():
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        CommandGate(HUSKY.limits, timeout_s=0.0)


def test_throttle():
    th = Throttle(2.0)
    assert th.ready("a", 0.0) and not th.ready("a", 1.0) and th.ready("b", 1.0) and th.ready("a", 2.5)
