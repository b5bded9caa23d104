"""Rollouts on Ray actors, for training beyond one process or machine (optional: needs
``ray``). Each worker holds its own batch of worlds and a copy of the model; every
iteration the learner sends the current weights and gets rollouts back.

    TrainConfig(workers=4, num_worlds=64)   # 4 workers × 64 worlds each
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from policies.collector import Collector
from policies.models import RunningNorm
from policies.ppo_model import make_model
from policies.steering import steering_settings
from policies.targets import target_settings
from policies.train_config import TrainConfig, residual_tuning
from sim_bridge.batched_env import BatchedEnv
from worlds import load_world_data


def _require_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("distributed rollouts need Ray: pip install 'sern[ray]' (or ray)") from None
    return ray


class _Worker:
    """A Ray actor: a Collector and a model copy."""

    def __init__(self, world_data: dict, source: str, config_dict: dict, seed: int):
        torch.set_num_threads(1)
        self.config = TrainConfig(**config_dict)
        world = load_world_data(world_data, source)
        self.collector = Collector(
            world,
            self.config.num_worlds,
            seed,
            residual_tuning(self.config),
            target_settings(self.config),
            steering_settings(self.config),
            self.config.critic_state,
            self.config.backend,
        )
        self.model = make_model(self.collector.env, self.config)
        self.value_norm = RunningNorm(1, clip=1e6)

    def collect(self, state: dict, norm_state: dict):
        self.model.load_state_dict(state)
        self.value_norm.load_state_dict(norm_state)
        return self.collector.collect(self.model, self.config.rollout_steps, self.value_norm, self.config)


class RayCollectors:
    """``config.workers`` Ray actors collecting in parallel."""

    def __init__(self, world, config):
        ray = _require_ray()
        self.ray = ray
        self._started = False
        if not ray.is_initialized():
            ray.init(num_cpus=max(config.workers, 1), include_dashboard=False, logging_level="ERROR")
            self._started = True
        remote = ray.remote(num_cpus=1)(_Worker)
        data = world.to_data()
        self.workers = [
            remote.remote(data, world.source, asdict(config), config.seed + 1000 * (k + 1))
            for k in range(config.workers)
        ]
        self.env_info = BatchedEnv(world, 1, seed=config.seed)  # spaces and task metadata

    def collect(self, model, value_norm):
        state = self.ray.put({k: v.detach().clone() for k, v in model.state_dict().items()})
        norm = self.ray.put(value_norm.state_dict())
        return self.ray.get([w.collect.remote(state, norm) for w in self.workers])

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)
        if self._started:
            self.ray.shutdown()
