"""A robot behind a site link through an outage, on real packets: commands at 20 Hz from
the twin site, an outage of the emulated link (1.5 s; 3 s with the sites' clocks 4 s
apart), recovery. The robot must
never execute a command older than ``max_command_age_s`` (0.3 s), must stop within 0.6 s
of the outage's start (the site link publishes a stop once commands are silent for the
config's ``stop_after_silent_s``; the stand-in keeps its default 0.5 s watchdog), and must
follow fresh commands again afterwards.
Needs root (network namespaces); skipped elsewhere with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import REPO
from ros_helpers import BIN, fresh_domain

from sim_bridge.netem.namespaces import EmulatedLink, available

ok, why = available()
pytestmark = [pytest.mark.netns, pytest.mark.ros, pytest.mark.skipif(not ok, reason=why)]

PEERS = REPO / "tests" / "link_peers.py"
CONFIG = REPO / "config" / "site_link.yaml"
MAX_COMMAND_AGE_S = 0.3  # site_link's default
# An age is measured here from the commander's publish to the recorder's callback: that adds
# two local DDS legs and process scheduling, which the link cannot see (it judges the age
# when it publishes at the robot's site). Milliseconds on an idle machine; up to ~0.2 s seen
# on a loaded 2-core one. The old link executed commands as old as the outage (1.5 s).
LOCAL_LEGS_S = 0.2


class Proc:
    """A process in an emulated site; its output kept line by line."""

    def __init__(self, link: EmulatedLink, site: str, cmd: list[str], env: dict):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            link.run_in(site, cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


def _node(name: str, *params: str) -> list[str]:
    cmd = [sys.executable, str(BIN / name), "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return cmd


@pytest.mark.parametrize(
    "outage_s, twin_clock_ahead_s",
    [
        # shorter than zenoh's session lease (3 s): the session survives and what was queued
        # during the outage arrives late (the old link executed those commands)
        (1.5, 0.0),
        # the acceptance case, with the twin site's clock 4 s ahead (ages judged by the
        # measured offset; uncorrected, every command would look 4 s early and be dropped)
        (3.0, 4.0),
    ],
)
def test_outage_never_executes_stale_commands_and_the_robot_stops(tmp_path, outage_s, twin_clock_ahead_s):
    (tmp_path / "accepted").write_text("twin:twin-secret\n")
    (tmp_path / "robot_pw").write_text("robot-secret\n")
    (tmp_path / "twin_pw").write_text("twin-secret\n")
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(fresh_domain()),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[Proc] = []
    with EmulatedLink() as link:
        a = link.address["a"]
        endpoints = f"['tcp/{a}:7447', 'udp/{a}:7448']"
        try:
            stand_in = ["world:=open_field", "only_robots:=[robot_0]", "scan_rate_hz:=0.0"]  # default watchdog
            procs.append(Proc(link, "a", _node("robot_stand_in", *stand_in), env))
            recorder = Proc(link, "a", [sys.executable, str(PEERS), "recorder", str(tmp_path / "robot.npz")], env)
            procs.append(recorder)
            twin_clock = [f"clock_offset_s:={twin_clock_ahead_s}"] if twin_clock_ahead_s else []
            for site, ns, where, extra in (
                ("robot", "a", f"listen:={endpoints}", [f"credentials_file:={tmp_path / 'accepted'}"]),
                ("twin", "b", f"connect:={endpoints}", twin_clock),
            ):
                params = [f"site:={site}", f"config:={CONFIG}", where, f"user:={site}"]
                params += [f"password_file:={tmp_path / (site + '_pw')}", *extra]
                procs.append(Proc(link, ns, _node("site_link", *params), env))
            procs.append(Proc(link, "b", [sys.executable, str(PEERS), "commander", str(tmp_path / "twin.npz")], env))
            assert recorder.wait_for("robot driving", timeout=90), _tails(procs)
            time.sleep(1.5)  # up to speed
            t_out = time.time()
            link.set(down=True)
            time.sleep(outage_s)
            link.set(down=False)
            t_back = time.time()
            time.sleep(5.0)
            assert all(p.proc.poll() is None for p in procs), _tails(procs)
        finally:
            for p in procs[::-1]:
                p.stop()
    sent = np.load(tmp_path / "twin.npz")["sent"]
    robot_log = np.load(tmp_path / "robot.npz")
    received, odom = robot_log["received"], robot_log["odom"]
    stops, received = received[received[:, 1] == 0], received[received[:, 1] != 0]  # seq 0: the link's stop
    assert np.any((stops[:, 0] > t_out) & (stops[:, 0] < t_out + 0.6)), (
        f"the site link published no stop in the outage's first 0.6 s (stops at {stops[:, 0] - t_out} s)"
    )
    sent_at = dict(zip(sent[:, 1].astype(int), sent[:, 0], strict=True))
    ages = np.array([t - sent_at[int(seq)] for t, seq in received])
    assert len(ages) > 50
    stale = int(np.sum(ages > MAX_COMMAND_AGE_S + LOCAL_LEGS_S))
    assert stale == 0, (
        f"the robot executed {stale} commands older than {MAX_COMMAND_AGE_S} s (oldest {ages.max():.2f} s)"
    )
    # Stopped within 0.6 s of the outage's start: its odometry says so.
    before = odom[(odom[:, 0] > t_out - 1.0) & (odom[:, 0] < t_out)]
    assert len(before) and np.median(before[:, 1]) > 0.4, "the robot was not driving before the outage"
    after = odom[odom[:, 0] >= t_out]
    still = after[np.abs(after[:, 1]) < 0.05]
    assert len(still), "the robot never stopped"
    assert still[0, 0] - t_out <= 0.6, f"the robot stopped {still[0, 0] - t_out:.2f} s after the outage began"
    # Fresh commands are executed again after recovery, and the robot drives again.
    fresh = [t for t, seq in received if t > t_back and t - sent_at[int(seq)] <= MAX_COMMAND_AGE_S]
    assert len(fresh) > 20, "no fresh commands reached the robot after the link came back"
    assert np.max(odom[odom[:, 0] > t_back][:, 1]) > 0.4, "the robot did not drive again after recovery"


def _tails(procs: list[Proc]) -> str:
    return "\n".join(line for p in procs for line in p.lines[-15:])
