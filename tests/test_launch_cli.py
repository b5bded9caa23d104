"""``sern launch`` at the command line: enumerated arguments, usage errors (exit 2, the file
named, nothing started, no traceback) and the help that documents what it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from launch_helpers import write_launch

from sim_bridge.launch import LaunchDescription, LaunchError

BIN = Path(sys.executable).parent

# Every argument of the shipped launch files that takes one of a fixed set of values.
ENUMERATED = {
    ("twin_launch.yaml", "site"): ["all", "robot", "twin"],
    ("twin_launch.yaml", "sync"): ["predictive", "naive"],
    ("site_link_launch.yaml", "adaptive"): ["true", "false"],
    ("site_link_launch.yaml", "profile"): ["", "nominal", "contested", "bandwidth_starved"],
}


def _sern_launch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sern"), "launch", "--no-ros2", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_shipped_enumerated_arguments_declare_their_choices():
    for (name, arg), choices in ENUMERATED.items():
        declared = {a["name"]: a for a in LaunchDescription(REPO / "launch" / name).declared_arguments()}
        assert declared[arg].get("choices") == choices, (name, arg)
        required = {"site": "robot"} if name == "site_link_launch.yaml" else {}
        for value in choices:
            LaunchDescription(REPO / "launch" / name).processes({**required, arg: value})
        with pytest.raises(LaunchError) as info:
            LaunchDescription(REPO / "launch" / name).processes({**required, arg: "robt"})
        shown = ", ".join(repr(c) if c == "" else c for c in choices)
        assert f"argument '{arg}' is 'robt'; valid choices: {shown}" in str(info.value)


def test_a_value_outside_the_choices_is_an_error_not_an_empty_run():
    """Before choices, ``site:=robt`` matched no node's condition: '[launch] nothing to
    start', exit 0. ros2 launch 3.7.1 with the same file: 'Argument "site" provided value
    "robt" is not valid. Valid options are: ['all', 'robot', 'twin']'."""
    res = _sern_launch("twin_launch.yaml", "site:=robt")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "twin_launch.yaml:" in res.stderr
    assert "argument 'site' is 'robt'; valid choices: all, robot, twin" in res.stderr
    assert "process started" not in res.stdout and "nothing to start" not in res.stdout
    shown = _sern_launch("twin_launch.yaml", "--show-args")
    assert shown.returncode == 0
    assert "site (default: 'all') [choices: all, robot, twin]" in shown.stdout


@pytest.mark.parametrize(
    "actions, message",
    [
        ([{"node": {"pkg": "nopkg", "exec": "python"}}], "package 'nopkg' not found"),
        ([{"node_container": {"pkg": "rclcpp_components", "exec": "component_container"}}], "composable node"),
        ([{"executable": {"cmd": "true", "respawn_delay": 1}}], "refuses 1); write 1.0"),
        ([{"group": {"forwarding": "no", "children": []}}], "'group.forwarding' must be an unquoted true or false"),
    ],
)
def test_usage_errors_exit_2_naming_the_file(tmp_path, actions, message):
    path = write_launch(tmp_path / "bad_launch.yaml", actions)
    res = _sern_launch(str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith(f"sern launch: error: {path}:"), res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_help_documents_what_sern_launch_runs():
    res = subprocess.run([str(BIN / "sern"), "launch", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for word in (
        "respawn_delay",
        "respawn_max_retries",
        "cwd",
        "sigterm_timeout",
        "sigkill_timeout",
        "output: screen | log",
        "own_log",
        "shell",
        "emulate_tty",
        "forwarding",
        "keep",
        "choice",
        "lib/<pkg>",
        "$(eval)",
        "Exit codes",
    ):
        assert word in res.stdout, word
