"""Keeping a virtual twin on its physical robot's pose: a predictor–corrector.

The physical robot's pose reaches the twin's site late (link delay), irregularly (jitter,
reordering, duplicates) or not at all (loss, outages), stamped with the robot's clock,
which may be offset from ours. The commands the robot executes are seen at the twin's
site *before* the robot gets them. So, for every robot:

- **correct**: the newest measurement (by stamp) resets the estimate to the measured pose
  and velocity at the measured time;
- **predict**: from there, a motion model (unicycle, first-order velocity response under
  the robot's acceleration limits) is rolled forward to "now" through the commands the
  robot was executing meanwhile: those issued one command delay earlier, none once the
  robot's own watchdog would have stopped it, and none issued while the link is down;
- **adapt**: the velocity gains of the model are learnt online from measured velocities,
  so slip or a different motor response does not bias the prediction;
- **smooth** (optional): the published twin can converge on the estimate with a time
  constant instead of jumping, snapping only on large corrections.

Delay is measured per message (receive time minus stamp, corrected for the clock offset);
when stamps are implausible (from the future, or seconds old on arrival) the offset is
estimated from the minimum observed delay. Everything here is pure Python: the ROS node
feeds it messages and its clock.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from dataclasses import dataclass, field

from worlds.robots import Limits


@dataclass(frozen=True)
class SyncConfig:
    """Tuning of one robot's twin synchroniser."""

    limits: Limits
    motor_time_constant_s: float = 0.1
    """Model: first-order lag of the robot's velocity behind its command (initial value)."""
    candidate_time_constants_s: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    """Lags tried side by side on the live data; the one that predicts best is used."""
    lag_scoring_period_s: float = 0.1
    """The candidate lags are scored at most this often (a scoring rolls the model once per
    candidate); the scores' averaging weighs the measurements in between all the same."""
    command_delay_s: float | None = None
    """Twin site → robot delay of commands; ``None`` = the measured odom delay (symmetric link)."""
    cmd_timeout_s: float = 0.5
    """The robot's own watchdog: it stops this long after its last command."""
    outage_after_s: float = 0.25
    """No measurement for this long: assume commands are not getting through either."""
    clock_offset_s: float | None = None
    """Robot clock minus local clock, if known; ``None`` = trust stamps, estimate if implausible."""
    max_plausible_delay_s: float = 2.0
    min_delay_s: float = 0.0005
    """Assumed one-way delay floor, used only when the clock offset must be estimated."""
    integration_step_s: float = 0.005
    max_prediction_s: float = 3.0
    """Beyond this age a measurement is not extrapolated further (the robot is assumed stopped)."""
    correction_time_constant_s: float = 0.0
    """0: the twin jumps to each new estimate. > 0: corrections blend in with this time constant."""
    snap_distance_m: float = 0.25
    """Corrections larger than this are applied at once even when smoothing."""
    adapt_gains: bool = True
    gain_learning_rate: float = 0.05
    history_s: float = 10.0


@dataclass
class TwinState:
    """Pose ``x, y, yaw`` (map frame) and body twist ``v, w`` at local time ``t``."""

    t: float
    x: float
    y: float
    yaw: float
    v: float
    w: float

    def copy(self) -> TwinState:
        return TwinState(self.t, self.x, self.y, self.yaw, self.v, self.w)


