"""Planar frame algebra, initial-pose parameters, and the generated tf2_msgs (no ROS graph)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from ros_nodes.frames import compose, invert, wrap
from ros_nodes.twin_bridge import _initial_poses


def test_compose_places_a_pose_given_in_a_frame_into_its_parent():
    # a robot 1 m ahead of an odom frame that sits at (2, 3) facing +y is at (2, 4)
    assert compose((2.0, 3.0, math.pi / 2), (1.0, 0.0, 0.0)) == pytest.approx((2.0, 4.0, math.pi / 2))
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = (*rng.uniform(-10, 10, 2), rng.uniform(-math.pi, math.pi))
        b = (*rng.uniform(-10, 10, 2), rng.uniform(-math.pi, math.pi))
        assert compose(a, invert(a)) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
        back = compose(invert(a), compose(a, b))
        assert back[:2] == pytest.approx(b[:2]) and wrap(back[2] - b[2]) == pytest.approx(0.0, abs=1e-9)


def test_wrap_keeps_angles_in_one_turn():
    assert wrap(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert wrap(-3 * math.pi / 2) == pytest.approx(math.pi / 2)


def test_initial_poses_one_for_all_or_one_per_robot_else_a_clear_error():
    assert _initial_poses([1, 2.0, 0.5], 2) == [(1.0, 2.0, 0.5), (1.0, 2.0, 0.5)]
    assert _initial_poses([1.0, 2.0, 0.5, -1.0, 0.0, 3.0], 2) == [(1.0, 2.0, 0.5), (-1.0, 0.0, 3.0)]
    assert "3 per robot (6), got 4" in _initial_poses([1.0, 2.0, 0.5, 1.0], 2)
    assert "finite numbers" in _initial_poses([1.0, math.nan, 0.0], 1)
    assert "finite numbers" in _initial_poses(["a", "b", "c"], 1)


def test_tf2_msgs_is_generated_once_with_ros_2s_type_hash():
    # make setup ran the generator; running it again finds it installed and does nothing
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "generate_interfaces.py")], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "tf2_msgs already installed" in run.stdout
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import generate_interfaces
    finally:
        sys.path.pop(0)
    assert generate_interfaces.installed_hash(Path(sys.prefix), "tf2_msgs", "TFMessage") == (
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"
    )
    from tf2_msgs.msg import TFMessage

    assert TFMessage.get_fields_and_field_types() == {"transforms": "sequence<geometry_msgs/TransformStamped>"}
