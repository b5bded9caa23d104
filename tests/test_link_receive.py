"""The site link's receive path on hostile input (no ROS, no network): every malformed
frame, report and probe is counted and dropped, never raised, never allowed to allocate
beyond ``max_message_bytes``, and the stream goes on flowing after it. Targeted cases,
then hypothesis fuzzing with a bounded, derandomised number of examples."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
import tracemalloc
import zlib

import lz4.block
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from sim_bridge.link import codec, image_cdr, probes, wire
from sim_bridge.link.clock import ClockOffset
from sim_bridge.link.faults import FAULTS, Faults
from sim_bridge.link.monitor import SequenceTracker, Verdict
from sim_bridge.link.receiver import ReceivePath
from sim_bridge.link.spec import LinkConfig

MAX_BYTES = 1 << 20
ODOM, CMD, CAM = "/robot_0/odom", "/robot_0/cmd_vel", "/robot_0/camera/image_raw"
TYPES = {ODOM: "nav_msgs/msg/Odometry", CMD: "geometry_msgs/msg/Twist", CAM: "sensor_msgs/msg/Image"}
FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
CONFIG = LinkConfig.model_validate(
    {
        "sites": ["robot", "twin"],
        "topics": [
            {"pattern": "/robot_*/odom", "type": TYPES[ODOM], "from": "robot", "class": "state"},
            {"pattern": "/robot_*/cmd_vel", "type": TYPES[CMD], "from": "robot", "class": "control"},
            {"pattern": "/robot_*/camera/image_raw", "type": TYPES[CAM], "from": "robot", "class": "image"},
        ],
    }
)


class Stream:
    """Frames of one topic as the other site would send them."""

    def __init__(self, topic: str, epoch: int = 1):
        self.topic, self.epoch, self.seq = topic, epoch, 0

    def frame(self, payload: bytes = b"\x00\x01\x00\x00abcd", codec_: wire.Codec = wire.Codec.CDR, **kw) -> bytes:
        env = wire.Envelope(
            TYPES[self.topic], self.seq, kw.pop("send_time", time.time()), codec_, payload, epoch=self.epoch
        )
        self.seq += 1
        return wire.pack(env)

    @property
    def key(self) -> str:
        return wire.topic_key("robot", self.topic)


def receive_path(offset_s: float | None = 0.0) -> tuple[ReceivePath, list[str]]:
    logged: list[str] = []
    clock = ClockOffset()
    if offset_s is not None:
        t = time.time()
        clock.add(t, t + offset_s + 0.001, t + offset_s + 0.001, t + 0.002)
    return ReceivePath(CONFIG, "robot", clock, Faults(logged.append), MAX_BYTES, 0.3), logged


def deliver(path: ReceivePath, key: str, frame: bytes) -> bytes | None:
    arrival = path.accept(key, frame)
    return None if arrival is None else path.decode(arrival)


def flows(path: ReceivePath, stream: Stream, n: int = 3) -> bool:
    """The stream's next ``n`` good frames: all but at most one delivered (one may be
    needed to re-base a sequence a confirmed jump moved)."""
    got = [deliver(path, stream.key, stream.frame()) is not None for _ in range(n)]
    return sum(got) >= n - 1 and got[-1]


def only_fault(path: ReceivePath, name: str, count: int = 1) -> None:
    faults = path.faults.snapshot()
    assert faults[name] == count, faults
    assert all(v == 0 for k, v in faults.items() if k != name), faults


# ---- targeted cases ----------------------------------------------------------------------------
def test_a_good_stream_is_delivered_and_reported():
    path, logged = receive_path()
    odom = Stream(ODOM)
    assert all(deliver(path, odom.key, odom.frame()) == b"\x00\x01\x00\x00abcd" for _ in range(10))
    report = path.take_report()[ODOM]
    assert (report.expected, report.received) == (10, 10)
    assert not logged and all(v == 0 for v in path.faults.snapshot().values())


def test_truncated_frames_are_counted_and_the_stream_flows_on():
    path, logged = receive_path()
    odom = Stream(ODOM)
    whole = odom.frame()
    cuts = [n for n in range(len(whole)) if n < len(whole) - 8]  # keep the type name's truncations
    for n in cuts:
        assert path.accept(odom.key, whole[:n]) is None
    only_fault(path, "malformed_frames", len(cuts))
    assert flows(path, odom)
    assert len(logged) == 1 and "malformed_frames" in logged[0]  # throttled: one line, not one per frame


def test_bad_utf8_and_non_ros_type_names_are_malformed_frames():
    path, _ = receive_path()
    odom = Stream(ODOM)
    good = odom.frame()
    name = TYPES[ODOM].encode()
    for bad in (b"\xff\xfe" + name[2:], b"nav_msgs/msg/Odom\x00ry", b"../../etc/passwd/aaaa"[: len(name)]):
        assert path.accept(odom.key, good.replace(name, bad.ljust(len(name), b"x"))) is None
    only_fault(path, "malformed_frames", 3)
    assert flows(path, odom)


def test_short_image_headers_are_malformed_frames():
    path, _ = receive_path()
    cam = Stream(CAM)
    for payload in (b"", b"\x01\x02\x03", struct.pack("<iIHHH", 1, 2, 320, 240, 50) + b"short"):
        assert deliver(path, cam.key, cam.frame(payload, wire.Codec.JPEG)) is None
    only_fault(path, "malformed_frames", 3)
    meta = wire.ImageMeta(1, 2, 32, 24, "robot_0/camera")
    frame = np.full((24, 32, 3), 90, np.uint8)
    good = wire.pack_image(meta, codec.encode(frame, codec.ImageEncoding(wire.Codec.JPEG, 80)))
    header, pixels = image_cdr.parse_image(deliver(path, cam.key, cam.frame(good, wire.Codec.JPEG)))
    assert header.frame_id == "robot_0/camera" and pixels.shape == (24, 32, 3)


def test_lz4_asking_for_gigabytes_is_refused_before_allocating():
    path, _ = receive_path()
    odom = Stream(ODOM)
    bomb = (2**31 - 1).to_bytes(4, "little") + lz4.block.compress(b"\x00" * 1000, store_size=False)
    tracemalloc.start()
    try:
        assert deliver(path, odom.key, odom.frame(bomb, wire.Codec.CDR_LZ4)) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_BYTES
    only_fault(path, "oversized_frames")
    lied = (500).to_bytes(4, "little") + lz4.block.compress(b"\x00" * 1000, store_size=False)
    assert deliver(path, odom.key, odom.frame(lied, wire.Codec.CDR_LZ4)) is None  # size header lies
    assert path.faults.count("malformed_frames") == 1
    data = b"\x00\x01\x00\x00" + bytes(200)
    assert deliver(path, odom.key, odom.frame(lz4.block.compress(data, store_size=True), wire.Codec.CDR_LZ4)) == data


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header (CRC fixed) claims another size."""
    out = io.BytesIO()
    PILImage.new("RGB", (1, 1)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


@pytest.mark.parametrize(
    "codec_, encoded",
    [
        (wire.Codec.PNG, _png_claiming(50_000, 50_000)),  # Pillow itself calls it a bomb
        (wire.Codec.PNG, _png_claiming(4_000, 4_000)),  # 48 MB: within Pillow's limits, not ours
        (wire.Codec.RAW_SCALED, np.array([60_000, 60_000, 3], "<u2").tobytes() + bytes(100)),
    ],
    ids=["png_bomb", "png", "raw"],
)
def test_images_whose_headers_ask_for_gigabytes_are_refused_before_decoding(codec_, encoded):
    path, _ = receive_path()
    cam = Stream(CAM)
    payload = wire.pack_image(wire.ImageMeta(0, 0, 50_000, 50_000, "cam"), encoded)
    tracemalloc.start()
    try:
        assert deliver(path, cam.key, cam.frame(payload, codec_)) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_BYTES
    only_fault(path, "oversized_frames")


def test_a_frame_larger_than_the_maximum_is_refused_unparsed():
    path, _ = receive_path()
    odom = Stream(ODOM)
    assert path.accept(odom.key, odom.frame(bytes(MAX_BYTES + 1024))) is None
    only_fault(path, "oversized_frames")
    assert flows(path, odom)


def test_a_sequence_number_far_ahead_does_not_blackhole_the_stream():
    path, _ = receive_path()
    odom = Stream(ODOM)
    for _ in range(50):
        assert deliver(path, odom.key, odom.frame()) is not None
    path.take_report()
    rogue = Stream(ODOM)
    rogue.seq = 4_000_000_000
    assert deliver(path, odom.key, rogue.frame()) is None
    only_fault(path, "out_of_window_frames")
    for _ in range(50):  # the old tracker refused every one of these
        assert deliver(path, odom.key, odom.frame()) is not None
    report = path.take_report()[ODOM]
    assert (report.expected, report.received) == (50, 50)  # no phantom loss for the MMCF


def test_a_stream_that_really_jumped_is_followed_after_confirmation():
    tracker = SequenceTracker()
    assert all(tracker.accept(s) == Verdict.NEW for s in range(10))
    assert tracker.accept(5000) == Verdict.OUT_OF_WINDOW  # alone: garbage
    assert tracker.accept(5001) == Verdict.NEW  # confirmed: a long outage, followed
    assert [tracker.accept(s) for s in (5002, 5003, 10)] == [Verdict.NEW, Verdict.NEW, Verdict.OUT_OF_WINDOW]
    assert tracker.take_window() == (10 + 4, 10 + 4)  # the jump is neither loss nor delivery
    garbage_first = SequenceTracker()
    assert garbage_first.accept(3_000_000_000) == Verdict.NEW  # nothing to judge it by yet
    assert [garbage_first.accept(s) for s in range(3)] == [Verdict.OUT_OF_WINDOW, Verdict.NEW, Verdict.NEW]


def test_frames_from_the_wrong_site_or_topic_are_unknown_topics():
    path, _ = receive_path()
    odom = Stream(ODOM)
    assert path.accept(wire.topic_key("twin", ODOM), odom.frame()) is None  # our own site's name
    assert path.accept(wire.topic_key("robot", "/robot_0/secret"), odom.frame()) is None
    only_fault(path, "unknown_topics", 2)
    assert flows(path, odom)


# ---- stale commands ----------------------------------------------------------------------------
def test_safety_critical_messages_older_than_the_maximum_age_are_dropped():
    path, logged = receive_path()
    cmd, odom = Stream(CMD), Stream(ODOM)
    assert deliver(path, cmd.key, cmd.frame(send_time=time.time() - 0.1)) is not None
    assert deliver(path, cmd.key, cmd.frame(send_time=time.time() - 0.5)) is None
    assert deliver(path, cmd.key, cmd.frame(send_time=time.time() + 5.0)) is None  # clocks disagree
    only_fault(path, "stale_dropped", 2)
    assert "0.5" in logged[0] and "max_command_age_s" in logged[0]
    assert deliver(path, odom.key, odom.frame(send_time=time.time() - 5.0)) is not None  # not safety-critical
    report = path.take_report()[CMD]
    assert (report.expected, report.received) == (3, 3)  # they did cross the link: no loss


@pytest.mark.parametrize("offset_s", [-7.5, 3.0, 120.0])
def test_ages_are_judged_across_sites_whose_clocks_differ(offset_s):
    """The sending site's clock is ``offset_s`` ahead of ours; probes measured it."""
    path, _ = receive_path(offset_s)
    cmd = Stream(CMD)
    their_now = time.time() + offset_s
    assert deliver(path, cmd.key, cmd.frame(send_time=their_now - 0.05)) is not None
    assert deliver(path, cmd.key, cmd.frame(send_time=their_now - 0.6)) is None
    assert path.faults.count("stale_dropped") == 1


def test_commands_wait_for_the_clock_offset():
    path, logged = receive_path(offset_s=None)
    cmd = Stream(CMD)
    assert deliver(path, cmd.key, cmd.frame()) is None
    assert path.faults.count("stale_dropped") == 1 and "not measured" in logged[0]


def test_clock_offset_comes_from_the_tightest_exchange_and_follows_a_step():
    clock = ClockOffset()
    t = 1000.0
    clock.add(t, t + 2.0 + 0.050, t + 2.0 + 0.051, t + 0.060)  # asymmetric, slow: θ off by 20 ms
    clock.add(t + 1, t + 1 + 2.0 + 0.002, t + 1 + 2.0 + 0.003, t + 1 + 0.005)  # tight
    clock.add(t + 2, t + 2 + 2.0 + 0.090, t + 2 + 2.0 + 0.091, t + 2 + 0.100)
    assert clock.offset_s() == pytest.approx(2.0, abs=0.001)
    assert clock.uncertainty_s() == pytest.approx(0.002)
    clock.add(t + 3, t + 3 + 9.0 + 0.002, t + 3 + 9.0 + 0.003, t + 3 + 0.005)  # their clock stepped 7 s
    assert clock.offset_s() == pytest.approx(9.0, abs=0.001)
    clock.add(t + 4, t + 4 + 9.0, t + 4 + 9.5, t + 4.1)  # answered before asked (δ < 0): ignored
    assert clock.offset_s() == pytest.approx(9.0, abs=0.001)


def test_a_late_subscriber_gets_the_latest_command_only_while_fresh():
    path, _ = receive_path()
    cmd = Stream(CMD)
    arrival = path.accept(cmd.key, cmd.frame(send_time=time.time() - 0.1))
    path.delivered(arrival, b"latest", heard=False)
    assert [d for _, d in path.unheard_due(lambda topic: True)] == [b"latest"]
    arrival = path.accept(cmd.key, cmd.frame(send_time=time.time() - 0.25))
    path.delivered(arrival, b"aging", heard=False)
    time.sleep(0.1)  # now older than 0.3 s
    assert path.unheard_due(lambda topic: True) == []
    assert path.faults.count("stale_dropped") == 1


def test_a_late_subscriber_is_not_handed_a_command_from_the_future():
    path, _ = receive_path(offset_s=0.0)
    cmd = Stream(CMD)
    arrival = path.accept(cmd.key, cmd.frame())
    path.delivered(arrival, b"now", heard=False)
    path.clock.add(time.time(), time.time() + 5.0, time.time() + 5.0, time.time() + 0.001)  # clocks now 5 s apart
    assert path.unheard_due(lambda topic: True) == []
    assert path.faults.count("stale_dropped") == 1


def test_a_command_stream_gone_silent_is_due_one_stop():
    data = CONFIG.model_dump(by_alias=True)
    data["topics"][1]["stop_after_silent_s"] = 0.25  # cmd_vel
    config = LinkConfig.model_validate(data)
    clock = {"now": time.time()}
    path = ReceivePath(
        config, "robot", receive_path()[0].clock, Faults(lambda m: None), MAX_BYTES, 0.3, lambda: clock["now"]
    )
    cmd, odom = Stream(CMD), Stream(ODOM)
    for stream in (cmd, odom):
        arrival = path.accept(stream.key, stream.frame(send_time=clock["now"]))
        path.delivered(arrival, b"go", heard=True)
    clock["now"] += 0.2
    assert path.silent_streams() == []
    clock["now"] += 0.1  # 0.3 s without a command; odometry has no stop_after_silent_s
    assert [s.topic for s in path.silent_streams()] == [CMD]
    clock["now"] += 1.0
    assert path.silent_streams() == []  # one stop per silence
    arrival = path.accept(cmd.key, cmd.frame(send_time=clock["now"]))
    path.delivered(arrival, b"go again", heard=True)
    clock["now"] += 0.3
    assert [s.topic for s in path.silent_streams()] == [CMD]


def test_stop_after_silent_s_only_on_safety_critical_topics():
    data = CONFIG.model_dump(by_alias=True)
    data["topics"][0]["stop_after_silent_s"] = 0.25  # odometry
    with pytest.raises(ValueError, match=r"topics\[0\]\.stop_after_silent_s is for safety-critical"):
        LinkConfig.model_validate(data)


# ---- reports and probes ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, why",
    [
        (b"[1, 2, 3]", "object of topics"),
        (b'{"/robot_0/odom": {"received": 3}}', "'expected'"),
        (b'{"/robot_0/odom": {"expected": "ten", "received": 3}}', "'expected'"),
        (b'{"/robot_0/odom": {"expected": 3, "received": 5}}', "received 5 of 3"),
        (b'{"/robot_0/odom": {"expected": 3, "received": 1, "latency_ms_median": "fast"}}', "latency"),
        (b'{"/robot_0/odom": [1]}', "expected an object"),
        (b'{"odom": {"expected": 3, "received": 1}}', "not a topic"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b" " * (probes.MAX_REPORT_BYTES + 1), "bytes"),
    ],
)
def test_malformed_reports_are_refused_with_a_reason(raw, why):
    with pytest.raises(probes.ReportError, match=why):
        probes.parse_report(raw)


