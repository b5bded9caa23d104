"""Where a launched process's output goes, as ros2 launch routes it (``output``).

- ``screen``: stdout and stderr to the screen, as ``[label] line``;
- ``log`` (the default): both to the run's ``launch.log``, stderr also to the screen;
- ``both``: both to the screen and to ``launch.log``;
- ``own_log``: ``<label>-stdout.log``, ``<label>-stderr.log`` and ``<label>.log``;
- ``full``: all of the above.

The run's log folder is ros2 launch's: ``$ROS_LOG_DIR``, else ``$ROS_HOME/log``, else
``~/.ros/log``, then ``<date-time>-<host>-<pid>/``; ``latest`` links to the newest.
``launch.log`` lines start with the Unix time, as ros2 launch writes them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import threading
import time
from pathlib import Path
from typing import TextIO

_DESTINATIONS = {
    # output: (stdout destinations, stderr destinations)
    "screen": ({"screen"}, {"screen"}),
    "log": ({"log"}, {"log", "screen"}),
    "both": ({"screen", "log"}, {"screen", "log"}),
    "own_log": ({"own_log"}, {"own_log"}),
    "full": ({"screen", "log", "own_log"}, {"screen", "log", "own_log"}),
}


def base_log_dir(environment: dict[str, str] | None = None) -> Path:
    env = os.environ if environment is None else environment
    if env.get("ROS_LOG_DIR"):
        return Path(env["ROS_LOG_DIR"]).expanduser()
    return Path(env.get("ROS_HOME") or "~/.ros").expanduser() / "log"


def make_run_log_dir(base: Path) -> Path:
    """A new ``<date-time>-<host>-<pid>`` folder under ``base`` (and ``latest`` pointing to it)."""
    while True:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")
        run = base / f"{stamp}-{socket.gethostname()}-{os.getpid()}"
        if not run.exists():
            run.mkdir(parents=True)
            break
    latest = base / "latest"
    with contextlib.suppress(OSError):  # another launch may be renewing it at the same moment
        if latest.is_symlink():
            latest.unlink()
        if not latest.exists():
            latest.symlink_to(run, target_is_directory=True)
    return run


class OutputRouter:
    """Writes the launcher's messages and its processes' lines where ``output`` says."""

    def __init__(self, screen: TextIO, log_dir: Path):
        self.screen = screen
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._launch_log = open(log_dir / "launch.log", "a", buffering=1)  # noqa: SIM115 - closed in close()
        self._own: dict[str, TextIO] = {}
        self._closed = False

    def launcher(self, text: str) -> None:
        """A message of the launcher itself: on the screen and in launch.log."""
        with self._lock:
            self.screen.write(f"[launch] {text}\n")
            self.screen.flush()
            if not self._closed:
                self._launch_log.write(f"{time.time():.7f} [launch] {text}\n")

    def line(self, label: str, output: str, stream: str, text: str) -> None:
        """One line ``text`` of process ``label`` from ``stream`` (stdout or stderr)."""
        destinations = _DESTINATIONS[output][0 if stream == "stdout" else 1]
        shown = f"[{label}] {text}"
        with self._lock:
            if self._closed:  # a reader still draining a pipe after the run ended
                destinations = destinations & {"screen"}
            if "screen" in destinations:
                self.screen.write(shown + "\n")
                self.screen.flush()
            if "log" in destinations:
                self._launch_log.write(f"{time.time():.7f} {shown}\n")
            if "own_log" in destinations:
                for name in (f"{label}-{stream}.log", f"{label}.log"):
                    self._file(name).write(shown + "\n")

    def _file(self, name: str) -> TextIO:
        if name not in self._own:
            self._own[name] = open(self.log_dir / name, "a", buffering=1)  # noqa: SIM115 - closed in close()
        return self._own[name]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for f in [self._launch_log, *self._own.values()]:
                f.close()
            self._own.clear()
