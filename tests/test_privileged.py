"""Privileged teachers: they see the whole state, so they must solve their task outright."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from policies.privileged import coverage_assignment, privileged_teacher_for
from sim_bridge.batched_env import BatchedEnv
from worlds import load_world


def test_coverage_teacher_sends_robots_to_distinct_landmarks_by_least_total_distance():
    env = BatchedEnv(load_world("coverage"), 3, seed=5)
    env.reset()
    snap = env.snapshot()
    commands = coverage_assignment(env.task, snap)
    assert commands.shape == (3, env.num_agents, 2)
    assert np.all(np.linalg.norm(commands, axis=-1) <= 1.0 + 1e-9)  # the discs' top speed
    yaw = snap.poses[..., 2]
    c, s = np.cos(yaw), np.sin(yaw)
    world_vx = c * commands[..., 0] - s * commands[..., 1]
    world_vy = s * commands[..., 0] + c * commands[..., 1]
    for b in range(3):
        pos, landmarks = snap.poses[b, :, :2], env.task.landmarks[b]
        heading = np.stack([world_vx[b], world_vy[b]], axis=-1)
        to_landmark = landmarks[None] - pos[:, None]  # (N, L, 2)
        cosine = np.einsum("nk,nlk->nl", heading, to_landmark) / (
            np.linalg.norm(heading, axis=-1)[:, None] * np.linalg.norm(to_landmark, axis=-1)
        )
        chosen = cosine.argmax(axis=1)
        assert np.allclose(cosine.max(axis=1), 1.0, atol=1e-6)  # straight at a landmark
        assert len(set(chosen)) == env.num_agents  # one robot per landmark
        total = np.linalg.norm(to_landmark[np.arange(env.num_agents), chosen], axis=-1).sum()
        best = min(
            np.linalg.norm(landmarks[list(p)] - pos, axis=-1).sum()
            for p in itertools.permutations(range(len(landmarks)))
        )
        assert total == pytest.approx(best)


def test_coverage_teacher_covers_every_landmark():
    env = BatchedEnv(load_world("coverage"), 4, seed=11)
    env.reset()
    for _ in range(200):  # 10 s of a 30 s episode
        env.step(coverage_assignment(env.task, env.snapshot()))
    assert env.task.covered.all(), env.task.covered


def test_no_privileged_teacher_is_a_clear_error():
    with pytest.raises(ValueError, match="no privileged teacher for task 'navigation'; tasks with one: coverage"):
        privileged_teacher_for("navigation")
