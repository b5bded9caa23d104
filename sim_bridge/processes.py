"""Stopping a group of child processes the way ``ros2 launch`` does, for the benchmarks that
start their own ROS graphs."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence


def stop_processes(procs: Sequence[subprocess.Popen], timeout_s: float = 20.0) -> list[int | None]:
    """SIGINT to each of ``procs`` still running, the last started first (consumers before
    what they consume); then up to ``timeout_s`` for each to exit, and SIGKILL for one that
    has not. Returns the exit codes."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [proc.returncode for proc in procs]
