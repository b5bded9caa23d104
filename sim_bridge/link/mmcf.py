r"""The Multi-Metric Cost Function (MMCF): choosing, per topic, how it crosses the link.

For every topic and every candidate configuration c (publish rate, reliability and
redundancy, priority, congestion control, and for images codec, quality and scale):

    J(c) = w_L · L(c) / L_ref  +  w_R · (1 − R(c))  +  w_C · C(c) / C_ref  +  w_B · B(c) / B_ref

- **L(c)**, predicted end-to-end latency (s): half the measured RTT; serialisation of the
  message at the link's capacity; queueing behind traffic of equal or higher priority
  (M/M/1: ρ/(1−ρ) packet times); encode and decode time; for *reliable* streams the
  head-of-line stall of the shared TCP connection when any of its segments is lost
  (probability 1 − (1 − p)^n over the segments in flight), costing about an RTT plus the
  retransmission timeout.
- **R(c)**, the delivery ratio of the source's information: the fraction of messages sent
  (rate / native rate) × the fraction that arrive (best effort: 1 − p_msg^copies with
  p_msg = 1 − (1 − p)^packets; reliable: all, while the link can carry the load) × the
  image's fidelity for lossy encodings (measured PSNR mapped to [0, 1]).
- **C(c)**, CPU seconds per second at both ends (encode, decode, per-message handling).
- **B(c)**, bandwidth on the wire (bits/s), headers and redundant copies included.

Hard constraints: each topic's minimum rate and minimum delivery (safety-critical topics;
judged at a pessimistic loss, the estimate plus two standard errors),
and the sum of B within the bandwidth budget; reliable traffic is also capped by what TCP
can carry at the measured loss and RTT (Mathis et al.: MSS/RTT · 1.22/√p). The optimiser
starts each topic at its cheapest feasible configuration, then (safety-critical topics
first) moves each to its lowest-cost configuration that keeps the total within budget given
the others' load, until nothing moves. Hysteresis: a topic changes configuration only when
the new one is better by ``hysteresis`` (relative) or the current one breaks a constraint.

Weights and references come from named mission profiles (``PROFILES``), overridable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sim_bridge.link.codec import EncodingProfile, ImageEncoding
from sim_bridge.link.wire import Codec

PACKET_PAYLOAD = 1400  # bytes of message per packet on the wire
PACKET_OVERHEAD = 70  # Ethernet + IP + UDP/TCP + zenoh framing per packet
TCP_MIN_RTO_S = 0.2
PER_MESSAGE_CPU_S = 25e-6  # handling one message at both ends (serialize, publish, deliver)


class TopicClass(StrEnum):
    CONTROL = "control"  # commands: small, safety-critical
    STATE = "state"  # robot state (odometry): small, safety-critical
    IMAGE = "image"  # cameras: large, lossy encodings allowed
    DATA = "data"  # anything else: sent as is


# Zenoh priorities (1 RealTime … 7 Background) per class.
CLASS_PRIORITY = {TopicClass.CONTROL: 1, TopicClass.STATE: 2, TopicClass.DATA: 5, TopicClass.IMAGE: 6}


@dataclass(frozen=True)
class StreamConfig:
    """How one topic crosses the link."""

    rate_hz: float
    reliable: bool
    copies: int = 1  # best effort: send each message this many times
    priority: int = 5
    block: bool = False  # congestion control: block (wait) instead of drop
    encoding: ImageEncoding | None = None  # images only; None = the serialized message
    compress: bool = False  # lz4 on the serialized message (non-image topics)

    def label(self) -> str:
        rel = "reliable" if self.reliable else f"best_effort×{self.copies}"
        enc = f", {self.encoding.label()}" if self.encoding else (", lz4" if self.compress else "")
        cc = "block" if self.block else "drop"
        return f"{self.rate_hz:.3g} Hz, {rel}, prio {self.priority}, {cc}{enc}"


@dataclass
class Stream:
    """What the sender knows of one topic."""

    name: str
    cls: TopicClass
    native_rate_hz: float
    message_bytes: float
    min_rate_hz: float = 0.0
    min_delivery: float = 0.0
    encodings: dict[ImageEncoding, EncodingProfile] = field(default_factory=dict)
    compressed_bytes: float | None = None  # measured lz4 size, if known


@dataclass
class LinkState:
    """The link as measured: round trip, one-way packet loss, and what we may use."""

    rtt_s: float
    loss: float
    budget_bps: float
    best_effort_transport: bool = True  # a UDP link exists for best-effort traffic
    loss_bound: float | None = None  # a pessimistic loss (upper confidence bound) for constraints

    @staticmethod
    def upper_bound(loss: float, samples: int) -> float:
        """Loss plus two standard errors (and a floor): what constraints should assume."""
        n = max(samples, 1)
        return min(0.99, loss + 2.0 * math.sqrt(max(loss * (1 - loss), 0.01 / n) / n) + 0.002)

    def tcp_capacity_bps(self) -> float:
        """What one TCP connection can carry at this loss and RTT (Mathis)."""
        if self.loss <= 1e-4:
            return self.budget_bps
        rtt = max(self.rtt_s, 1e-3)
        return min(self.budget_bps, PACKET_PAYLOAD * 8 / rtt * 1.22 / math.sqrt(self.loss))


@dataclass(frozen=True)
class Weights:
    latency: float
    reliability: float
    compute: float
    bandwidth: float
    latency_ref_s: float = 0.1
    compute_ref: float = 0.05  # CPU seconds per second
    bandwidth_ref_bps: float | None = None  # None: the budget


PROFILES: dict[str, Weights] = {
    # Balanced: latency and delivery first, resources second.
    "nominal": Weights(latency=1.0, reliability=1.0, compute=0.3, bandwidth=0.5),
    # A hostile or lossy link: getting through matters most, bandwidth is there to be spent.
    "contested": Weights(latency=1.0, reliability=3.0, compute=0.2, bandwidth=0.3),
    # A thin pipe: every bit counts, images give way first.
    "bandwidth_starved": Weights(latency=0.7, reliability=1.0, compute=0.2, bandwidth=20.0),
}


@dataclass
class Prediction:
    latency_s: float
    delivery: float  # of the source's information: sent fraction × arrival × fidelity
    arrival: float  # of the messages put on the link
    cpu: float
    bandwidth_bps: float
    cost: float
    terms: dict[str, float]
    feasible: bool = True
    why: str = ""


# ---- candidates -------------------------------------------------------------------------
IMAGE_ENCODINGS = [
    ImageEncoding(Codec.RAW_SCALED, 100, 1.0),
    ImageEncoding(Codec.RAW_SCALED, 100, 0.5),
    ImageEncoding(Codec.JPEG, 80, 1.0),
    ImageEncoding(Codec.JPEG, 50, 1.0),
    ImageEncoding(Codec.JPEG, 80, 0.5),
    ImageEncoding(Codec.JPEG, 50, 0.5),
    ImageEncoding(Codec.JPEG, 30, 0.5),
    ImageEncoding(Codec.JPEG, 30, 0.25),
    ImageEncoding(Codec.PNG, 100, 1.0),
    ImageEncoding(Codec.PNG, 100, 0.5),
    ImageEncoding(Codec.WEBP, 50, 0.5),
    ImageEncoding(Codec.WEBP, 30, 0.25),
]


def candidates(stream: Stream, link: LinkState) -> Iterable[StreamConfig]:
    prio = CLASS_PRIORITY[stream.cls]
    small = stream.cls in (TopicClass.CONTROL, TopicClass.STATE, TopicClass.DATA)
    fractions = (1.0, 0.5, 1 / 3, 0.25) if small else (1.0, 0.5, 0.25, 0.1)
    rates = sorted(
        {max(stream.native_rate_hz * f, stream.min_rate_hz, 0.1) for f in fractions if stream.native_rate_hz * f > 0},
        reverse=True,
    )
    reliabilities = [(True, 1)]
    if link.best_effort_transport:
        reliabilities += [(False, 1), (False, 2), (False, 3)] if small else [(False, 1)]
    encodings: list[ImageEncoding | None] = [None]
    if stream.cls == TopicClass.IMAGE and stream.encodings:
        encodings = list(stream.encodings)
    compressions = (False, True) if small and stream.compressed_bytes is not None else (False,)
    for rate, (reliable, copies), enc, comp in itertools.product(rates, reliabilities, encodings, compressions):
        block = reliable and stream.cls in (TopicClass.CONTROL, TopicClass.STATE)
        yield StreamConfig(rate, reliable, copies, prio, block, enc, comp)


# ---- the cost function --------------------------------------------------------------------
def message_size(stream: Stream, config: StreamConfig) -> float:
    """Bytes of one message on the link, with the site-link header and key."""
    if config.encoding is not None and config.encoding in stream.encodings:
        return stream.encodings[config.encoding].bytes + 60
    if config.compress and stream.compressed_bytes is not None:
        return stream.compressed_bytes + 60
    return stream.message_bytes + 60


def bandwidth_bps(stream: Stream, config: StreamConfig) -> float:
    size = message_size(stream, config)
    packets = math.ceil(size / PACKET_PAYLOAD)
    return config.rate_hz * (size + packets * PACKET_OVERHEAD) * 8 * config.copies


@dataclass
class Load:
    """Traffic the other streams put on the link (bits/s), by priority and reliability."""

    by_priority: dict[int, float] = field(default_factory=dict)
    reliable_bps: float = 0.0

    def at_or_above(self, priority: int) -> float:
        return sum(bps for p, bps in self.by_priority.items() if p <= priority)

    def total(self) -> float:
        return sum(self.by_priority.values())

    def add(self, priority: int, bps: float, reliable: bool) -> None:
        self.by_priority[priority] = self.by_priority.get(priority, 0.0) + bps
        if reliable:
            self.reliable_bps += bps


def predict(stream: Stream, config: StreamConfig, link: LinkState, others: Load, weights: Weights) -> Prediction:
    """J(c) and its terms for one topic, given the other topics' load."""
    size = message_size(stream, config)
    packets = math.ceil(size / PACKET_PAYLOAD)
    b = bandwidth_bps(stream, config)
    capacity = max(link.budget_bps, 1.0)
    p = min(max(link.loss, 0.0), 0.99)
    # Queueing behind equal or higher priority traffic, this stream's own included.
    rho = (others.at_or_above(config.priority) + b) / capacity
    packet_time = (PACKET_PAYLOAD + PACKET_OVERHEAD) * 8 / capacity
    queue_s = 5.0 if rho >= 0.98 else rho / (1.0 - rho) * packet_time
    serial_s = packets * (PACKET_PAYLOAD + PACKET_OVERHEAD) * 8 / capacity
    enc = stream.encodings.get(config.encoding) if config.encoding is not None else None
    codec_s = (enc.encode_s + enc.decode_s) if enc else 0.0
    latency = link.rtt_s / 2 + serial_s + queue_s + codec_s
    p_msg = 1.0 - (1.0 - p) ** packets
    p_bound = min(max(link.loss_bound if link.loss_bound is not None else p, p), 0.99)
    p_msg_bound = 1.0 - (1.0 - p_bound) ** packets
    sent_fraction = min(config.rate_hz / stream.native_rate_hz, 1.0) if stream.native_rate_hz > 0 else 1.0
    if config.reliable:
        # Head-of-line: any lost segment of the shared TCP connection in flight stalls us.
        tcp_cap = link.tcp_capacity_bps()
        in_flight = (others.reliable_bps + b) / 8 / PACKET_PAYLOAD * max(link.rtt_s, 1e-3)
        stall = 1.0 - (1.0 - p) ** (packets + in_flight)
        latency += stall * (link.rtt_s + TCP_MIN_RTO_S)
        tcp_rho = (others.reliable_bps + b) / max(tcp_cap, 1.0)
        if tcp_rho >= 0.98:
            latency += 5.0  # the connection cannot keep up: the queue grows without bound
        arrive = 1.0 if config.block or tcp_rho < 1.0 else 1.0 / tcp_rho
        arrive_bound = arrive
    else:
        arrive = 1.0 - p_msg**config.copies
        arrive_bound = 1.0 - p_msg_bound**config.copies
    if rho >= 1.0 and not config.block:
        arrive /= rho  # over capacity: the excess is dropped
    fidelity = enc.fidelity if enc else 1.0
    delivery = sent_fraction * arrive * fidelity
    arrival = arrive
    cpu = (
        config.rate_hz * ((enc.encode_s + enc.decode_s) if enc else 0.0)
        + config.rate_hz * config.copies * PER_MESSAGE_CPU_S
    )
    b_ref = weights.bandwidth_ref_bps or capacity
    terms = {
        "latency": weights.latency * latency / weights.latency_ref_s,
        "reliability": weights.reliability * (1.0 - delivery),
        "compute": weights.compute * cpu / weights.compute_ref,
        "bandwidth": weights.bandwidth * b / b_ref,
    }
    why = ""
    if config.rate_hz + 1e-9 < stream.min_rate_hz:
        why = f"rate {config.rate_hz:g} Hz below the minimum {stream.min_rate_hz:g} Hz"
    elif arrive_bound < stream.min_delivery:
        why = f"delivery {arrive_bound:.4f} (at the pessimistic loss) below the minimum {stream.min_delivery:g}"
    elif stream.cls in (TopicClass.CONTROL, TopicClass.STATE) and latency > 2.0:
        why = f"latency {latency:.1f} s: too late to be of use"
    return Prediction(latency, delivery, arrival, cpu, b, sum(terms.values()), terms, not why, why)


