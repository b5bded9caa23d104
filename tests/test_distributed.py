"""Rollouts on a local two-worker Ray instance feed the same PPO update."""

from __future__ import annotations

import pytest
import ray  # pinned in requirements.txt: a missing Ray is a failure here, not a skip
from test_training import small_world

from policies.mappo import train
from policies.train_config import TrainConfig


@pytest.mark.slow
def test_training_with_two_ray_workers(tmp_path):
    config = TrainConfig(total_agent_steps=16_384, num_worlds=8, rollout_steps=64, workers=2, seed=3)
    result = train(small_world(), config, out=tmp_path / "dist", progress=False)
    # each iteration gathered 2 workers × 8 worlds × 2 robots × 64 steps
    assert [h["agent_steps"] for h in result.history] == [2048 * (k + 1) for k in range(len(result.history))]
    assert len(result.history) == 8
    assert result.history[-1]["episodes"] > 0  # episodes came back from the workers
    assert (tmp_path / "dist.pt").is_file()
    assert not ray.is_initialized()  # the trainer shut down the Ray instance it started