def test_reports_and_probes_round_trip():
    report = {ODOM: probes.TopicReport(10, 9, 2, 3.5), CMD: probes.TopicReport(5, 5)}
    back = probes.parse_report(probes.report(report))
    assert back[ODOM] == report[ODOM]
    assert (back[CMD].expected, back[CMD].received, back[CMD].packets) == (5, 5, 1)
    assert np.isnan(back[CMD].latency_ms_median)
    assert probes.parse_ping(probes.ping(7, 12.5)) == (7, 12.5)
    assert probes.parse_pong(probes.pong(7, 1.0, 2.0, 3.0)) == probes.Pong(7, 1.0, 2.0, 3.0)
    for bad in (b"", b"{'id': 3}", probes.ping(1, 2.0)[:-1], probes.pong(1, 2.0, 3.0, float("nan"))):
        with pytest.raises(probes.ProbeError):
            probes.parse_pong(bad)


# ---- fuzzing -------------------------------------------------------------------------------------
def _good_frames() -> list[tuple[str, bytes]]:
    out = []
    odom, cmd, cam = Stream(ODOM, 9), Stream(CMD, 9), Stream(CAM, 9)
    out.append((odom.key, odom.frame()))
    out.append((odom.key, odom.frame(lz4.block.compress(bytes(300), store_size=True), wire.Codec.CDR_LZ4)))
    out.append((cmd.key, cmd.frame()))
    meta = wire.ImageMeta(1, 2, 16, 12, "cam")
    img = np.full((12, 16, 3), 40, np.uint8)
    for enc in (wire.Codec.JPEG, wire.Codec.PNG, wire.Codec.WEBP, wire.Codec.RAW_SCALED):
        out.append((cam.key, cam.frame(wire.pack_image(meta, codec.encode(img, codec.ImageEncoding(enc))), enc)))
    return out