# ---- the optimiser --------------------------------------------------------------------------
@dataclass
class Choice:
    config: StreamConfig
    prediction: Prediction


@dataclass
class Plan:
    choices: dict[str, Choice]
    total_bps: float
    within_budget: bool


def _load_without(choices: dict[str, Choice], name: str) -> Load:
    load = Load()
    for other, c in choices.items():
        if other != name:
            load.add(c.config.priority, c.prediction.bandwidth_bps, c.config.reliable)
    return load


def optimise(
    streams: list[Stream],
    link: LinkState,
    weights: Weights,
    current: dict[str, StreamConfig] | None = None,
    hysteresis: float = 0.15,
    rounds: int = 4,
) -> Plan:
    """Choose a configuration per stream (see the module docstring).

    Start every stream at its cheapest feasible configuration; then, safety-critical
    streams first, let each move to its lowest-cost configuration that keeps the total
    within budget, given the others' load; repeat until nothing moves.
    """
    order = sorted(streams, key=lambda s: (CLASS_PRIORITY[s.cls], s.name))
    options = {s.name: list(candidates(s, link)) for s in order}
    choices: dict[str, Choice] = {}
    for s in order:
        cheapest = sorted(options[s.name], key=lambda c: bandwidth_bps(s, c))
        pick = next((c for c in cheapest if predict(s, c, link, Load(), weights).feasible), cheapest[0])
        choices[s.name] = Choice(pick, predict(s, pick, link, Load(), weights))
    if current:  # start from what runs now where that is still a candidate
        for s in order:
            if s.name in current and current[s.name] in options[s.name]:
                cfg = current[s.name]
                choices[s.name] = Choice(cfg, predict(s, cfg, link, Load(), weights))
    for _ in range(rounds):
        moved = False
        for s in order:
            others = _load_without(choices, s.name)
            room = link.budget_bps - others.total()
            here = choices[s.name]
            here_pred = predict(s, here.config, link, others, weights)
            best = Choice(here.config, here_pred)
            for cfg in options[s.name]:
                if cfg == here.config:
                    continue
                pred = predict(s, cfg, link, others, weights)
                if pred.bandwidth_bps > room and pred.bandwidth_bps > here_pred.bandwidth_bps:
                    continue
                if best.prediction.feasible and not pred.feasible:
                    continue
                better = (pred.feasible and not best.prediction.feasible) or pred.cost < best.prediction.cost
                if better:
                    best = Choice(cfg, pred)
            # Hysteresis: leave a working configuration alone unless clearly beaten.
            keep = current and current.get(s.name) == here.config and here_pred.feasible
            if keep and best.prediction.cost > here_pred.cost * (1.0 - hysteresis):
                best = Choice(here.config, here_pred)
            if best.config != here.config:
                moved = True
            choices[s.name] = best
        if not moved:
            break
    for s in order:  # final predictions under the final loads
        cfg = choices[s.name].config
        choices[s.name] = Choice(cfg, predict(s, cfg, link, _load_without(choices, s.name), weights))
    total = sum(c.prediction.bandwidth_bps for c in choices.values())
    return Plan(choices, total, total <= link.budget_bps)


def static_plain_ros(stream: Stream) -> StreamConfig:
    """The baseline: what a plain ROS bridge does, whatever the link: everything reliable,
    blocking, default priority, images raw at full rate."""
    enc = ImageEncoding(Codec.RAW_SCALED, 100, 1.0) if stream.cls == TopicClass.IMAGE else None
    return StreamConfig(stream.native_rate_hz, True, 1, 5, True, enc)


def with_weights(profile: str, **overrides: float) -> Weights:
    """A named profile's weights, with some fields replaced."""
    try:
        base = PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown link profile {profile!r}; choose one of: {', '.join(PROFILES)}") from None
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