@dataclass
class LinkStats:
    """What the synchroniser has observed of the link, for diagnostics."""

    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    delay_s: float = math.nan  # smoothed one-way delay of measurements
    last_delay_s: float = math.nan
    clock_offset_s: float = 0.0
    offset_estimated: bool = False
    last_error_m: float = math.nan  # twin vs. measurement at the measurement's time
    last_yaw_error_deg: float = math.nan
    gains: tuple[float, float] = (1.0, 1.0)
    time_constant_s: float = math.nan
    window: deque = field(default_factory=lambda: deque(maxlen=500))  # recent stamps, arrival order

    @property
    def loss(self) -> float:
        """Fraction of measurements that never arrived, over the recent window (computed when
        read: diagnostics ask once a second, measurements arrive at tens of Hz per robot)."""
        stamps = sorted(self.window)
        if len(stamps) < 10:
            return 0.0
        gaps = sorted(b - a for a, b in itertools.pairwise(stamps) if b > a)
        period = gaps[len(gaps) // 4] if gaps else 0.0  # lower quartile: the nominal period
        if period <= 0:
            return 0.0
        expected = (stamps[-1] - stamps[0]) / period + 1
        return max(0.0, 1.0 - len(stamps) / expected)


def _time(state: TwinState) -> float:
    return state.t


def wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class TwinSync:
    """Predictor–corrector for one robot (see the module docstring)."""

    def __init__(self, config: SyncConfig):
        self.config = config
        self.stats = LinkStats()
        self._commands: list[tuple[float, float, float]] = []  # (t_local, v, w), time order
        self._anchor: TwinState | None = None  # newest measurement, in local time
        self._latest_stamp = -math.inf
        self._last_receipt = -math.inf
        self._est: TwinState | None = None  # estimate rolled forward to _est.t
        self._twin: TwinState | None = None  # what is published (== _est unless smoothing)
        self._published: deque[TwinState] = deque()
        self._raw_min: deque[float] = deque(maxlen=200)
        self._raw_lowest = math.inf  # min(self._raw_min), kept as it changes
        self._gain_v = 1.0
        self._gain_w = 1.0
        self._tau = config.motor_time_constant_s
        self._tau_scores = {tau: 0.0 for tau in config.candidate_time_constants_s}
        self._tau_unscored = 0  # measurements since the lags were last scored
        self._tau_scored_at = -math.inf
        self._anchors: deque[TwinState] = deque(maxlen=256)  # recent measurements, local time

    # ---- inputs ----------------------------------------------------------------------
    def on_command(self, t_local: float, v: float, w: float) -> None:
        """A command issued to the robot (seen here when it is published)."""
        if not (math.isfinite(v) and math.isfinite(w)):
            return  # the robot refuses these too
        lim = self.config.limits
        v = min(max(v, lim.min_linear_speed_mps), lim.max_linear_speed_mps)
        w = min(max(w, -lim.max_angular_speed_radps), lim.max_angular_speed_radps)
        if self._commands and t_local < self._commands[-1][0]:
            bisect.insort(self._commands, (t_local, v, w))
        else:
            self._commands.append((t_local, v, w))
        self._trim(t_local)
        # A command changes the future: re-roll from the anchor at the next estimate.
        if self._est is not None and t_local + self._command_delay() < self._est.t:
            self._est = None

    def on_measurement(
        self,
        t_receipt: float,
        stamp: float,
        x: float,
        y: float,
        yaw: float,
        v: float,
        w: float,
        fit_model: bool = True,
    ) -> bool:
        """A measured pose and body twist stamped ``stamp`` (robot clock), received at
        ``t_receipt`` (local clock). Returns True when it became the new anchor.
        ``fit_model=False`` skips adapting the model's gains and lag to it (for a caller
        that has newer measurements queued behind this one and fits on those)."""
        st = self.stats
        if not all(math.isfinite(q) for q in (stamp, x, y, yaw, v, w)):
            return False
        if stamp == self._latest_stamp:
            st.duplicates += 1
            return False
        raw = t_receipt - stamp  # = delay - offset
        self._note_raw_delay(raw)
        offset = self._clock_offset()
        delay = raw + offset
        st.last_delay_s = delay
        st.delay_s = delay if math.isnan(st.delay_s) else 0.9 * st.delay_s + 0.1 * delay
        st.received += 1
        st.window.append(stamp)
        self._last_receipt = max(self._last_receipt, t_receipt)
        if stamp < self._latest_stamp:
            st.out_of_order += 1
            return False
        self._latest_stamp = stamp
        t_local = stamp - offset
        self._measure_error(t_local, x, y, yaw)
        measured = TwinState(t_local, x, y, yaw, v, w)
        if fit_model and self.config.adapt_gains and self._anchor is not None:
            self._adapt(t_local, v, w)
            self._choose_time_constant(measured)
        self._anchor = measured
        self._anchors.append(measured)
        self._est = None
        return True

    # ---- output ----------------------------------------------------------------------
    def estimate(self, t_local: float) -> TwinState | None:
        """The twin's state at local time ``t_local`` (None before any measurement)."""
        if self._anchor is None:
            return None
        if self._est is None or self._est.t > t_local:
            self._est = self._anchor.copy()
        start_twin = self._twin
        self._est = self._roll(self._est, t_local)
        self._twin = self._smooth(start_twin, self._est)
        self._published.append(self._twin.copy())
        while self._published and self._published[0].t < t_local - self.config.history_s:
            self._published.popleft()
        return self._twin.copy()

    def note_published(self, state: TwinState) -> None:
        """Record a twin pose published by other means (e.g. a naive bridge), so the
        twin-error statistics cover it too."""
        self._published.append(state.copy())
        while self._published and self._published[0].t < state.t - self.config.history_s:
            self._published.popleft()

    def measurement_age_s(self, t_local: float) -> float:
        """How long ago (local clock) the newest measurement was taken."""
        return math.inf if self._anchor is None else t_local - self._anchor.t

    def link_down(self, t_local: float) -> bool:
        return t_local - self._last_receipt > self.config.outage_after_s

    # ---- model -----------------------------------------------------------------------
    def _command_delay(self) -> float:
        if self.config.command_delay_s is not None:
            return self.config.command_delay_s
        d = self.stats.delay_s
        return 0.0 if math.isnan(d) else max(d, 0.0)

    def _input(self, t: float, delay: float | None = None) -> tuple[float, float]:
        """The command the robot is executing at local time ``t`` (per its watchdog), the
        commands taking ``delay`` to reach it (default: ``_command_delay()``)."""
        issued_by = t - (self._command_delay() if delay is None else delay)
        i = bisect.bisect_right(self._commands, (issued_by, math.inf, math.inf)) - 1
        if i < 0:
            return 0.0, 0.0
        t_c, v, w = self._commands[i]
        if self.link_down(t) and t_c > self._last_receipt:
            # Issued while the link was down: assume it never reached the robot; fall back
            # to the last command sent before the outage.
            j = bisect.bisect_right(self._commands, (self._last_receipt, math.inf, math.inf)) - 1
            if j < 0:
                return 0.0, 0.0
            t_c, v, w = self._commands[j]
        if issued_by - t_c > self.config.cmd_timeout_s:
            return 0.0, 0.0
        return v, w

    def _roll(self, s: TwinState, t_end: float, tau: float | None = None) -> TwinState:
        cfg = self.config
        lim = cfg.limits
        horizon_end = min(t_end, (self._anchor.t if self._anchor else s.t) + cfg.max_prediction_s)
        h_max = cfg.integration_step_s
        tau = self._tau if tau is None else tau
        delay = self._command_delay()
        s = s.copy()
        while s.t < horizon_end - 1e-9:
            h = min(h_max, horizon_end - s.t)
            uv, uw = self._input(s.t, delay)
            tv, tw = self._gain_v * uv, self._gain_w * uw
            dv = (tv - s.v) * (h / tau if tau > 0 else 1.0)
            dw = (tw - s.w) * (h / tau if tau > 0 else 1.0)
            dv = min(max(dv, -lim.max_linear_accel_mps2 * h), lim.max_linear_accel_mps2 * h)
            dw = min(max(dw, -lim.max_angular_accel_radps2 * h), lim.max_angular_accel_radps2 * h)
            v0, w0 = s.v, s.w
            s.v += dv
            s.w += dw
            if tv == 0.0 and abs(s.v) < 1e-4:
                s.v = 0.0  # a first-order lag never quite arrives: call it stopped
            if tw == 0.0 and abs(s.w) < 1e-4:
                s.w = 0.0
            v_mid, w_mid = 0.5 * (v0 + s.v), 0.5 * (w0 + s.w)
            yaw_mid = s.yaw + 0.5 * w_mid * h
            s.x += v_mid * math.cos(yaw_mid) * h
            s.y += v_mid * math.sin(yaw_mid) * h
            s.yaw = wrap(s.yaw + w_mid * h)
            s.t += h
            if s.v == 0.0 and s.w == 0.0 and tv == 0.0 and tw == 0.0:
                s.t = horizon_end  # at rest with no command: nothing more happens
        s.t = t_end
        return s

    def _smooth(self, twin: TwinState | None, est: TwinState) -> TwinState:
        tc = self.config.correction_time_constant_s
        if tc <= 0 or twin is None or est.t <= twin.t:
            return est.copy()
        # Carry the published twin forward by the estimate's own motion, then pull it in.
        dt = est.t - twin.t
        moved = self._roll(twin, est.t)
        ex, ey = est.x - moved.x, est.y - moved.y
        if math.hypot(ex, ey) > self.config.snap_distance_m:
            return est.copy()
        k = 1.0 - math.exp(-dt / tc)
        moved.x += k * ex
        moved.y += k * ey
        moved.yaw = wrap(moved.yaw + k * wrap(est.yaw - moved.yaw))
        moved.v, moved.w = est.v, est.w
        return moved

    def _adapt(self, t_local: float, v: float, w: float) -> None:
        """Learn how much of its command the robot achieves (normalised LMS on the gains):
        roll the model from the previous measurement to this one and compare velocities."""
        anchor = self._anchor
        if anchor is None or not 0.0 < t_local - anchor.t <= 0.5:
            return
        predicted = self._roll(anchor, t_local)
        uv, uw = self._input(t_local)
        rate = self.config.gain_learning_rate
        if abs(uv) > 0.05:
            self._gain_v += rate * (v - predicted.v) * uv / (uv * uv + 0.01)
            self._gain_v = min(max(self._gain_v, 0.5), 1.5)
        if abs(uw) > 0.05:
            self._gain_w += rate * (w - predicted.w) * uw / (uw * uw + 0.01)
            self._gain_w = min(max(self._gain_w, 0.3), 1.5)
        self.stats.gains = (self._gain_v, self._gain_w)

    def _choose_time_constant(self, measured: TwinState) -> None:
        """Score each candidate lag by how well it would have predicted this measurement
        from one taken about one link delay earlier (the horizon the twin really bridges)."""
        if len(self._tau_scores) < 2:
            return
        self._tau_unscored += 1
        if measured.t - self._tau_scored_at < self.config.lag_scoring_period_s:
            return
        horizon = min(max(self._command_delay(), 0.05), 0.5)  # bounded work per scoring
        target = measured.t - horizon
        k = bisect.bisect_right(self._anchors, target, key=_time)  # anchors come in time order
        if k == 0 or measured.t - self._anchors[k - 1].t > 4 * horizon:
            return
        start = self._anchors[k - 1]
        keep = 0.95**self._tau_unscored  # as if each measurement since the last scoring had scored this
        self._tau_unscored, self._tau_scored_at = 0, measured.t
        for tau in self._tau_scores:
            p = self._roll(start, measured.t, tau)
            err = math.hypot(p.x - measured.x, p.y - measured.y) + 0.3 * abs(wrap(p.yaw - measured.yaw))
            self._tau_scores[tau] = keep * self._tau_scores[tau] + (1.0 - keep) * err * err
        self._tau = min(self._tau_scores, key=self._tau_scores.get)
        self.stats.time_constant_s = self._tau

    # ---- bookkeeping -----------------------------------------------------------------
    def _clock_offset(self) -> float:
        cfg, st = self.config, self.stats
        if cfg.clock_offset_s is not None:
            st.clock_offset_s, st.offset_estimated = cfg.clock_offset_s, False
            return cfg.clock_offset_s
        lowest = self._raw_lowest
        if -0.005 <= lowest <= cfg.max_plausible_delay_s:
            st.clock_offset_s, st.offset_estimated = 0.0, False
            return 0.0
        # Stamps from the future or implausibly old: the robot's clock is off. The fastest
        # message seen took about min_delay_s; everything else is offset.
        offset = cfg.min_delay_s - lowest
        st.clock_offset_s, st.offset_estimated = offset, True
        return offset

    def _note_raw_delay(self, raw: float) -> None:
        """Keep the last 200 receipt-minus-stamp values and their minimum."""
        window = self._raw_min
        evicted = window[0] if len(window) == window.maxlen else math.inf
        window.append(raw)
        if evicted <= self._raw_lowest:
            self._raw_lowest = min(window)
        else:
            self._raw_lowest = min(self._raw_lowest, raw)

    def _measure_error(self, t_local: float, x: float, y: float, yaw: float) -> None:
        """Twin error at the measurement's time: compare with what was published then."""
        pub = self._published
        if len(pub) < 2 or t_local < pub[0].t or t_local > pub[-1].t:
            return
        i = bisect.bisect_left(pub, t_local, key=_time)
        a, b = pub[max(i - 1, 0)], pub[min(i, len(pub) - 1)]
        f = 0.0 if b.t == a.t else (t_local - a.t) / (b.t - a.t)
        px, py = a.x + f * (b.x - a.x), a.y + f * (b.y - a.y)
        pyaw = wrap(a.yaw + f * wrap(b.yaw - a.yaw))
        self.stats.last_error_m = math.hypot(px - x, py - y)
        self.stats.last_yaw_error_deg = math.degrees(abs(wrap(pyaw - yaw)))

    def _trim(self, now: float) -> None:
        cut = now - self.config.history_s
        if self._commands and self._commands[0][0] < cut:
            keep = bisect.bisect_left(self._commands, (cut, -math.inf, -math.inf))
            # keep one older command: it may still be the one in force
            del self._commands[: max(keep - 1, 0)]
