"""Running a launch file's processes: start them, route their output, respawn or notice a
death, and stop everything cleanly — per process, as ros2 launch does.

- ``cwd``, ``env``, ``shell`` (the words joined and run by ``/bin/sh``), ``emulate_tty``
  (stdout and stderr on pseudo-terminals), ``launch-prefix``: as written.
- ``output``: see ``sim_bridge.launch.output``.
- ``respawn``: a process that ends (cleanly or not) while the launch is running is started
  again after ``respawn_delay`` seconds, at most ``respawn_max_retries`` times (negative:
  without limit); the same label, a new pid. ros2 launch 3.7.1 respawns on exit code 0 too.
- Stopping: SIGINT; SIGTERM if it still runs ``sigterm_timeout`` s later; SIGKILL at
  ``sigterm_timeout + sigkill_timeout`` s. Each process uses its own timeouts. Each process
  gets its own session, so a terminal's Ctrl-C reaches only the launcher, which then stops
  the children in that order.
- A process that dies with an error and is not respawned stops the whole launch (ros2
  launch would keep the others running: for robots, a half-running graph is the worse
  default); so does any exit of one with ``on_exit: shutdown``.
"""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from sim_bridge.launch.output import OutputRouter, base_log_dir, make_run_log_dir
from sim_bridge.launch.process import ProcessSpec

EXIT_OK, EXIT_NODE_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_POLL_S = 0.05
_GIVE_UP_AFTER_KILL_S = 5.0


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class _Managed:
    spec: ProcessSpec
    popen: subprocess.Popen | None = None
    readers: list[threading.Thread] = field(default_factory=list)
    respawns: int = 0
    restart_at: float | None = None


