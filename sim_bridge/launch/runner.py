"""Running a launch file's processes: start them, prefix their output, notice a death,
and stop everything cleanly.

Each process gets its own session (so a terminal's Ctrl-C reaches only the launcher,
which then stops children in order): SIGINT first, SIGTERM after ``sigterm_timeout_s``,
SIGKILL after ``sigkill_timeout_s`` more. When any process dies (non-zero exit, a signal,
or any exit with ``on_exit: shutdown``) the launcher reports it and stops the rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from sim_bridge.launch.description import ProcessSpec

EXIT_OK, EXIT_NODE_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class _Running:
    spec: ProcessSpec
    popen: subprocess.Popen
    reader: threading.Thread


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class LaunchRunner:
    """Starts ``processes`` and supervises them until they end or a signal arrives."""

    def __init__(
        self,
        processes: list[ProcessSpec],
        out: TextIO | None = None,
        sigterm_timeout_s: float = 5.0,
        sigkill_timeout_s: float = 5.0,
    ):
        self.processes = processes
        self.out = out or sys.stdout
        self.sigterm_timeout_s = sigterm_timeout_s
        self.sigkill_timeout_s = sigkill_timeout_s
        self._lock = threading.Lock()
        self._running: list[_Running] = []
        self._stop_requested: int | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="sern_launch_")

    def log(self, text: str) -> None:
        with self._lock:
            self.out.write(f"[launch] {text}\n")
            self.out.flush()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for spec in self.processes:
                self._start(spec)
            return self._supervise()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._tmp.cleanup()

    def _on_signal(self, signum, frame) -> None:
        self._stop_requested = signum

    def _start(self, spec: ProcessSpec) -> None:
        cmd = list(spec.cmd)
        if spec.parameters:
            cmd += ["--params-file", str(self._params_file(spec))]
        env = {**spec.env, "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}
        popen = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        reader = threading.Thread(target=self._pump, args=(spec.label, popen), daemon=True)
        reader.start()
        self._running.append(_Running(spec, popen, reader))
        self.log(f"process started {spec.label} (pid {popen.pid})")

    def _params_file(self, spec: ProcessSpec) -> Path:
        if spec.node_name:
            key = f"{spec.namespace or ''}/{spec.node_name}"
        else:
            key = "/**"
        path = Path(self._tmp.name) / f"{spec.label}_params.yaml"
        path.write_text(yaml.safe_dump({key: {"ros__parameters": spec.parameters}}, default_flow_style=False))
        return path

    def _pump(self, label: str, popen: subprocess.Popen) -> None:
        assert popen.stdout is not None
        for raw in iter(popen.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lock:
                self.out.write(f"[{label}] {line}\n")
                self.out.flush()

    def _supervise(self) -> int:
        while True:
            if self._stop_requested is not None:
                name = signal.Signals(self._stop_requested).name
                self.log(f"{name} received: stopping {len(self._alive())} process(es)")
                return EXIT_INTERRUPTED if self._stop_requested == signal.SIGINT else EXIT_OK
            for r in list(self._running):
                code = r.popen.poll()
                if code is None:
                    continue
                r.reader.join(timeout=1.0)
                self._running.remove(r)
                failed = code != 0
                what = "has died" if failed else "has finished"
                self.log(f"process {what}: {r.spec.label} (pid {r.popen.pid}) {describe_exit(code)}")
                if failed or r.spec.on_exit_shutdown:
                    if self._running:
                        self.log(f"stopping the other {len(self._running)} process(es)")
                    return EXIT_USAGE if code == EXIT_USAGE else EXIT_NODE_FAILED
            if not self._running:
                self.log("all processes have finished")
                return EXIT_OK
            time.sleep(0.05)

    def _alive(self) -> list[_Running]:
        return [r for r in self._running if r.popen.poll() is None]

    def _stop_all(self) -> None:
        alive = self._alive()
        if not alive:
            return
        for sig, wait_s in (
            (signal.SIGINT, self.sigterm_timeout_s),
            (signal.SIGTERM, self.sigkill_timeout_s),
            (signal.SIGKILL, 5.0),
        ):
            for r in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(r.popen.pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and any(r.popen.poll() is None for r in alive):
                time.sleep(0.05)
            still = [r for r in alive if r.popen.poll() is None]
            for r in alive:
                if r not in still:
                    r.reader.join(timeout=1.0)
            if not still:
                break
            if sig != signal.SIGKILL:
                labels = ", ".join(r.spec.label for r in still)
                self.log(f"{labels} still running after {signal.Signals(sig).name}: escalating")
            alive = still
        for r in self._running:
            code = r.popen.poll()
            if code is not None:
                self.log(f"process stopped: {r.spec.label} (pid {r.popen.pid}) {describe_exit(code)}")
        self._running = [r for r in self._running if r.popen.poll() is None]
