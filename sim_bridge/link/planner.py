"""Glue between what the send path measures and the MMCF: each outgoing stream as the
MMCF sees it, the link as measured, and the configuration each stream gets next."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim_bridge.link import codec, wire
from sim_bridge.link.mmcf import (
    LinkState,
    Load,
    Prediction,
    Stream,
    StreamConfig,
    TopicClass,
    Weights,
    bandwidth_bps,
    optimise,
    predict,
    static_plain_ros,
)
from sim_bridge.link.monitor import LinkEstimate
from sim_bridge.link.sender import OutStream


def stream_model(stream: OutStream) -> Stream:
    """What the MMCF needs to know of ``stream`` (its native rate moves only on a > 10 %
    change, so the plan does not chase measurement noise)."""
    rule = stream.rule
    measured = stream.traffic.rate_hz() or max(rule.min_rate_hz, 1.0)
    if not stream.native_rate_hz or abs(measured - stream.native_rate_hz) > 0.1 * stream.native_rate_hz:
        stream.native_rate_hz = round(measured, 1)
    rate = stream.native_rate_hz
    return Stream(
        stream.topic,
        rule.topic_class,
        native_rate_hz=rate,
        message_bytes=stream.size_bytes or 100.0,
        min_rate_hz=min(rule.min_rate_hz, rate),
        min_delivery=rule.required_delivery,
        encodings=dict(stream.encodings),
        compressed_bytes=stream.compressed_bytes,
    )


def initial_config(stream: OutStream, adaptive: bool) -> StreamConfig:
    """Before the link is measured: reliable for the small, cheap JPEG for images."""
    if not adaptive:
        return static_plain_ros(stream_model(stream))
    cls = stream.rule.topic_class
    small = cls in (TopicClass.CONTROL, TopicClass.STATE)
    enc = codec.ImageEncoding(wire.Codec.JPEG, 50, 0.5) if cls == TopicClass.IMAGE else None
    return StreamConfig(1e6, True, 1, 1 if cls == TopicClass.CONTROL else (2 if small else 6), small, enc)


def link_state(estimate: LinkEstimate, budget_bps: float, best_effort_transport: bool) -> LinkState:
    rtt = estimate.rtt_s if math.isfinite(estimate.rtt_s) else 0.001
    bound = LinkState.upper_bound(estimate.loss, estimate.samples)
    return LinkState(rtt, estimate.loss, budget_bps, best_effort_transport, bound)


@dataclass
class Decision:
    config: StreamConfig
    prediction: Prediction


def plan(streams: list[OutStream], link: LinkState, weights: Weights, adaptive: bool) -> dict[str, Decision]:
    """The configuration for each stream: the MMCF's choice, or plain ROS when not adaptive."""
    models = [stream_model(s) for s in streams]
    if adaptive:
        current = {s.topic: s.config for s in streams if s.config is not None}
        chosen = optimise(models, link, weights, current)
        return {name: Decision(c.config, c.prediction) for name, c in chosen.choices.items()}
    configs = {m.name: static_plain_ros(m) for m in models}
    return {
        m.name: Decision(configs[m.name], predict(m, configs[m.name], link, _others(models, configs, m.name), weights))
        for m in models
    }


def needs_new_publisher(old: StreamConfig | None, new: StreamConfig) -> bool:
    """Reliability, congestion control and priority are fixed per zenoh publisher."""
    return old is None or (new.reliable, new.block, new.priority) != (old.reliable, old.block, old.priority)


def _others(models: list[Stream], configs: dict[str, StreamConfig], name: str) -> Load:
    load = Load()
    for m in models:
        if m.name != name:
            cfg = configs[m.name]
            load.add(cfg.priority, bandwidth_bps(m, cfg), cfg.reliable)
    return load