class LaunchRunner:
    """Starts ``processes`` and supervises them until they end or a signal arrives.

    ``log_dir``: the run's log folder (default: a new one under ros2 launch's log base).
    """

    def __init__(self, processes: list[ProcessSpec], out: TextIO | None = None, log_dir: Path | None = None):
        self.processes = processes
        self.screen = out or sys.stdout
        self.log_dir = log_dir
        self._managed = [_Managed(spec) for spec in processes]
        self._stop_requested: int | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="sern_launch_")
        self._router: OutputRouter | None = None

    def log(self, text: str) -> None:
        assert self._router is not None
        self._router.launcher(text)

    def run(self) -> int:
        """Run everything; the exit code: 0 all done or stopped by SIGTERM, 1 a process
        failed, 2 a process reported a usage error, 130 interrupted (SIGINT)."""
        log_dir = self.log_dir or make_run_log_dir(base_log_dir())
        self._router = OutputRouter(self.screen, log_dir)
        self.log(f"log files: {log_dir}")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for m in self._managed:
                self._start(m)
            return self._supervise()
        except _StartFailed:
            return EXIT_USAGE
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for m in self._managed:
                for reader in m.readers:
                    reader.join(timeout=1.0)
            self._router.close()
            self._tmp.cleanup()

    def _on_signal(self, signum, frame) -> None:
        self._stop_requested = signum

    # ---- starting ----------------------------------------------------------------------------
    def _start(self, m: _Managed) -> None:
        spec = m.spec
        cmd = spec.command(Path(self._tmp.name))
        env = {**spec.env, "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}
        args: str | list[str] = " ".join(cmd) if spec.shell else cmd  # as osrf_pycommon runs shell=True
        try:
            popen, streams = self._spawn(args, spec, env)
        except OSError as err:
            self.log(f"process could not start: {spec.label} ({spec.source}): {err.strerror or err}: {cmd[0]}")
            m.popen = None
            raise _StartFailed(spec.label) from None
        m.popen = popen
        m.readers = [
            threading.Thread(target=self._pump, args=(spec, name, stream), daemon=True) for name, stream in streams
        ]
        for reader in m.readers:
            reader.start()
        self.log(f"process started {spec.label} (pid {popen.pid})")

    def _spawn(self, args, spec: ProcessSpec, env: dict[str, str]):
        """The started process and its (name, stdout/stderr source) pairs."""
        if not spec.emulate_tty:
            popen = self._popen(args, spec, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            return popen, [("stdout", popen.stdout), ("stderr", popen.stderr)]
        (out_master, out_slave), (err_master, err_slave) = pty.openpty(), pty.openpty()
        try:
            popen = self._popen(args, spec, env, stdout=out_slave, stderr=err_slave)
        except OSError:
            os.close(out_master)
            os.close(err_master)
            raise
        finally:
            os.close(out_slave)
            os.close(err_slave)
        return popen, [("stdout", out_master), ("stderr", err_master)]

    @staticmethod
    def _popen(args, spec: ProcessSpec, env: dict[str, str], stdout, stderr) -> subprocess.Popen:
        return subprocess.Popen(
            args,
            shell=spec.shell,
            cwd=spec.cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _pump(self, spec: ProcessSpec, stream: str, source: BinaryIO | int) -> None:
        assert self._router is not None
        if isinstance(source, int):  # a pty master: read until the child side closes (EIO)
            buffer = b""
            while True:
                try:
                    chunk = os.read(source, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    self._router.line(spec.label, spec.output, stream, raw.decode(errors="replace").rstrip("\r"))
            if buffer:
                self._router.line(spec.label, spec.output, stream, buffer.decode(errors="replace").rstrip("\r"))
            os.close(source)
            return
        for raw in iter(source.readline, b""):
            self._router.line(spec.label, spec.output, stream, raw.decode(errors="replace").rstrip("\n"))
        source.close()

    # ---- supervising -------------------------------------------------------------------------
    def _supervise(self) -> int:
        while True:
            if self._stop_requested is not None:
                name = signal.Signals(self._stop_requested).name
                self.log(f"{name} received: stopping {len(self._alive())} process(es)")
                return EXIT_INTERRUPTED if self._stop_requested == signal.SIGINT else EXIT_OK
            now = time.monotonic()
            for m in self._managed:
                if m.popen is not None and (code := m.popen.poll()) is not None:
                    verdict = self._on_exit(m, code, now)
                    if verdict is not None:
                        return verdict
                elif m.popen is None and m.restart_at is not None and now >= m.restart_at:
                    m.restart_at = None
                    self._start(m)
            if all(m.popen is None and m.restart_at is None for m in self._managed):
                self.log("all processes have finished")
                return EXIT_OK
            time.sleep(_POLL_S)

    def _on_exit(self, m: _Managed, code: int, now: float) -> int | None:
        """Report a process's exit; schedule its respawn, or say how the launch ends."""
        spec, pid = m.spec, m.popen.pid
        for reader in m.readers:
            reader.join(timeout=1.0)
        m.popen = None
        failed = code != 0
        self.log(f"process {'has died' if failed else 'has finished'}: {spec.label} (pid {pid}) {describe_exit(code)}")
        # on_exit: shutdown wins over respawn (ros2 launch shuts down on the first exit)
        if (
            spec.respawn
            and not spec.on_exit_shutdown
            and (spec.respawn_max_retries < 0 or m.respawns < spec.respawn_max_retries)
        ):
            m.respawns += 1
            m.restart_at = now + spec.respawn_delay_s
            limit = "" if spec.respawn_max_retries < 0 else f" of {spec.respawn_max_retries}"
            self.log(f"respawning {spec.label} in {spec.respawn_delay_s:g} s (respawn {m.respawns}{limit})")
            return None
        if failed or spec.on_exit_shutdown:
            others = len(self._alive())
            if others:
                self.log(f"stopping the other {others} process(es)")
            if not failed:
                return EXIT_OK
            return EXIT_USAGE if code == EXIT_USAGE else EXIT_NODE_FAILED
        return None

    def _alive(self) -> list[_Managed]:
        return [m for m in self._managed if m.popen is not None and m.popen.poll() is None]

    # ---- stopping ------------------------------------------------------------------------------
    def _stop_all(self) -> None:
        for m in self._managed:
            m.restart_at = None  # no respawn once the launch is shutting down
        alive = self._alive()
        if not alive:
            self._report_stopped()
            return
        start = time.monotonic()
        sent: dict[int, signal.Signals] = {}
        for m in alive:
            self._signal(m, signal.SIGINT)
            sent[id(m)] = signal.SIGINT
        while alive:
            now = time.monotonic() - start
            if any(sent[id(m)] == signal.SIGKILL for m in alive) and now > _GIVE_UP_AFTER_KILL_S + max(
                m.spec.sigterm_timeout_s + m.spec.sigkill_timeout_s for m in alive
            ):
                self.log(f"{', '.join(m.spec.label for m in alive)} survived SIGKILL (uninterruptible?): giving up")
                break
            for m in alive:
                spec = m.spec
                if sent[id(m)] == signal.SIGINT and now >= spec.sigterm_timeout_s:
                    self.log(
                        f"{spec.label} still running {spec.sigterm_timeout_s:g} s after SIGINT: escalating to SIGTERM"
                    )
                    self._signal(m, signal.SIGTERM)
                    sent[id(m)] = signal.SIGTERM
                elif sent[id(m)] == signal.SIGTERM and now >= spec.sigterm_timeout_s + spec.sigkill_timeout_s:
                    self.log(
                        f"{spec.label} still running {spec.sigkill_timeout_s:g} s after SIGTERM: escalating to SIGKILL"
                    )
                    self._signal(m, signal.SIGKILL)
                    sent[id(m)] = signal.SIGKILL
            time.sleep(_POLL_S)
            alive = [m for m in alive if m.popen.poll() is None]
        self._report_stopped()

    @staticmethod
    def _signal(m: _Managed, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(m.popen.pid, sig)

    def _report_stopped(self) -> None:
        for m in self._managed:
            if m.popen is not None and (code := m.popen.poll()) is not None:
                for reader in m.readers:
                    reader.join(timeout=1.0)
                self.log(f"process stopped: {m.spec.label} (pid {m.popen.pid}) {describe_exit(code)}")
                m.popen = None


class _StartFailed(Exception):
    """A process's program could not be executed (missing, not executable)."""
