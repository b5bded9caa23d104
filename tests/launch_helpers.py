"""Helpers for the launch tests: launch files written from Python data, a package prefix
laid out as colcon installs one, and a launch run in this process with its output captured."""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

import yaml

from sim_bridge.launch import LaunchDescription, LaunchRunner


def write_launch(path: Path, actions: list) -> Path:
    path.write_text(yaml.safe_dump({"launch": actions}, sort_keys=False))
    return path


def python_script(path: Path, body: str) -> Path:
    """An executable Python script (this interpreter) with ``body``."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def package_prefix(root: Path, package: str, scripts: dict[str, str]) -> Path:
    """``root`` as an install prefix holding ROS package ``package`` (ament index entry,
    ``share/<pkg>``) with ``scripts`` (name → Python body) in ``lib/<pkg>``."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    (index / package).touch()
    (root / "share" / package).mkdir(parents=True, exist_ok=True)
    lib = root / "lib" / package
    lib.mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        python_script(lib / name, body)
    return root


class Run:
    """A launch file run by ``LaunchRunner`` in this process: exit code, screen, log folder."""

    def __init__(self, launch_file: Path, log_dir: Path, arguments: dict[str, str] | None = None):
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes = LaunchDescription(launch_file).processes(arguments or {})
        screen = io.StringIO()
        self.code = LaunchRunner(self.processes, out=screen, log_dir=log_dir).run()
        self.screen = screen.getvalue()

    def lines(self, label_prefix: str) -> list[str]:
        """The screen lines of processes whose label starts with ``label_prefix``."""
        out = []
        for line in self.screen.splitlines():
            if line.startswith(f"[{label_prefix}-"):
                out.append(line.split("] ", 1)[1])
        return out

    def launch_log(self) -> str:
        return (self.log_dir / "launch.log").read_text()
