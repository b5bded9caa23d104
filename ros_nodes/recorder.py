"""``recorder``: writes the ROS graph's topics to an MCAP file (Foxglove, rosbag2 readers).

Every topic it discovers (or those listed in ``topics``) is recorded as serialized CDR with
its full ``ros2msg`` definition. Latched topics are read with a transient-local reader so
their stored sample is recorded too. The file is finished cleanly on shutdown.
"""

from __future__ import annotations

import time
from pathlib import Path

from mcap.writer import Writer
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ros_nodes.msg_definitions import DefinitionError, full_definition, message_class
from ros_nodes.params import Param, ParameterError, declare_params, positive
from ros_nodes.runtime import main_for

PARAMS = [
    Param("output", "", "MCAP file to write (required)"),
    Param("topics", [""], "topics to record (empty: every topic discovered)"),
    Param("discovery_period_s", 0.5, "how often to look for new topics", positive),
]


class Recorder(Node):
    def __init__(self):
        super().__init__("recorder")
        p = declare_params(self, PARAMS)
        if not p.output:
            raise ParameterError(self.get_name(), ["'output': give the MCAP file to write"])
        path = Path(p.output)
        if path.suffix != ".mcap":
            raise ParameterError(self.get_name(), [f"'output': {path} should end in .mcap"])
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.wanted = {t for t in p.topics if t}
        self._file = open(path, "wb")  # noqa: SIM115 - closed in on_shutdown
        self.writer = Writer(self._file)
        self.writer.start(profile="ros2", library="sern recorder")
        self.schemas: dict[str, int] = {}
        self.channels: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._subs = []
        self._finished = False
        self.create_timer(p.discovery_period_s, self._discover)
        self._discover()
        self.get_logger().info(
            f"recording {'all topics' if not self.wanted else ', '.join(sorted(self.wanted))} to {path}"
        )

    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.channels or (self.wanted and topic not in self.wanted) or len(types) != 1:
                continue
            type_name = types[0]
            try:
                msg_class = message_class(type_name)
                schema = self.schemas.get(type_name)
                if schema is None:
                    schema = self.writer.register_schema(type_name, "ros2msg", full_definition(type_name).encode())
                    self.schemas[type_name] = schema
            except (DefinitionError, AttributeError, ModuleNotFoundError, ValueError) as err:
                self.get_logger().warning(f"not recording {topic} ({type_name}): {err}")
                self.channels[topic] = -1
                continue
            channel = self.writer.register_channel(topic, "cdr", schema)
            self.channels[topic] = channel
            self.counts[topic] = 0
            self._subs.append(
                self.create_subscription(msg_class, topic, self._writer_for(topic, channel), self._qos(topic), raw=True)
            )

    def _qos(self, topic: str) -> QoSProfile:
        infos = self.get_publishers_info_by_topic(topic)
        latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        if latched:
            return QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=10,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)

    def _writer_for(self, topic: str, channel: int):
        def callback(data: bytes) -> None:
            if self._finished:
                return
            now = time.time_ns()
            self.writer.add_message(channel, log_time=now, data=data, publish_time=now, sequence=self.counts[topic])
            self.counts[topic] += 1

        return callback

    def on_shutdown(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.writer.finish()
        self._file.close()
        total = sum(self.counts.values())
        self.get_logger().info(f"wrote {total} messages on {len(self.counts)} topics to {self.path}")


main = main_for(Recorder, "recorder")
