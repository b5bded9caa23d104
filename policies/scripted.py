"""Each task's scripted baseline, by task name: the hand-written team policy that learned
policies are measured against, that cloning imitates, and that residual and steering
policies build on. Baselines are imported only when their task is used."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping

from policies.base import Policy, PolicyContext, PolicyError

SCRIPTED: dict[str, str] = {
    "navigation": "policies.scripted_navigation:ScriptedNavigationPolicy",
    "flocking": "policies.scripted_flocking:BoidsPolicy",
    "coverage": "policies.scripted_coverage:CoveragePolicy",
    "foraging": "policies.scripted_foraging:ForagingPolicy",
    "pursuit": "policies.scripted_pursuit:PursuitPolicy",
    "transport": "policies.scripted_transport:TransportPolicy",
}
"""task name -> "module:Class" of its scripted baseline"""


def make_scripted(context: PolicyContext, tuning: Mapping[str, float] | None = None) -> Policy:
    """The task's scripted baseline, with ``tuning`` replacing fields of its config
    dataclass (e.g. ``{"safety_margin_m": 0.2}`` for navigation's dynamic window)."""
    target = SCRIPTED.get(context.task_name)
    if target is None:
        raise PolicyError(f"no scripted baseline for task {context.task_name!r}")
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    policy = cls(context)
    if not tuning:
        return policy
    known = {f.name for f in dataclasses.fields(policy.config)}
    unknown = sorted(set(tuning) - known)
    if unknown:
        raise PolicyError(
            f"the {context.task_name} baseline has no setting {', '.join(unknown)}; "
            f"its settings: {', '.join(sorted(known))}"
        )
    return cls(context, dataclasses.replace(policy.config, **tuning))
