"""The site link's pure parts: wire format, image codecs, link monitor, the MMCF's
predictions and choices on constructed link states, configuration checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from sim_bridge.link import codec, wire
from sim_bridge.link.codec import ImageEncoding
from sim_bridge.link.mmcf import (
    IMAGE_ENCODINGS,
    PROFILES,
    LinkState,
    Load,
    Stream,
    StreamConfig,
    TopicClass,
    bandwidth_bps,
    optimise,
    predict,
    static_plain_ros,
)
from sim_bridge.link.monitor import LinkMonitor, SequenceTracker, Verdict
from sim_bridge.link.spec import LinkConfigError, load_link_config
from sim_bridge.link.transport import SessionSettings, check


@pytest.fixture(scope="module")
def frame():
    """A camera-like frame: smooth shapes plus sensor noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:240, 0:320]
    img = np.stack([(x * 0.8) % 255, (y * 1.0) % 255, ((x + y) * 0.5) % 255], axis=-1)
    img[60:180, 100:220] = (200, 60, 40)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def encodings(frame):
    return codec.profile_encodings(frame, IMAGE_ENCODINGS)


def fleet(encodings, robots=4):
    streams = []
    for i in range(robots):
        streams.append(Stream(f"/robot_{i}/odom", TopicClass.STATE, 30, 740, 10, 0.99, compressed_bytes=126))
        streams.append(Stream(f"/robot_{i}/cmd_vel", TopicClass.CONTROL, 20, 52, 10, 0.99, compressed_bytes=28))
        streams.append(Stream(f"/robot_{i}/camera/image_raw", TopicClass.IMAGE, 10, 230460, encodings=encodings))
    return streams


# ---- wire and codecs -----------------------------------------------------------------------
def test_wire_round_trip_and_errors():
    env = wire.Envelope("nav_msgs/msg/Odometry", 41, 123.5, wire.Codec.CDR_LZ4, b"\x01\x02", copy=2, epoch=7)
    back = wire.unpack(wire.pack(env))
    assert back == env
    assert wire.key_topic(wire.topic_key("robot", "/robot_0/odom")) == ("robot", "/robot_0/odom")
    with pytest.raises(wire.WireError, match="not a site-link message"):
        wire.unpack(b"hello world, not ours at all")
    meta = wire.ImageMeta(5, 6, 320, 240, "robot_0/camera")
    m, data = wire.unpack_image(wire.pack_image(meta, b"jpegbytes"))
    assert m == meta and data == b"jpegbytes"


@pytest.mark.parametrize("enc", IMAGE_ENCODINGS, ids=lambda e: e.label())
def test_every_encoding_round_trips_at_its_scale(frame, enc):
    out = codec.decode(codec.encode(frame, enc), enc.codec)
    assert out.shape == (round(240 * enc.scale), round(320 * enc.scale), 3)
    assert out.dtype == np.uint8


def test_encodings_trade_size_for_fidelity(encodings):
    raw = encodings[ImageEncoding(wire.Codec.RAW_SCALED, 100, 1.0)]
    q80 = encodings[ImageEncoding(wire.Codec.JPEG, 80, 1.0)]
    q30_small = encodings[ImageEncoding(wire.Codec.JPEG, 30, 0.25)]
    assert raw.fidelity == 1.0 and raw.bytes > 230_000
    assert q80.bytes < raw.bytes / 5 and q80.fidelity > q30_small.fidelity
    assert q30_small.bytes < q80.bytes / 3
    assert encodings[ImageEncoding(wire.Codec.PNG, 100, 1.0)].fidelity == 1.0  # lossless


# ---- the monitor ---------------------------------------------------------------------------
def test_monitor_rtt_and_loss_from_probes():
    mon = LinkMonitor(window=200)
    rng = np.random.default_rng(1)
    t = 0.0
    for _ in range(300):
        pid = mon.probe_sent(t)
        if rng.random() > 0.19:  # 10 % each way: 19 % of round trips fail
            mon.probe_answered(pid, t + 0.3)
        t += 0.1
    est = mon.estimate(t)
    assert est.rtt_s == pytest.approx(0.3)
    assert est.loss == pytest.approx(0.10, abs=0.03)
    assert est.up


def test_monitor_sees_the_link_go_down():
    mon = LinkMonitor(down_after_s=2.0)
    mon.probe_answered(mon.probe_sent(0.0), 0.05)
    assert mon.estimate(1.0).up and not mon.estimate(3.0).up


def test_sequence_tracker_drops_duplicates_counts_gaps_and_restarts():
    tr = SequenceTracker()
    assert [tr.accept(s) for s in (0, 1, 1, 3)] == [Verdict.NEW, Verdict.NEW, Verdict.DUPLICATE, Verdict.NEW]
    assert tr.duplicates == 1
    assert tr.take_window() == (4, 3)  # seq 2 lost
    tr.reset()
    assert tr.accept(0) == Verdict.NEW


