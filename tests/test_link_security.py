"""The site link is closed to strangers: secure by default, passwords, mutual TLS, no plaintext.

Certificates are made here with ``sim_bridge.link.certificates`` (the pinned ``cryptography``
package), never skipped for a missing tool. Sessions are real zenoh sessions opened through
``sim_bridge.link.transport``; the node tests run real ``site_link`` processes; the
plaintext test captures every packet in a fresh network namespace (root, as CI runs).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import zenoh
from conftest import REPO
from geometry_msgs.msg import Twist
from rclpy.serialization import serialize_message
from ros_helpers import BIN, Probe, fresh_domain, link_status, ros_env

from sim_bridge.link import probes, wire
from sim_bridge.link.transport import (
    SessionSettings,
    TransportError,
    check,
    is_loopback_host,
    open_session,
    refuse_insecure,
    security_problems,
    zenoh_config,
)
from sim_bridge.netem.namespaces import available

CONFIG = str(REPO / "config" / "site_link.yaml")
NETNS_ADDRESS = "10.231.0.1"  # the veth address inside the namespaces these tests create
root_ok, root_why = available()
needs_root = pytest.mark.skipif(not root_ok, reason=root_why)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Two independent authorities made by ``sern link certs``: ours (robot and twin) and a stranger's."""
    folder = tmp_path_factory.mktemp("pki")
    made = {}
    for name in ("ours", "theirs"):
        hosts = f"localhost,127.0.0.1,{NETNS_ADDRESS}"
        res = subprocess.run(
            [str(BIN / "sern"), "link", "certs", "--out", str(folder / name), "--site", f"robot={hosts}"]
            + ["--site", "twin=twin", "--days", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        made[name] = {
            "ca": str(folder / name / "ca.pem"),
            **{
                f"{site}{suffix}": str(folder / name / f"{site}{ext}")
                for site in ("robot", "twin")
                for suffix, ext in (("", ".pem"), ("_key", ".key"))
            },
        }
    return made


def test_sern_link_certs_makes_a_ca_and_site_certificates(pki, tmp_path, capsys):
    from cryptography import x509

    from sern.cli import main as sern_main

    robot = x509.load_pem_x509_certificate(Path(pki["ours"]["robot"]).read_bytes())
    ca = x509.load_pem_x509_certificate(Path(pki["ours"]["ca"]).read_bytes())
    robot.verify_directly_issued_by(ca)
    names = robot.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", NETNS_ADDRESS}
    assert Path(pki["ours"]["robot_key"]).stat().st_mode & 0o077 == 0  # the owner's only
    for args, message in (
        (["--out", str(tmp_path), "--site", "robot", "--site", "twin=t"], "give NAME=HOST"),
        (["--out", str(tmp_path), "--site", "robot=r"], "at least two"),
        (["--out", str(Path(pki["ours"]["ca"]).parent), "--site", "robot=r", "--site", "twin=t"], "not overwriting"),
    ):
        try:
            code = sern_main(["link", "certs", *args])
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2 and message in err, err


def free_ports(n: int) -> list[int]:
    """Ports free for both TCP and UDP on loopback."""
    ports = []
    while len(ports) < n:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def peers(session) -> list:
    return list(session.info.peers_zid())


def messages_crossing(sender, receiver, seconds: float) -> list[bytes]:
    """What ``receiver`` gets of reliable and best-effort puts ``sender`` makes for ``seconds``."""
    got: list[bytes] = []
    sub = receiver.declare_subscriber("sern/test/**", lambda s: got.append(s.payload.to_bytes()))
    pubs = [
        sender.declare_publisher("sern/test/reliable", reliability=zenoh.Reliability.RELIABLE),
        sender.declare_publisher(
            "sern/test/best_effort",
            reliability=zenoh.Reliability.BEST_EFFORT,
            congestion_control=zenoh.CongestionControl.DROP,
        ),
    ]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for pub in pubs:
            pub.put(b"hello")
        time.sleep(0.05)
    time.sleep(0.3)
    sub.undeclare()
    return got


def close(*sessions) -> None:
    for s in sessions:
        with contextlib.suppress(zenoh.ZError):  # a QUIC close can time out; the session is gone anyway
            s.close()


# ---- the policy, without a network -----------------------------------------------------------


def resolver_stub(names: dict[str, list[str]]):
    """Stands in for getaddrinfo: fixed answers, so tests do not depend on this host's DNS."""

    def resolve(host, _port):
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in names[host]]

    return resolve


def test_loopback_needs_nothing_but_every_other_address_needs_authentication():
    for host in ("127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1", "localhost"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "10.0.0.2", "192.168.1.7", "fe80::1"):
        assert not is_loopback_host(host), host
    names = resolver_stub(
        {"robot.lan": ["10.0.0.5"], "alias": ["127.0.0.2", "::1"], "mixed": ["127.0.0.1", "10.0.0.9"]}
    )
    assert is_loopback_host("alias", names)
    assert not is_loopback_host("robot.lan", names)
    assert not is_loopback_host("mixed", names)  # one way out is enough
    assert not is_loopback_host("nowhere", names)  # unresolvable now: may resolve to anything later

    for listen in (["tcp/127.0.0.1:7447", "udp/127.0.0.1:7448"], ["tcp/[::1]:7447"], ["tcp/localhost:7447"]):
        assert security_problems(SessionSettings(listen=listen)) == [], listen
    assert security_problems(SessionSettings(connect=["tcp/alias:7447"]), names) == []

    (problem,) = security_problems(SessionSettings(listen=["tcp/0.0.0.0:7447"]))
    assert "'listen': tcp/0.0.0.0:7447 can be reached from other machines" in problem
    assert "'credentials_file'" in problem and "'mtls'" in problem
    (problem,) = security_problems(SessionSettings(listen=["tcp/[::]:7447"]))
    assert "tcp/[::]:7447" in problem
    (problem,) = security_problems(SessionSettings(connect=["tcp/robot.lan:7447"]), names)
    assert "'connect': tcp/robot.lan:7447 leaves this machine unauthenticated" in problem
    assert "'user' and 'password_file'" in problem


def test_passwords_or_certificates_authenticate(pki):
    ours = pki["ours"]
    tls = {"tls_root_ca": ours["ca"], "tls_certificate": ours["robot"], "tls_private_key": ours["robot_key"]}
    creds = {"credentials_file": ours["ca"]}  # any existing file: only its presence is judged here
    assert security_problems(SessionSettings(listen=["tcp/0.0.0.0:7447", "udp/0.0.0.0:7448"], **creds)) == []
    assert security_problems(SessionSettings(listen=["tls/0.0.0.0:7447", "quic/0.0.0.0:7448"], mtls=True, **tls)) == []
    # TLS without client certificates: the listener does not know who connects.
    (problem,) = security_problems(SessionSettings(listen=["tls/0.0.0.0:7447"], **tls))
    assert "set 'mtls' true" in problem
    # mtls guards only tls/quic endpoints; a tcp listener beside them would let anyone in.
    problems = security_problems(SessionSettings(listen=["tls/0.0.0.0:7447", "tcp/0.0.0.0:7449"], mtls=True, **tls))
    assert any("'listen': tcp/0.0.0.0:7449 can be reached" in p for p in problems)
    assert security_problems(SessionSettings(connect=["tcp/10.0.0.2:7447"], user="twin", password="pw")) == []
    assert security_problems(SessionSettings(connect=["tls/10.0.0.2:7447"], tls_root_ca=ours["ca"])) == []


def test_plaintext_beside_tls_is_refused_unless_insecure(pki):
    ours = pki["ours"]
    settings = SessionSettings(
        listen=["tls/10.0.0.2:7447", "udp/10.0.0.2:7448"],
        tls_root_ca=ours["ca"],
        tls_certificate=ours["robot"],
        tls_private_key=ours["robot_key"],
        mtls=True,
        credentials_file=ours["ca"],
    )
    assert check(settings) == []
    with pytest.raises(TransportError) as info:
        refuse_insecure(settings)
    text = str(info.value)
    assert "'listen': udp/10.0.0.2:7448 would carry best-effort traffic" in text
    assert "in plaintext beside the TLS endpoint tls/10.0.0.2:7447: use quic/10.0.0.2:7448 instead" in text
    assert "set 'insecure' true to run it unauthenticated on purpose" in text
    with pytest.raises(TransportError, match=re.escape("use quic/10.0.0.2:7448")):
        zenoh_config(settings)  # what open_session builds: refused there too
    settings.insecure = True
    assert len(refuse_insecure(settings)) == 1  # let through, and said, for the node to log
    zenoh_config(settings)


def test_mutual_tls_settings_are_checked(pki, tmp_path):
    ours = pki["ours"]
    problems = check(SessionSettings(connect=["tls/h:1"], tls_root_ca=ours["ca"], mtls=True))
    assert any("'mtls': connecting over tls/quic needs 'tls_client_certificate'" in p for p in problems)
    problems = check(
        SessionSettings(
            connect=["tls/h:1"],
            tls_root_ca=ours["ca"],
            tls_client_certificate=ours["twin"],
            tls_client_private_key=ours["twin_key"],
        )
    )
    assert any("presented only with 'mtls' true" in p for p in problems)
    (tmp_path / "swapped.pem").write_text(Path(ours["twin_key"]).read_text())
    problems = check(SessionSettings(connect=["tls/h:1"], tls_root_ca=str(tmp_path / "swapped.pem")))
    assert any("'tls_root_ca'" in p and "holds no PEM certificate" in p for p in problems)
    assert any("has no port" in p for p in check(SessionSettings(connect=["tcp/10.0.0.2"])))


def test_quic_beside_tls_is_the_best_effort_link():
    both = SessionSettings(connect=["tls/h:7447", "quic/h:7448"], tls_root_ca=__file__)
    alone = SessionSettings(connect=["quic/h:7448"], tls_root_ca=__file__)
    assert both.has_best_effort_link() and not alone.has_best_effort_link()
    assert SessionSettings(connect=["tcp/h:7447", "udp/h:7448"]).has_best_effort_link()


# ---- real zenoh sessions -----------------------------------------------------------------------


def assert_all_refused(robot, strangers: dict[str, SessionSettings]) -> None:
    """The strangers, trying all at once, form no session with ``robot``; nothing crosses."""
    sessions = {name: open_session(settings) for name, settings in strangers.items()}
    try:
        time.sleep(2.0)  # several connection attempts each (retries from 250 ms)
        assert peers(robot) == [], "the robot site accepted someone"
        for name, session in sessions.items():
            assert peers(session) == [], name
            assert messages_crossing(session, robot, 0.5) == [], name
            assert messages_crossing(robot, session, 0.5) == [], name
    finally:
        close(*sessions.values())


def test_a_wrong_password_never_forms_a_session(tmp_path):
    (tmp_path / "accepted").write_text("twin:right-secret\n")
    p_tcp, p_udp = free_ports(2)
    endpoints = [f"tcp/127.0.0.1:{p_tcp}", f"udp/127.0.0.1:{p_udp}"]
    robot = open_session(
        SessionSettings(
            listen=endpoints, user="robot", password="robot-secret", credentials_file=str(tmp_path / "accepted")
        )
    )
    try:
        strangers = {
            "wrong password": SessionSettings(connect=endpoints, user="twin", password="guess"),
            "unknown user": SessionSettings(connect=endpoints, user="intruder", password="right-secret"),
            "no credentials": SessionSettings(connect=endpoints),
            "no credentials, best-effort link only": SessionSettings(connect=endpoints[1:]),
        }
        assert_all_refused(robot, strangers)
        # The same site with the right password: the session forms and both kinds of traffic cross.
        twin = open_session(SessionSettings(connect=endpoints, user="twin", password="right-secret"))
        try:
            assert wait_for(lambda: peers(twin) and peers(robot), 10.0)
            got = messages_crossing(twin, robot, 1.0)
            assert len(got) >= 20, len(got)
        finally:
            close(twin)
    finally:
        close(robot)


def _tls_listener(pki, endpoints: list[str]) -> SessionSettings:
    ours = pki["ours"]
    return SessionSettings(
        listen=endpoints,
        tls_root_ca=ours["ca"],
        tls_certificate=ours["robot"],
        tls_private_key=ours["robot_key"],
        mtls=True,
    )


def _tls_client(pki, endpoints: list[str], trust: str, client: str | None) -> SessionSettings:
    settings = SessionSettings(connect=endpoints, tls_root_ca=pki[trust]["ca"])
    if client is not None:
        settings.mtls = True
        settings.tls_client_certificate = pki[client]["twin"]
        settings.tls_client_private_key = pki[client]["twin_key"]
    return settings


def test_an_unknown_client_certificate_is_refused(pki):
    p_tls, p_quic = free_ports(2)
    endpoints = [f"tls/localhost:{p_tls}", f"quic/localhost:{p_quic}"]
    robot = open_session(_tls_listener(pki, endpoints))
    try:
        strangers = {
            "a client certificate signed by another CA": _tls_client(pki, endpoints, "ours", "theirs"),
            "no client certificate": _tls_client(pki, endpoints, "ours", None),
            "over QUIC only, another CA's client certificate": _tls_client(pki, endpoints[1:], "ours", "theirs"),
            "a listener this site does not trust": _tls_client(pki, endpoints, "theirs", "ours"),
        }
        assert_all_refused(robot, strangers)
        twin = open_session(_tls_client(pki, endpoints, "ours", "ours"))
        try:
            assert wait_for(lambda: len(list(robot.info.links())) == 2, 10.0)
            # Each side knows who the other is from its certificate.
            assert {link.auth_identifier for link in robot.info.links()} == {"twin"}
            assert {link.auth_identifier for link in twin.info.links()} == {"robot"}
            kinds = {str(link.dst).split("/")[0]: str(link.reliability) for link in twin.info.links()}
            assert kinds == {"tls": "Reliability.RELIABLE", "quic": "Reliability.BEST_EFFORT"}
            assert len(messages_crossing(twin, robot, 1.0)) >= 20
        finally:
            close(twin)
    finally:
        close(robot)


# ---- what crosses the wire -----------------------------------------------------------------------


def _capture(tmp_path, robot: dict, twin: dict, links: int) -> dict:
    marker = f"SERN-PLAINTEXT-MARKER-{uuid.uuid4().hex}"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"robot": robot, "twin": twin, "marker": marker, "count": 60, "links": links}))
    res = subprocess.run(
        [sys.executable, str(REPO / "tests" / "link_capture.py"), str(spec)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@needs_root
@pytest.mark.parametrize("links", ["tls+quic", "tls"])
def test_best_effort_never_crosses_in_plaintext_when_tls_is_configured(pki, tmp_path, links):
    a = NETNS_ADDRESS
    endpoints = [f"tls/{a}:7447", f"quic/{a}:7448"] if links == "tls+quic" else [f"tls/{a}:7447"]
    out = _capture(
        tmp_path,
        robot=vars(_tls_listener(pki, endpoints)),
        twin=vars(_tls_client(pki, endpoints, "ours", "ours")),
        links=len(endpoints),
    )
    assert out["received"] >= 50, out  # the marker crossed, best effort ...
    assert out["marker_packets"] == [], out["marker_packets"][:3]  # ... and never readable on the wire
    assert out["frames"] > 100
    if links == "tls+quic":
        assert {"dst": f"quic/{a}:7448?rel=0", "reliability": "Reliability.BEST_EFFORT"} in out["links"]
        assert out["udp_bytes_by_port"].get("7448", 0) > 60 * 40  # best effort rode QUIC datagrams


@needs_root
def test_plaintext_udp_shows_the_marker_and_needs_insecure(tmp_path):
    """The control: the same capture sees the marker when best effort rides plaintext UDP."""
    a = NETNS_ADDRESS
    endpoints = [f"tcp/{a}:7447", f"udp/{a}:7448"]
    with pytest.raises(TransportError, match="insecure"):
        refuse_insecure(SessionSettings(listen=endpoints))
    out = _capture(
        tmp_path,
        robot={"listen": endpoints, "insecure": True},
        twin={"connect": endpoints, "insecure": True},
        links=2,
    )
    assert out["received"] >= 50
    assert len(out["marker_packets"]) >= 50
    assert {p["protocol"] for p in out["marker_packets"]} == {"udp"}
    assert {p["ports"][0] for p in out["marker_packets"]} == {7448}


# ---- the real node ---------------------------------------------------------------------------------


class NodeOutput:
    """A process's combined output, read on a thread, searchable while it runs."""

    def __init__(self, cmd: list[str], env: dict):
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        return wait_for(
            lambda: any(text in line for line in self.lines) or self.proc.poll() is not None, timeout
        ) and any(text in line for line in self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._thread.join(timeout=5)
        return code

    def text(self) -> str:
        return "\n".join(self.lines)


def site_link_cmd(site: str, *params: str) -> list[str]:
    cmd = [str(BIN / "site_link"), "--ros-args", "-p", f"site:={site}", "-p", f"config:={CONFIG}"]
    for p in params:
        cmd += ["-p", p]
    return cmd


def in_fresh_namespace(cmd: list[str]) -> list[str]:
    """``cmd`` in a new network namespace with loopback and a veth at NETNS_ADDRESS."""
    setup = (
        "ip link set lo up && ip link add sern0 type veth peer name sern1 && "
        f"ip addr add {NETNS_ADDRESS}/24 dev sern0 && ip link set sern0 up && ip link set sern1 up"
    )
    return ["unshare", "--net", "sh", "-c", f'{setup} && exec "$@"', "sh", *cmd]


def test_a_site_link_open_to_the_network_exits_2_and_says_what_to_give(pki):
    env = ros_env(fresh_domain())
    ours = pki["ours"]
    cases = [
        (["listen:=['tcp/0.0.0.0:7447', 'udp/0.0.0.0:7448']"], "'listen': tcp/0.0.0.0:7447 can be reached"),
        (["connect:=['tcp/10.1.2.3:7447']"], "'connect': tcp/10.1.2.3:7447 leaves this machine unauthenticated"),
        (
            [
                "connect:=['tls/10.1.2.3:7447', 'udp/10.1.2.3:7448']",
                f"tls_root_ca:={ours['ca']}",
                "user:=twin",
                f"password_file:={ours['ca']}",
            ],
            "use quic/10.1.2.3:7448 instead",
        ),
    ]
    for params, message in cases:
        res = subprocess.run(site_link_cmd("robot", *params), env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, (params, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert "set 'insecure' true to run it unauthenticated on purpose" in res.stderr


@needs_root
def test_on_a_real_network_address_it_refuses_or_runs_insecure_on_purpose(tmp_path):
    """On an address of this host that is not loopback (a veth in a namespace made here)."""
    env = ros_env(fresh_domain())
    a = NETNS_ADDRESS
    listen = f"listen:=['tcp/{a}:7447', 'udp/{a}:7448']"
    res = subprocess.run(
        in_fresh_namespace(site_link_cmd("robot", listen)), env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2, res.stderr
    assert f"'listen': tcp/{a}:7447 can be reached from other machines" in res.stderr
    assert f"'listen': udp/{a}:7448 can be reached from other machines" in res.stderr
    assert "Traceback" not in res.stderr

    node = NodeOutput(in_fresh_namespace(site_link_cmd("robot", listen, "insecure:=true")), env)
    try:
        assert node.wait_for("site robot ↔ twin"), node.text()  # it runs ...
        warnings = [line for line in node.lines if "INSECURE (insecure:=true)" in line]
        assert len(warnings) == 2 and "WARN" in warnings[0], node.text()  # ... and says why it should not
        assert f"tcp/{a}:7447 can be reached" in warnings[0]
    finally:
        assert node.stop() == 0, node.text()

    (tmp_path / "accepted").write_text("twin:right-secret\n")
    node = NodeOutput(
        in_fresh_namespace(site_link_cmd("robot", listen, f"credentials_file:={tmp_path / 'accepted'}")), env
    )
    try:
        assert node.wait_for("site robot ↔ twin"), node.text()
        assert not any("INSECURE" in line for line in node.lines)
    finally:
        assert node.stop() == 0, node.text()


def test_site_links_join_over_mutual_tls_and_refuse_a_strangers_certificate(pki):
    ours, theirs = pki["ours"], pki["theirs"]
    p_tls, p_quic = free_ports(2)
    endpoints = f"['tls/localhost:{p_tls}', 'quic/localhost:{p_quic}']"
    d_robot, d_twin = fresh_domain(), fresh_domain()
    common = [f"tls_root_ca:={ours['ca']}", "mtls:=true"]
    robot = NodeOutput(
        site_link_cmd(
            "robot",
            f"listen:={endpoints}",
            f"tls_certificate:={ours['robot']}",
            f"tls_private_key:={ours['robot_key']}",
            *common,
        ),
        ros_env(d_robot),
    )
    try:
        for pki_of_twin, should_connect in ((theirs, False), (ours, True)):
            twin = NodeOutput(
                site_link_cmd(
                    "twin",
                    f"connect:={endpoints}",
                    f"tls_client_certificate:={pki_of_twin['twin']}",
                    f"tls_client_private_key:={pki_of_twin['twin_key']}",
                    *common,
                ),
                ros_env(d_twin),
            )
            there = Probe(d_twin, "twin_side")
            try:
                if should_connect:
                    ok = there.spin_until(
                        lambda p=there: getattr(link_status(p, "twin", 2.0), "level", None) == b"\x00", 30
                    )
                    assert ok, twin.text()
                else:
                    there.spin_for(5.0)
                    status = link_status(there, "twin", 5.0)
                    assert status is not None, twin.text()
                    assert status.level == b"\x02" and "no session" in status.message
            finally:
                there.close()
                twin.stop()
    finally:
        robot.stop()


class Intruder:
    """A zenoh peer that speaks the site link's wire format as the twin site would."""

    def __init__(self, settings: SessionSettings):
        self.session = open_session(settings)
        self.epoch = random.randint(0, 0xFFFF)
        self.seq = 0
        # Answer the robot site's probes as a twin site would, so that a link with it looks up.
        self.session.declare_subscriber("sern/probe/robot/ping", self._answer)

    def _answer(self, sample) -> None:
        probe_id, t1 = probes.parse_ping(sample.payload.to_bytes())
        now = time.time()
        self.session.put("sern/probe/twin/pong", probes.pong(probe_id, t1, now, now))

    def command(self, linear_x: float) -> None:
        msg = Twist()
        msg.linear.x = linear_x
        env = wire.Envelope("geometry_msgs/msg/Twist", self.seq, time.time(), wire.Codec.CDR, serialize_message(msg))
        env.epoch = self.epoch
        self.seq += 1
        self.session.put(wire.topic_key("twin", "/robot_0/cmd_vel"), wire.pack(env))

    def close(self) -> None:
        close(self.session)


@pytest.mark.parametrize("guard", ["password", "mtls"])
def test_a_peer_without_credentials_cannot_command_the_robot(pki, tmp_path, guard):
    ours = pki["ours"]
    p1, p2 = free_ports(2)
    if guard == "password":
        (tmp_path / "accepted").write_text("twin:right-secret\n")
        (tmp_path / "robot_pw").write_text("robot-secret\n")
        endpoints = [f"tcp/127.0.0.1:{p1}", f"udp/127.0.0.1:{p2}"]
        robot_params = [
            "user:=robot",
            f"password_file:={tmp_path / 'robot_pw'}",
            f"credentials_file:={tmp_path / 'accepted'}",
        ]
        stranger = SessionSettings(connect=endpoints)
        friend = SessionSettings(connect=endpoints, user="twin", password="right-secret")
    else:
        endpoints = [f"tls/localhost:{p1}", f"quic/localhost:{p2}"]
        robot_params = [
            f"tls_root_ca:={ours['ca']}",
            f"tls_certificate:={ours['robot']}",
            f"tls_private_key:={ours['robot_key']}",
            "mtls:=true",
        ]
        stranger = SessionSettings(connect=endpoints, tls_root_ca=ours["ca"])  # checks the robot, has no certificate
        friend = _tls_client(pki, endpoints, "ours", "ours")
    d_robot = fresh_domain()
    robot = NodeOutput(site_link_cmd("robot", f"listen:={endpoints!r}", *robot_params), ros_env(d_robot))
    here = Probe(d_robot, "robot_side")
    commands: list[Twist] = []
    here.node.create_subscription(Twist, "robot_0/cmd_vel", commands.append, 10)  # a plain subscriber
    try:
        assert robot.wait_for("site robot ↔ twin"), robot.text()
        intruder = Intruder(stranger)
        try:
            for _ in range(100):  # 5 s of well-formed commands at 20 Hz
                intruder.command(9.0)
                here.spin_for(0.05)
        finally:
            intruder.close()
        assert commands == []
        assert here.node.count_publishers("/robot_0/cmd_vel") == 0  # the link never even opened the topic
        # The control: the very same frames from a peer with credentials are commands.
        friendly = Intruder(friend)
        try:
            ok = False
            end = time.monotonic() + 30
            while time.monotonic() < end and not ok:
                friendly.command(0.25)
                here.spin_for(0.05)
                ok = any(m.linear.x == pytest.approx(0.25) for m in commands)
            assert ok, robot.text()
        finally:
            friendly.close()
    finally:
        here.close()
        robot.stop()


def test_the_launch_file_passes_insecure_and_the_credentials():
    from sim_bridge.launch.description import LaunchDescription

    (proc,) = LaunchDescription(REPO / "launch" / "site_link_launch.yaml").processes(
        {"site": "robot", "insecure": "true", "mtls": "true", "tls_root_ca": "/etc/sern/ca.pem"}
    )
    assert proc.parameters["insecure"] is True and proc.parameters["mtls"] is True
    assert proc.parameters["tls_root_ca"] == "/etc/sern/ca.pem"
    (proc,) = LaunchDescription(REPO / "launch" / "site_link_launch.yaml").processes({"site": "robot"})
    assert proc.parameters["insecure"] is False and proc.parameters["user"] == ""
