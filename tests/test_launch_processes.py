"""``sern launch`` runs processes as ros2 launch does: respawn with delay and retries, cwd,
shell, env, launch-prefix, emulate_tty, output routing, per-process shutdown timeouts.

Real child processes (small Python scripts); no ROS. What ros2 launch does in each case was
checked by running launch 3.7.1 / launch_ros 0.28.0 from source on the same files.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from launch_helpers import Run, python_script, write_launch

BIN = Path(sys.executable).parent


def test_respawn_with_delay_and_max_retries(tmp_path):
    """ros2 launch 3.7.1 respawns on any exit while the launch runs (exit code 0 too), after
    respawn_delay, at most respawn_max_retries times; a process that has exhausted its
    retries and failed then ends the run (sern's rule for a failed process)."""
    starts = tmp_path / "starts"
    script = python_script(
        tmp_path / "blink.py",
        f"""
        import sys, time
        with open({str(starts)!r}, "a") as f:
            f.write(f"{{sys.argv[1]}} {{time.time()}}\\n")
        print("up", sys.argv[1], flush=True)
        sys.exit(int(sys.argv[2]))
        """,
    )
    path = write_launch(
        tmp_path / "respawn_launch.yaml",
        [
            {
                "executable": {
                    "cmd": f"{script} clean 0",
                    "name": "clean",
                    "output": "screen",
                    "respawn": "true",
                    "respawn_delay": 0.6,
                    "respawn_max_retries": 2,
                }
            },
        ],
    )
    run = Run(path, tmp_path / "log")
    assert run.code == 0, run.screen
    times = [float(line.split()[1]) for line in starts.read_text().splitlines()]
    assert len(times) == 3, run.screen  # the first start and two respawns
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.6 for gap in gaps), gaps  # never before respawn_delay
    assert run.lines("clean") == ["up clean"] * 3
    assert len(re.findall(r"process started clean-1 \(pid \d+\)", run.screen)) == 3
    assert "respawning clean-1 in 0.6 s (respawn 2 of 2)" in run.screen
    assert "all processes have finished" in run.screen

    # a failing process with retries left is respawned; once they are spent the launch stops
    starts.unlink()
    path = write_launch(
        tmp_path / "respawn_fail_launch.yaml",
        [
            {"arg": {"name": "r", "default": "yes"}},  # respawn accepts YAML booleans, like ros2 launch
            {
                "executable": {
                    "cmd": f"{script} fail 3",
                    "name": "fail",
                    "respawn": "$(var r)",
                    "respawn_max_retries": 1,
                }
            },
            {"executable": {"cmd": f"{sys.executable} -c 'import time; time.sleep(60)'", "name": "sleeper"}},
        ],
    )
    started = time.monotonic()
    run = Run(path, tmp_path / "log2")
    assert run.code == 1, run.screen
    assert time.monotonic() - started < 30, "the sleeper was stopped, not waited for"
    assert [line.split()[0] for line in starts.read_text().splitlines()] == ["fail", "fail"]
    assert re.search(r"process has died: fail-1 \(pid \d+\) exited with code 3\n.*stopping the other 1", run.screen)
    assert re.search(r"process stopped: sleeper-2 \(pid \d+\) ", run.screen)


def test_cwd_env_shell_prefix_and_tty(tmp_path):
    work = tmp_path / "work dir"
    work.mkdir()
    show = python_script(
        tmp_path / "show.py",
        """
        import os, sys
        print("cwd", os.getcwd())
        print("env", os.environ.get("SERN_X"), os.environ.get("SERN_PREFIXED"))
        print("tty", sys.stdout.isatty(), sys.stderr.isatty())
        print("args", sys.argv[1:])
        """,
    )
    path = write_launch(
        tmp_path / "attrs_launch.yaml",
        [
            {"arg": {"name": "word", "default": "two words"}},
            {
                "executable": {
                    "cmd": f"{show} $(var word) plain",
                    "name": "plain",
                    "output": "screen",
                    "cwd": str(work),
                    "env": [{"name": "SERN_X", "value": "abc"}],
                    "launch-prefix": "env SERN_PREFIXED=1",
                }
            },
            {"executable": {"cmd": f"{show}", "name": "tty", "output": "screen", "emulate_tty": True}},
            # shell: the words joined and run by /bin/sh, as ros2 launch (osrf_pycommon) runs them
            {
                "executable": {
                    "cmd": "echo $SERN_X | tr a-z A-Z && pwd",
                    "name": "sh",
                    "shell": True,
                    "output": "screen",
                    "cwd": str(work),
                    "env": [{"name": "SERN_X", "value": "shout"}],
                }
            },
        ],
    )
    run = Run(path, tmp_path / "log")
    assert run.code == 0, run.screen
    assert sorted(run.lines("plain")) == sorted(
        [f"cwd {work}", "env abc 1", "tty False False", "args ['two words', 'plain']"]
    )
    assert "tty True True" in run.lines("tty")
    assert run.lines("sh") == ["SHOUT", str(work)]


