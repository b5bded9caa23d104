"""What a site link reports on ``/diagnostics``, as plain data (the node turns it into
``diagnostic_msgs``): one status for the link, one per carried topic. ``sern link status``
reads these names and keys."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim_bridge.link.monitor import LinkEstimate
from sim_bridge.link.sender import OutStream

OK, WARN, ERROR = 0, 1, 2


@dataclass
class Status:
    name: str
    hardware_id: str
    level: int
    message: str
    values: dict[str, object] = field(default_factory=dict)


@dataclass
class LinkFigures:
    """The link as a whole, at one moment."""

    site: str
    other: str
    peers: int
    estimate: LinkEstimate
    sent_bps: float
    budget_bps: float
    adaptive: bool
    profile: str
    clock_offset_s: float | None
    clock_uncertainty_s: float
    max_command_age_s: float
    faults: dict[str, int]


def link_status(f: LinkFigures) -> Status:
    if f.peers == 0:
        level, message = ERROR, "no session with the other site (wrong endpoint, credentials, or peer down)"
    elif not f.estimate.up:
        level, message = WARN, "session open but probes unanswered: link down"
    else:
        level, message = OK, "link up"
    values = {
        "rtt_ms": f.estimate.rtt_s * 1000.0,
        "loss_pct": f.estimate.loss * 100.0,
        "up": f.estimate.up,
        "peers": f.peers,
        "sent_mbps": f.sent_bps / 1e6,
        "budget_mbps": f.budget_bps / 1e6,
        "within_budget": f.sent_bps <= f.budget_bps,
        "adaptive": f.adaptive,
        "profile": f.profile,
        "clock_offset_ms": math.nan if f.clock_offset_s is None else f.clock_offset_s * 1000.0,
        "clock_uncertainty_ms": f.clock_uncertainty_s * 1000.0,
        "max_command_age_s": f.max_command_age_s,
        **f.faults,
    }
    return Status(f"site_link {f.site}: link to {f.other}", f.site, level, message, values)


def stream_status(site: str, stream: OutStream, now: float) -> Status:
    message = stream.config.label() if stream.config else "waiting"
    expected, received = stream.delivered
    values: dict[str, object] = {
        "class": stream.rule.cls,
        "safety_critical": stream.rule.is_safety_critical,
        "source_rate_hz": stream.traffic.rate_hz(),
        "sent_kbps": stream.traffic.throughput_bps(now) / 1e3,
        "delivered": received / expected if expected else math.nan,
        "delivered_expected": expected,
        "delivered_received": received,
        "remote_latency_ms": stream.remote_latency_ms,
    }
    level = OK
    pred = stream.prediction
    if pred is not None:
        values.update(
            {
                "predicted_latency_ms": pred.latency_s * 1000.0,
                "predicted_delivery": pred.delivery,
                "predicted_cpu": pred.cpu,
                "predicted_kbps": pred.bandwidth_bps / 1e3,
                "cost": pred.cost,
                **{f"cost_{k}": v for k, v in pred.terms.items()},
            }
        )
        if not pred.feasible:
            level, message = WARN, f"{message}: {pred.why}"
    return Status(f"site_link {site}: {stream.topic}", site, level, message, values)


def fmt(value: object) -> str:
    """A diagnostic value as text."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)
