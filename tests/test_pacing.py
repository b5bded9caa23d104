"""Pacing the simulation against the wall clock: on time, never in long bursts."""

from __future__ import annotations

import pytest

from sim_bridge.pacing import Pacer


class FakeClock:
    """A wall clock the test moves by hand (time itself cannot be made to stall on cue)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_steps_come_due_at_the_real_time_factor():
    clock = FakeClock()
    pacer = Pacer(step_s=0.05, real_time_factor=2.0, clock=clock)
    assert pacer.due() == (0, False)
    clock.now += 0.1  # 0.2 s simulated at 2x: four steps
    assert pacer.due() == (4, False)
    pacer.took(4)
    clock.now += 0.024
    assert pacer.due() == (0, False)
    clock.now += 0.002
    assert pacer.due() == (1, False)


def test_far_behind_it_slips_instead_of_bursting():
    clock = FakeClock()
    pacer = Pacer(step_s=1 / 60, real_time_factor=1.0, max_catch_up_s=0.25, clock=clock)
    clock.now += 3.0  # a 3 s stall: 180 steps late
    due, slipped = pacer.due()
    assert (due, slipped) == (15, True)  # a quarter second caught up, the rest let go
    pacer.took(due)
    assert pacer.due() == (0, False)  # on time again from here
    clock.now += 0.1
    assert pacer.due() == (6, False)


def test_a_control_period_in_lockstep_is_due_on_time_and_a_slow_controller_is_not_caught_up_on():
    clock = FakeClock()
    pacer = Pacer(step_s=0.05, real_time_factor=4.0, clock=clock)
    assert not pacer.block_due(1)
    clock.now += 0.0125
    assert pacer.block_due(1)
    pacer.took(1)
    clock.now += 2.0  # the controller took 2 s: 160 periods late
    assert pacer.block_due(1)
    pacer.took(1)
    assert not pacer.block_due(1)  # then at the pace again, no burst of 160


def test_refuses_pacing_that_cannot_be():
    with pytest.raises(ValueError, match="real_time_factor > 0"):
        Pacer(0.05, 0.0)