def test_output_screen_log_both_own_log(tmp_path):
    """As ros2 launch 3.7.1 routes them: screen → both streams on screen; log (default) →
    both in launch.log and stderr also on screen; both → screen and launch.log; own_log →
    <label>-stdout.log, <label>-stderr.log and <label>.log only."""
    script = python_script(
        tmp_path / "talk.py",
        """
        import sys
        print("out-line", sys.argv[1], flush=True)
        print("err-line", sys.argv[1], file=sys.stderr, flush=True)
        """,
    )
    actions = [{"executable": {"cmd": f"{script} default", "name": "default"}}]
    for mode in ("screen", "log", "both", "own_log", "full"):
        actions.append({"executable": {"cmd": f"{script} {mode}", "name": mode, "output": mode}})
    run = Run(write_launch(tmp_path / "output_launch.yaml", actions), tmp_path / "log")
    assert run.code == 0, run.screen
    log = run.launch_log()
    logged = {
        m: re.findall(rf"^\d+\.\d+ \[{m}-\d\] (\S+) ", log, re.M)
        for m in ("default", "screen", "log", "both", "own_log", "full")
    }
    on_screen = {m: [line.split()[0] for line in run.lines(m)] for m in logged}
    assert sorted(on_screen["screen"]) == ["err-line", "out-line"] and logged["screen"] == []
    assert on_screen["default"] == ["err-line"] and sorted(logged["default"]) == ["err-line", "out-line"]
    assert on_screen["log"] == ["err-line"] and sorted(logged["log"]) == ["err-line", "out-line"]
    assert sorted(on_screen["both"]) == ["err-line", "out-line"] and sorted(logged["both"]) == ["err-line", "out-line"]
    assert on_screen["own_log"] == [] and logged["own_log"] == []
    assert (run.log_dir / "own_log-5-stdout.log").read_text() == "[own_log-5] out-line own_log\n"
    assert (run.log_dir / "own_log-5-stderr.log").read_text() == "[own_log-5] err-line own_log\n"
    assert sorted((run.log_dir / "own_log-5.log").read_text().splitlines()) == [
        "[own_log-5] err-line own_log",
        "[own_log-5] out-line own_log",
    ]
    assert sorted(on_screen["full"]) == ["err-line", "out-line"] and len(logged["full"]) == 2
    assert (run.log_dir / "full-6-stdout.log").is_file()
    assert re.search(r"^\d+\.\d+ \[launch\] process started screen-2 \(pid \d+\)$", log, re.M)


_STUBBORN = """
    import signal, sys, time
    from pathlib import Path
    mode, ready = sys.argv[1], Path(sys.argv[2])
    t0 = None
    def on_signal(number, frame):
        global t0
        t0 = t0 or time.monotonic()
        print("got", signal.Signals(number).name, round(time.monotonic() - t0, 3), flush=True)
        if mode == "polite" and number == signal.SIGTERM:
            sys.exit(0)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ready.touch()
    while True:
        time.sleep(0.02)
"""


def _shutdown_launch(tmp_path: Path, script: Path) -> list:
    ready = [tmp_path / "stubborn.ready", tmp_path / "polite.ready"]
    trigger = python_script(
        tmp_path / "trigger.py",
        f"""
        import time
        from pathlib import Path
        while not all(Path(p).exists() for p in {[str(r) for r in ready]!r}):
            time.sleep(0.02)
        """,
    )
    return [
        {"let": {"name": "sigterm_timeout", "value": "1.0"}},  # ros2 launch's default for processes without their own
        {
            "executable": {
                "cmd": f"{script} stubborn {ready[0]}",
                "name": "stubborn",
                "output": "screen",
                "sigterm_timeout": 0.5,
                "sigkill_timeout": 0.7,
            }
        },
        {"executable": {"cmd": f"{script} polite {ready[1]}", "name": "polite", "output": "screen"}},
        {"executable": {"cmd": str(trigger), "name": "trigger", "on_exit": "shutdown"}},
    ]


def _signal_times(lines: list[str]) -> dict[str, float]:
    return {line.split()[1]: float(line.split()[2]) for line in lines if line.startswith("got ")}