# ---- MMCF predictions --------------------------------------------------------------------
def test_reliable_latency_grows_with_loss_best_effort_does_not():
    s = Stream("/odom", TopicClass.STATE, 30, 740, compressed_bytes=126)
    rel = StreamConfig(30, True, 1, 2, True)
    be = StreamConfig(30, False, 2, 2, False)
    w = PROFILES["nominal"]
    clean, lossy = LinkState(0.1, 0.0, 5e6), LinkState(0.1, 0.05, 5e6)
    assert predict(s, rel, lossy, Load(), w).latency_s > predict(s, rel, clean, Load(), w).latency_s + 0.02
    assert predict(s, be, lossy, Load(), w).latency_s == pytest.approx(predict(s, be, clean, Load(), w).latency_s)
    assert predict(s, be, lossy, Load(), w).arrival == pytest.approx(1 - 0.05**2)
    assert predict(s, rel, lossy, Load(), w).arrival == 1.0


def test_tcp_capacity_follows_mathis():
    link = LinkState(0.3, 0.10, 1e6)
    assert link.tcp_capacity_bps() == pytest.approx(1400 * 8 / 0.3 * 1.22 / math.sqrt(0.1))
    assert LinkState(0.001, 0.0, 1e6).tcp_capacity_bps() == 1e6


def test_pessimistic_loss_bound():
    assert LinkState.upper_bound(0.1, 100) > LinkState.upper_bound(0.1, 10_000) > 0.1


# ---- MMCF choices ----------------------------------------------------------------------------
def _choice(plan, name):
    return plan.choices[name].config


def test_clean_link_carries_everything_at_full_rate(encodings):
    plan = optimise(fleet(encodings), LinkState(0.001, 0.0, 90e6, loss_bound=0.002), PROFILES["nominal"])
    assert plan.within_budget
    for i in range(4):
        assert _choice(plan, f"/robot_{i}/odom").rate_hz == 30
        assert _choice(plan, f"/robot_{i}/cmd_vel").rate_hz == 20
        cam = _choice(plan, f"/robot_{i}/camera/image_raw")
        assert cam.rate_hz == 10 and plan.choices[f"/robot_{i}/camera/image_raw"].prediction.delivery > 0.5


def test_lossy_link_sends_control_best_effort_with_redundancy_and_compresses_images(encodings):
    link = LinkState(0.1, 0.02, 4.5e6, loss_bound=0.025)
    plan = optimise(fleet(encodings), link, PROFILES["nominal"])
    assert plan.within_budget
    for i in range(4):
        for topic in ("odom", "cmd_vel"):
            cfg = _choice(plan, f"/robot_{i}/{topic}")
            pred = plan.choices[f"/robot_{i}/{topic}"].prediction
            assert not cfg.reliable and cfg.copies >= 2, cfg
            assert pred.arrival >= 0.99 and pred.feasible
            assert cfg.priority < _choice(plan, f"/robot_{i}/camera/image_raw").priority
        cam = _choice(plan, f"/robot_{i}/camera/image_raw")
        assert cam.encoding.codec != wire.Codec.RAW_SCALED or cam.encoding.scale < 1.0
    # and that beats the plain configuration's predicted control latency by far
    odom, *others = fleet(encodings)
    load = Load()
    for s in others:  # everyone else plain too: reliable, raw, same priority
        load.add(5, bandwidth_bps(s, static_plain_ros(s)), True)
    plain = predict(odom, static_plain_ros(odom), link, load, PROFILES["nominal"])
    assert plain.latency_s > 1.0  # raw cameras swamp 4.5 Mbit/s
    assert plan.choices["/robot_0/odom"].prediction.latency_s < plain.latency_s


def test_thin_contested_link_respects_budget_and_minimum_rates(encodings):
    link = LinkState(0.3, 0.10, 0.9e6, loss_bound=0.12)
    plan = optimise(fleet(encodings), link, PROFILES["contested"])
    assert plan.within_budget and plan.total_bps <= 0.9e6
    for name, c in plan.choices.items():
        if name.endswith(("odom", "cmd_vel")):
            assert c.config.rate_hz >= 10 and c.prediction.feasible, (name, c.config, c.prediction.why)
            assert c.prediction.arrival >= 0.99
        else:
            assert c.config.encoding.scale <= 0.5  # images give way


def test_bandwidth_starved_profile_spends_less_than_nominal(encodings):
    link = LinkState(0.05, 0.01, 20e6, loss_bound=0.015)
    nominal = optimise(fleet(encodings), link, PROFILES["nominal"])
    starved = optimise(fleet(encodings), link, PROFILES["bandwidth_starved"])
    assert starved.total_bps < 0.8 * nominal.total_bps


