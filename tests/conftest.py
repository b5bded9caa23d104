"""Shared fixtures: the repository root, shipped worlds, and small test worlds."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NAVIGATION = REPO / "worlds" / "navigation.yaml"


@pytest.fixture
def navigation_data() -> dict:
    """The shipped navigation world as plain data, to mutate into test cases."""
    return yaml.safe_load(NAVIGATION.read_text())


def free_port() -> int:
    """A TCP port free on this host now (the kernel's choice)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_world(tmp_path: Path, data: dict, name: str = "world.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def open_world(**overrides) -> dict:
    """A small empty walled arena with one robot at the origin facing +x (for sensor tests)."""
    data = {
        "name": "test_open",
        "backend": "pybullet",
        "physics_rate_hz": 240,
        "control_rate_hz": 20,
        "arena": {"size_m": [10.0, 10.0]},
        "obstacles": [],
        "robots": [{"model": "husky", "count": 1, "spawn": {"poses": [[0.0, 0.0, 0.0]]}}],
        "sensors": {
            "lidar": {"beams": 360, "fov_deg": 360, "range_max_m": 10.0, "height_m": 0.2},
            "camera": {"width": 64, "height": 48, "fov_deg": 60},
        },
        "task": {"name": "navigation", "params": {"goals": {"poses": [[4.0, 0.0]]}, "lidar_obs_beams": 36}},
    }
    data = copy.deepcopy(data)
    data.update(overrides)
    n = sum(group["count"] for group in data["robots"])
    data["task"]["params"]["goals"] = {"poses": [[4.0, -3.0 + 2.0 * k] for k in range(n)]}
    return data


@pytest.fixture
def frequent_switches():
    """Switch threads as often as the interpreter allows, so a race between threads shows
    within a short burst."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``slow`` (whole episodes, training runs) first, so that under
    ``pytest -n 2 --dist worksteal`` no long test starts near the end of the run and keeps one
    core busy alone while the other idles; otherwise the order of collection."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
