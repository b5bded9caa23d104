"""The package builds with colcon (ament_python) into a ROS 2 install layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent


def _tracked_files() -> list[str]:
    """The files a clean clone holds (tracked plus new, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line and (REPO / line).is_file()]


@pytest.mark.slow
def test_colcon_build_installs_the_ros_layout(tmp_path):
    colcon = shutil.which("colcon", path=str(BIN))
    assert colcon, "colcon is not installed in the venv (make setup installs it)"
    src = tmp_path / "ws" / "src" / "sern"
    for rel in _tracked_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    ws = tmp_path / "ws"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(
        [colcon, "build", "--base-paths", "src", "--build-base", "build", "--install-base", "install"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    prefix = ws / "install" / "sern"
    share = prefix / "share" / "sern"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "sern").is_file()
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    assert (prefix / "lib" / "sern" / "sern").is_file() and os.access(prefix / "lib" / "sern" / "sern", os.X_OK)
    for folder in ("worlds", "launch", "config"):
        shipped = {p.name for p in (REPO / folder).glob("*.yaml")}
        installed = {p.name for p in (share / folder).glob("*.yaml")}
        assert shipped == installed, folder
    assert "navigation.yaml" in {p.name for p in (share / "worlds").iterdir()}
    site = next((prefix / "lib").glob("python3*/site-packages"))
    for package in ("sern", "sim_bridge", "worlds", "policies", "ros_nodes"):
        assert (site / package / "__init__.py").is_file(), package
    assert (site / "sim_bridge" / "backends" / "models" / "box_robot.urdf").is_file()
    # The installed console script runs from the install space.
    run = subprocess.run(
        [sys.executable, str(prefix / "lib" / "sern" / "sern"), "check", str(share / "worlds" / "navigation.yaml")],
        env={**env, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "ok (4 robots" in run.stdout
