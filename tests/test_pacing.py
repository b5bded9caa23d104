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


def test_stamps_stay_on_the_clock_when_simulated_time_slips():
    """A robot stand-in stamps each state with ``clock_at`` its simulated time. A process too
    slow for its robots stalls again and again; its stamps must not fall behind the clock
    (the soak saw odometry stamped 13 minutes late after 20), only by the catch-up bound."""
    clock = FakeClock()
    step = 1 / 60
    pacer = Pacer(step_s=step, real_time_factor=1.0, max_catch_up_s=0.25, clock=clock)
    assert pacer.clock_at(0.0) == 100.0
    steps = 0
    for _ in range(200):  # ticks a second apart (a stalled process): 200 s of clock
        clock.now += 1.0
        due, _ = pacer.due()
        pacer.took(due)
        steps += due
        assert clock.now - pacer.clock_at(steps * step) < 0.25 + 1e-9
    assert steps * step == pytest.approx(200 * 0.25, abs=step)  # simulated time did slip
    assert pacer.slipped_s == pytest.approx(200.0 - steps * step, abs=1e-6)  # and says how far
    assert pacer.clock_at(steps * step) == pytest.approx(clock.now, abs=1e-9)


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