def test_impossible_budget_is_reported_not_hidden(encodings):
    plan = optimise(fleet(encodings), LinkState(0.3, 0.1, 50e3, loss_bound=0.12), PROFILES["contested"])
    assert not plan.within_budget


def test_hysteresis_keeps_a_working_configuration_on_small_changes(encodings):
    streams = fleet(encodings, robots=1)
    w = PROFILES["nominal"]
    first = optimise(streams, LinkState(0.1, 0.02, 4.5e6, loss_bound=0.025), w)
    current = {n: c.config for n, c in first.choices.items()}
    nudged = optimise(streams, LinkState(0.104, 0.021, 4.5e6, loss_bound=0.026), w, current)
    assert {n: c.config for n, c in nudged.choices.items()} == current
    changed = optimise(streams, LinkState(0.001, 0.0, 90e6, loss_bound=0.002), w, current)
    assert {n: c.config for n, c in changed.choices.items()} != current


def test_plain_ros_configuration():
    s = Stream("/robot_0/camera/image_raw", TopicClass.IMAGE, 10, 230460)
    cfg = static_plain_ros(s)
    assert cfg.reliable and cfg.block and cfg.rate_hz == 10 and cfg.encoding.codec == wire.Codec.RAW_SCALED


# ---- configuration -----------------------------------------------------------------------------
def test_shipped_link_config_loads():
    from conftest import REPO

    cfg = load_link_config(REPO / "config" / "site_link.yaml")
    assert cfg.other("robot") == "twin"
    rule = cfg.rule_for("/robot_3/cmd_vel", "geometry_msgs/msg/Twist")
    assert rule.from_ == "twin" and rule.topic_class == TopicClass.CONTROL and rule.required_delivery == 0.99
    assert cfg.rule_for("/robot_3/cmd_vel", "std_msgs/msg/String") is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sites": ["a", "a"]}, "different names"),
        ({"profile": "stealthy"}, "unknown profile 'stealthy'"),
        ({"topics": [{"pattern": "/x", "type": "Odometry", "from": "robot"}]}, "topics[0].type"),
        ({"topics": [{"pattern": "/x", "type": "a/msg/B", "from": "moon"}]}, "topics[0].from is 'moon'"),
        ({"budget_mbps": -1}, "budget_mbps"),
        ({"bandwidth": 3}, "unknown key"),
    ],
)
def test_bad_link_configs(tmp_path, change, message):
    data = {"sites": ["robot", "twin"], "topics": [{"pattern": "/x", "type": "a/msg/B", "from": "robot"}]}
    data.update(change)
    path = tmp_path / "link.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LinkConfigError) as info:
        load_link_config(path)
    assert message in str(info.value) and "link.yaml" in str(info.value)


def test_session_settings_are_checked():
    assert check(SessionSettings(listen=["tcp/0.0.0.0:7447", "udp/0.0.0.0:7448"])) == []
    assert any("not an endpoint" in p for p in check(SessionSettings(connect=["localhost:7447"])))
    assert any("give 'listen'" in p for p in check(SessionSettings()))
    assert any("go together" in p for p in check(SessionSettings(listen=["tcp/h:1"], user="u")))
    assert any("tls_root_ca" in p for p in check(SessionSettings(connect=["tls/h:1"])))
    assert SessionSettings(connect=["udp/h:1"]).has_best_effort_link()


# ---- the send path's decimation -------------------------------------------------------------
@pytest.mark.parametrize("fraction, expected", [(1.0, 200), (0.5, 100), (0.25, 50)])
def test_decimation_keeps_a_jittery_source_at_the_chosen_rate(fraction, expected):
    """A 20 Hz source with ±15 ms of timing jitter: at the full rate every message goes (the
    old "time since the last one" rule dropped a late one's successor), below it the
    long-run rate is the chosen one."""
    from sim_bridge.link.faults import Faults
    from sim_bridge.link.sender import OutStream, SendPath
    from sim_bridge.link.spec import TopicRule

    sent = []
    path = SendPath(1, lambda stream, packed, now: sent.append(packed), Faults(print), print, 0.3)
    try:
        rule = TopicRule.model_validate({"pattern": "/c", "type": "a/msg/B", "from": "x", "class": "control"})
        stream = OutStream("/c", "a/msg/B", rule, config=StreamConfig(20.0 * fraction, True, 1, 1, True))
        stream.native_rate_hz = 20.0
        rng = np.random.default_rng(3)
        for k in range(200):
            path.offer(stream, b"\x00\x01\x00\x00", 100.0 + k * 0.05 + rng.uniform(-0.015, 0.015))
    finally:
        path.stop()
    assert len(sent) == pytest.approx(expected, abs=2)
