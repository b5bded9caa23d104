"""The site-link configuration file: which topics cross between which sites, their
classes and minimum rates, the link's budget and mission profile.

```yaml
sites: [robot, twin]              # the two sites' names
budget_mbps: 5.0                  # bandwidth the link may use (both directions, each way)
profile: nominal                  # nominal | contested | bandwidth_starved
weights: {latency: 1.0}           # optional overrides of the profile's weights
topics:
  - {pattern: "/robot_*/odom", type: nav_msgs/msg/Odometry, from: robot, class: state, min_rate_hz: 10}
  - {pattern: "/robot_*/cmd_vel", type: geometry_msgs/msg/Twist, from: twin, class: control, min_rate_hz: 10,
     safety_critical: true, stop_after_silent_s: 0.25}
  - {pattern: "/robot_*/camera/image_raw", type: sensor_msgs/msg/Image, from: robot, class: image}
```

``pattern`` is a shell-style glob on absolute topic names; topics are forwarded from the
site named in ``from`` to the other one. ``safety_critical: true`` marks a topic whose
messages must never be acted on late: the receiving site link drops any older than its
``max_command_age_s`` (judged by the sender's send time and the measured clock offset).
It defaults to true for ``class: control`` and false otherwise; say it explicitly.

``stop_after_silent_s`` (safety-critical topics only): when a topic's messages stop arriving
for this long (the link is down, or the sender stopped), the receiving site publishes the
type's all-zero message once (a zero Twist: stop), so a robot stops before its own command
watchdog would. Give it a few of the topic's periods (0.25 s for 20 Hz commands), or leave
it out to rely on the robot's watchdog alone.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim_bridge.link.mmcf import PROFILES, TopicClass, Weights, with_weights
from worlds.errors import SpecFileError
from worlds.spec import Spec
from worlds.specfile import parse_yaml, read_text, validate

NonNegative = Annotated[float, Field(ge=0)]


class LinkConfigError(SpecFileError):
    """A site-link configuration file that cannot be used."""


class TopicRule(Spec):
    pattern: str
    type: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+/msg/[A-Za-z0-9_]+$")]
    from_: Annotated[str, Field(alias="from")]
    cls: Annotated[Literal["control", "state", "image", "data"], Field(alias="class")] = "data"
    min_rate_hz: NonNegative = 0.0
    min_delivery: Annotated[float, Field(ge=0, le=1)] | None = None
    latched: bool = False
    safety_critical: bool | None = None
    stop_after_silent_s: Annotated[float, Field(gt=0)] | None = None

    @property
    def topic_class(self) -> TopicClass:
        return TopicClass(self.cls)

    @property
    def is_safety_critical(self) -> bool:
        """Never acted on late (see the module docstring); control topics unless marked false."""
        if self.safety_critical is not None:
            return self.safety_critical
        return self.topic_class == TopicClass.CONTROL

    @property
    def keeps_latest(self) -> bool:
        """Control and state topics: the latest value is sent again after an outage and
        handed to late subscribers."""
        return self.topic_class in (TopicClass.CONTROL, TopicClass.STATE)

    def matches(self, topic: str, type_name: str) -> bool:
        return type_name == self.type and fnmatch.fnmatchcase(topic, self.pattern)

    @property
    def required_delivery(self) -> float:
        if self.min_delivery is not None:
            return self.min_delivery
        return 0.99 if self.topic_class in (TopicClass.CONTROL, TopicClass.STATE) else 0.0


class WeightOverrides(Spec):
    latency: NonNegative | None = None
    reliability: NonNegative | None = None
    compute: NonNegative | None = None
    bandwidth: NonNegative | None = None
    latency_ref_s: Annotated[float, Field(gt=0)] | None = None
    compute_ref: Annotated[float, Field(gt=0)] | None = None


class LinkConfig(Spec):
    sites: Annotated[list[str], Field(min_length=2, max_length=2)]
    budget_mbps: Annotated[float, Field(gt=0)] = 10.0
    profile: str = "nominal"
    weights: WeightOverrides = WeightOverrides()
    topics: Annotated[list[TopicRule], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> LinkConfig:
        if self.sites[0] == self.sites[1]:
            raise ValueError("the two sites need different names")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of: {', '.join(PROFILES)}")
        for i, rule in enumerate(self.topics):
            if rule.from_ not in self.sites:
                raise ValueError(f"topics[{i}].from is {rule.from_!r}; sites are {', '.join(self.sites)}")
            if rule.stop_after_silent_s is not None and not rule.is_safety_critical:
                raise ValueError(
                    f"topics[{i}].stop_after_silent_s is for safety-critical command topics; "
                    f"{rule.pattern} is not one (safety_critical: true)"
                )
        return self

    def other(self, site: str) -> str:
        if site not in self.sites:
            raise ValueError(f"unknown site {site!r}; this link joins {' and '.join(self.sites)}")
        return self.sites[1] if site == self.sites[0] else self.sites[0]

    def rule_for(self, topic: str, type_name: str) -> TopicRule | None:
        return next((r for r in self.topics if r.matches(topic, type_name)), None)

    def weights_for(self, profile: str | None = None) -> Weights:
        return with_weights(profile or self.profile, **self.weights.model_dump())


def load_link_config(path: str | Path) -> LinkConfig:
    """Read and validate a site-link configuration file."""
    path = Path(path)
    text = read_text(path, str(path), LinkConfigError)
    data, lines = parse_yaml(text, str(path), "a site-link configuration", LinkConfigError)
    return validate(LinkConfig, data, str(path), lines, error=LinkConfigError)
