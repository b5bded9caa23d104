"""The site link's state under the threads that really touch it: zenoh's threads deliver
probe answers, reports and frames while the executor estimates, plans and reports. A
burst from several threads must neither raise (``deque mutated during iteration`` ended
the node before) nor lose a count."""

from __future__ import annotations

import threading
import time

import pytest

from sim_bridge.link import wire
from sim_bridge.link.clock import ClockOffset
from sim_bridge.link.faults import Faults
from sim_bridge.link.monitor import LinkMonitor, StreamTraffic
from sim_bridge.link.receiver import ReceivePath
from sim_bridge.link.spec import LinkConfig

BURST_S = 1.5


pytestmark = pytest.mark.usefixtures("frequent_switches")  # conftest: a race shows within the burst


def _burst(writers, reader, seconds: float = BURST_S) -> list[BaseException]:
    """Run ``writers`` (each on its own thread) and ``reader`` until ``seconds`` pass or
    something raises; return what was raised."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop(fn):
        try:
            while not stop.is_set():
                fn()
        except BaseException as err:
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=loop, args=(fn,)) for fn in [*writers, reader]]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(10)
    return errors


def test_link_monitor_survives_a_burst_of_reports_and_probes_while_estimating():
    mon = LinkMonitor()
    counts = {"reports": 0}

    def report():
        mon.traffic_report(100, 97, 1, 1)
        counts["reports"] += 1  # one writer thread owns this counter

    def probes():
        pid = mon.probe_sent(time.monotonic())
        mon.probe_answered(pid, time.monotonic())

    estimates = []
    errors = _burst([report, probes, probes], lambda: estimates.append(mon.estimate(time.monotonic())))
    assert not errors, errors
    assert counts["reports"] > 100 and len(estimates) > 100
    final = mon.estimate(time.monotonic())
    assert final.loss == pytest.approx(0.03, abs=0.005)  # every report was 3 % loss; probes lost none
    assert final.up and final.probes_answered == mon.answered > 100


def test_stream_traffic_survives_sends_from_the_copies_thread_while_diagnostics_read_it():
    traffic = StreamTraffic()
    errors = _burst(
        [lambda: traffic.note_sent(time.monotonic(), 100), lambda: traffic.note_source(time.monotonic(), 100)],
        lambda: (traffic.throughput_bps(time.monotonic()), traffic.rate_hz()),
    )
    assert not errors, errors
    assert traffic.sent > 100 and traffic.source_count > 100


def test_receive_path_counts_every_frame_from_several_threads_while_reports_are_taken():
    config = LinkConfig.model_validate(
        {
            "sites": ["robot", "twin"],
            "topics": [{"pattern": "/robot_*/odom", "type": "nav_msgs/msg/Odometry", "from": "robot"}],
        }
    )
    faults = Faults(lambda message: None)
    path = ReceivePath(config, "robot", ClockOffset(), faults, 1 << 20, 0.3)
    sent = {}

    def sender(topic):  # one thread per topic, each in order, all into one receive path
        key = wire.topic_key("robot", topic)
        sent[topic] = 0

        def deliver():
            env = wire.Envelope("nav_msgs/msg/Odometry", sent[topic], time.time(), wire.Codec.CDR, b"\x00\x01\x00\x00")
            assert path.accept(key, wire.pack(env)) is not None
            sent[topic] += 1

        return deliver

    topics = [f"/robot_{i}/odom" for i in range(3)]
    reports = []
    errors = _burst([sender(t) for t in topics], lambda: reports.append(path.take_report()))
    assert not errors, errors
    reports.append(path.take_report())
    for topic in topics:
        windows = [r[topic] for r in reports if topic in r]
        assert sent[topic] > 100
        # The report windows tile what was sent, none twice, none left out.
        assert sum(w.expected for w in windows) == sum(w.received for w in windows) == sent[topic]
    assert all(v == 0 for v in faults.snapshot().values())


def test_clock_offset_takes_exchanges_from_several_threads():
    clock = ClockOffset()

    def exchange():
        t1 = time.time()
        clock.add(t1, t1 + 5.0 + 0.001, t1 + 5.0 + 0.0012, t1 + 0.0022)

    errors = _burst([exchange, exchange], lambda: (clock.offset_s(), clock.uncertainty_s()))
    assert not errors, errors
    assert clock.offset_s() == pytest.approx(5.0, abs=0.002)
