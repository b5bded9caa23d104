"""Helpers for integration tests on real ROS 2 graphs: isolated domains, a launched
graph (``sern launch`` in a subprocess), and an in-test probe node."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor

from ros_nodes.common import DIAGNOSTICS_QOS

BIN = Path(sys.executable).parent
_counter = itertools.count()


def fresh_domain() -> int:
    """A ROS_DOMAIN_ID no other test (in this or a parallel worker) is using.

    ``SERN_TEST_DOMAINS=LOW-HIGH`` confines a run to those domains (inclusive), so that
    test runs side by side on one host (several checkouts) never share a domain; each
    xdist worker takes its own slice of the range.
    """
    low, high = 20, 219
    if span := os.environ.get("SERN_TEST_DOMAINS"):
        low, high = (int(x) for x in span.split("-"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(re.sub(r"\D", "", worker) or 0)
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    size = max(1, (high - low + 1) // workers)
    return low + (index % workers) * size + next(_counter) % size


def ros_env(domain: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Launched:
    """``sern launch ...`` running in the background, its output collected line by line."""

    def __init__(self, args: list[str], domain: int, cwd: Path | None = None, env: dict | None = None):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [str(BIN / "sern"), "launch", *args],
            env=env or ros_env(domain),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = regex.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and seen == len(self.lines)):
                    raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines[-40:]))
                self._cond.wait(timeout=min(left, 0.2))

    def pid_of(self, label_prefix: str) -> int:
        m = self.wait_for(rf"process started {re.escape(label_prefix)}-\d+ \(pid (\d+)\)")
        return int(m.group(1))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def output(self) -> str:
        return "\n".join(self.lines)


class Probe:
    """An rclpy node inside the test, in its own context and domain."""

    def __init__(self, domain: int, name: str = "test_probe"):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.02, max(0.0, end - time.monotonic())))

    def spin_until(self, condition: Callable[[], bool], timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def link_status(probe: Probe, site: str, timeout: float = 15.0):
    """The latest ``/diagnostics`` status a ``site_link`` at ``site`` gives of its link, or
    None if it says nothing within ``timeout`` seconds."""
    seen = {}

    def on_diag(msg):
        for st in msg.status:
            seen[st.name] = st

    sub = probe.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, DIAGNOSTICS_QOS)
    probe.spin_until(lambda: any(n.startswith(f"site_link {site}: link") for n in seen), timeout)
    probe.node.destroy_subscription(sub)
    return next((s for n, s in seen.items() if n.startswith(f"site_link {site}: link")), None)