def test_per_process_shutdown_timeouts(tmp_path):
    """SIGINT, then SIGTERM after that process's sigterm_timeout, then SIGKILL after
    sigterm_timeout + sigkill_timeout (ros2 launch 3.7.1 ExecuteLocal's two timers); a
    process without its own timeouts takes the launch configuration of that name, default 5."""
    script = python_script(tmp_path / "stubborn.py", _STUBBORN)
    path = write_launch(tmp_path / "stop_launch.yaml", _shutdown_launch(tmp_path, script))
    started = time.monotonic()
    run = Run(path, tmp_path / "log")
    elapsed = time.monotonic() - started
    assert run.code == 0, run.screen  # on_exit: shutdown after a clean exit is a clean end
    stubborn, polite = _signal_times(run.lines("stubborn")), _signal_times(run.lines("polite"))
    assert set(stubborn) == {"SIGINT", "SIGTERM"}, run.screen  # then SIGKILL, which it cannot see
    assert re.search(r"process stopped: stubborn-1 \(pid \d+\) killed by SIGKILL", run.screen), run.screen
    assert set(polite) == {"SIGINT", "SIGTERM"}, run.screen  # polite exits on SIGTERM: no SIGKILL
    assert re.search(r"process stopped: polite-2 \(pid \d+\) exited with code 0", run.screen)
    # when the launcher escalated, by its own clock in launch.log (lower bounds are exact:
    # "stopping" is written before the SIGINTs go out)
    log = run.launch_log()

    def at(message: str) -> float:
        return float(re.search(rf"^(\d+\.\d+) \[launch\] {re.escape(message)}$", log, re.M).group(1))

    stop = at("stopping the other 2 process(es)")
    term_stubborn = at("stubborn-1 still running 0.5 s after SIGINT: escalating to SIGTERM") - stop
    kill_stubborn = at("stubborn-1 still running 0.7 s after SIGTERM: escalating to SIGKILL") - stop
    term_polite = at("polite-2 still running 1 s after SIGINT: escalating to SIGTERM") - stop
    assert 0.5 <= term_stubborn <= 0.5 + 3.0, term_stubborn
    assert 1.2 <= kill_stubborn <= 1.2 + 3.0, kill_stubborn
    assert 1.0 <= term_polite <= 1.0 + 3.0, term_polite  # from the launch configuration
    assert elapsed < 30, elapsed


def test_ctrl_c_through_the_cli_stops_children_in_order(tmp_path):
    """``sern launch`` itself: SIGINT (a terminal's Ctrl-C) → children get SIGINT, a stubborn
    one SIGTERM after its timeout, then SIGKILL; exit code 130."""
    script = python_script(tmp_path / "stubborn.py", _STUBBORN)
    ready = tmp_path / "stubborn.ready"
    path = write_launch(
        tmp_path / "cli_launch.yaml",
        [
            {
                "executable": {
                    "cmd": f"{script} stubborn {ready}",
                    "name": "stubborn",
                    "output": "screen",
                    "sigterm_timeout": 0.5,
                    "sigkill_timeout": 0.5,
                }
            }
        ],
    )
    proc = subprocess.Popen(
        [str(BIN / "sern"), "launch", "--no-ros2", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ROS_LOG_DIR": str(tmp_path / "log")},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), "the child never started"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert "SIGINT received: stopping 1 process(es)" in out
    assert (
        out.index("[stubborn-1] got SIGINT")
        < out.index("escalating to SIGTERM")
        < out.index("[stubborn-1] got SIGTERM")
    )
    assert out.index("[stubborn-1] got SIGTERM") < out.index("escalating to SIGKILL"), out
    assert re.search(r"process stopped: stubborn-1 \(pid \d+\) killed by SIGKILL", out), out
    assert "Traceback" not in out
    runs = [p for p in (tmp_path / "log").iterdir() if not p.is_symlink()]  # ros2 launch's log layout
    assert len(runs) == 1 and (runs[0] / "launch.log").is_file()
    assert (tmp_path / "log" / "latest").resolve() == runs[0].resolve()


def test_a_program_that_cannot_start_is_a_usage_error(tmp_path):
    path = write_launch(tmp_path / "missing_launch.yaml", [{"node": {"exec": "no_such_program_sern_test"}}])
    run = Run(path, tmp_path / "log")
    assert run.code == 2
    assert re.search(r"process could not start: no_such_program_sern_test-1 \(.*missing_launch.yaml:\d+\)", run.screen)


def test_on_exit_shutdown_wins_over_respawn(tmp_path):
    """ros2 launch 3.7.1 shuts the launch down on the first exit of an ``on_exit: shutdown``
    process even if it also has ``respawn`` (at most one racing respawn); sern: no respawn."""
    path = write_launch(
        tmp_path / "both_launch.yaml",
        [
            {
                "executable": {
                    "cmd": "echo once",
                    "name": "r",
                    "respawn": "true",
                    "on_exit": "shutdown",
                    "output": "screen",
                }
            },
            {"executable": {"cmd": f"{sys.executable} -c 'import time; time.sleep(60)'", "name": "sleeper"}},
        ],
    )
    started = time.monotonic()
    run = Run(path, tmp_path / "log")
    assert run.code == 0, run.screen
    assert run.lines("r") == ["once"]
    assert "respawning" not in run.screen
    assert time.monotonic() - started < 30