GOOD = _good_frames()


@st.composite
def mutated_frames(draw) -> tuple[str, bytes]:
    key, frame = draw(st.sampled_from(GOOD))
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "overwrite_int"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            data = data[:at] if draw(st.booleans()) else data[:at] + data[at + draw(st.integers(1, 16)) :]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "overwrite_int":
            data[at : at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 65535, 10**6])))
    return key, bytes(data)


@FUZZ
@given(
    frames=st.lists(
        st.one_of(mutated_frames(), st.tuples(st.sampled_from([k for k, _ in GOOD]), st.binary())), max_size=8
    )
)
def test_fuzzed_frames_never_raise_and_never_stop_the_stream(frames):
    path, _ = receive_path()
    for key, frame in frames:
        arrival = path.accept(key, frame)
        if arrival is not None:
            out = path.decode(arrival)
            assert out is None or len(out) <= MAX_BYTES + 512
    assert set(path.faults.snapshot()) == set(FAULTS)
    assert flows(path, Stream(ODOM, epoch=4242))
    assert flows(path, Stream(CMD, epoch=4242))


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_fuzzed_reports_parse_or_are_refused(raw):
    try:
        parsed = probes.parse_report(raw)
    except probes.ReportError:
        return
    assert all(0 <= r.received <= r.expected and r.packets >= 1 for r in parsed.values())


@FUZZ
@given(raw=st.binary(max_size=64))
def test_fuzzed_probes_parse_or_are_refused(raw):
    for parse in (probes.parse_ping, probes.parse_pong):
        with contextlib.suppress(probes.ProbeError):
            parse(raw)


@FUZZ
@given(raw=st.binary(max_size=200), cut=st.integers(0, 400))
def test_fuzzed_image_messages_parse_or_are_refused(raw, cut):
    good = image_cdr.image_bytes(1, 2, "cam", np.zeros((4, 5, 3), np.uint8))
    for data in (raw, good[:cut], good[:cut] + raw):
        try:
            header, frame = image_cdr.parse_image(data)
        except image_cdr.ImageCdrError:
            continue
        assert frame.shape[:2] == (header.height, header.width)
