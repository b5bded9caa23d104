"""sern's MAPPO trainer against Stable-Baselines3 PPO with one policy shared by every robot,
trained for the same wall-clock budget on the same task, then evaluated the same way.

Task: worlds/navigation.yaml (4 Huskies cross an obstacle field) on the vectorised
kinematic engine, the same number of worlds side by side for both trainers. MAPPO is
``policies.mappo.train`` with its default configuration apart from the number of worlds
and the step cap (shared actor, centralised critic, input and value normalisation).
SB3 PPO sees the B worlds × N robots as B·N sub-envs of one shared policy
(``RobotsVecEnv``) and gets the matching hyper-parameters where they exist (128 steps per
rollout, 4 minibatches, 5 epochs, γ, λ, clip, learning rate annealed over the same step
horizon, two tanh layers of 128, initial log-std), with VecNormalize (observations, and
rewards scaled by their running return) in place of MAPPO's input and value
normalisation. Each trainer stops after the first update that ends past the budget (the
clock starts before its envs are built); the robot-step cap (``--agent-steps``, also the
horizon over which both anneal the learning rate) is set well beyond what a CPU reaches
in the budget, so the clock is what stops training. Both run torch on one thread.

Evaluation, identical for both: the trained model's deterministic (mean) action, through
``policies.evaluation.evaluate`` (the path ``sern eval`` takes: ``run_episodes`` on a
``MultiRobotEnv``) with the kinematic backend, one episode per held-out seed 1000, 1001, ...; success rate is
the fraction of robots that reach their goal, collision rate the fraction that touch
anything at least once.

    .venv/bin/python benchmarks/train_vs_sb3.py [--budget-s S] [--num-worlds B] [--episodes E]

Ends with one JSON line: {"mappo_success", "sb3_success", "budget_s", then collision rates,
robot-steps trained and training seconds}.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from policies.base import FunctionPolicy
from policies.evaluation import evaluate
from policies.mappo import train
from policies.train_config import TrainConfig
from sim_bridge.batched_env import BatchedEnv
from worlds import WorldSpec, load_world

WORLD = "navigation"
EVAL_BACKEND = "kinematic"
# ~5,000 robot-steps/s on two busy cores: 600 s reach ~3e6, so this cap does not bind
AGENT_STEPS = 20_000_000


def unit_to_command(unit: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[-1, 1] actions → (v, ω) commands, the mapping MAPPO's model uses (``to_command``)."""
    return low + (np.clip(unit, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


class RobotsVecEnv(VecEnv):
    """B worlds × N robots of a ``BatchedEnv`` as B·N sub-envs of one shared SB3 policy.

    Sub-env ``w * N + i`` is robot ``i`` of world ``w``. Actions are in [-1, 1] and mapped to
    the robots' command limits. A world restarts on its own when its episode ends; then all
    its robots report ``done`` with ``terminal_observation``, and ``TimeLimit.truncated``
    for robots still driving when the time limit cut the episode (SB3 bootstraps those).

    A robot that finishes (reaches its goal) while the rest of its world drives on is not
    reported done: a sub-env cannot leave SB3's rollout, and a done per robot would make it
    restart while its world has not. It is parked instead: its action is replaced by zero
    (as ``BatchedEnv`` does) and its reward is zero until the world restarts, so the return
    after arrival is zero, as if the episode had ended there; its parked steps remain in
    the rollout as samples whose actions change nothing.
    """

    def __init__(self, world: WorldSpec, num_worlds: int, seed: int):
        self.env = BatchedEnv(world, num_worlds, seed=seed)
        if not (
            np.all(self.env.action_low == self.env.action_low[0])
            and np.all(self.env.action_high == self.env.action_high[0])
        ):
            raise ValueError(f"{world.source}: one shared policy needs robots with the same command limits")
        self.low, self.high = self.env.action_low[0], self.env.action_high[0]
        self.seed_value = seed
        self.render_mode = None
        self.recent_episodes: deque[dict[str, Any]] = deque(maxlen=200)
        self._actions: np.ndarray | None = None
        lo, hi = self.env.task.observation_bounds()
        super().__init__(
            self.env.num_worlds * self.env.num_agents,
            spaces.Box(lo, hi, dtype=np.float32),
            spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
        )

    def _flat(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(self.num_envs, *x.shape[2:])

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds[0] is not None else self.seed_value
        self._reset_seeds()
        return self._flat(self.env.reset(seed=seed)).copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.env.num_worlds, self.env.num_agents, 2)

    def step_wait(self):
        step = self.env.step(unit_to_command(self._actions, self.low, self.high))
        rewards = np.where(step.active, step.rewards, 0.0).astype(np.float32)
        dones = np.repeat(step.world_done, self.env.num_agents)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        N = self.env.num_agents
        for w in np.flatnonzero(step.world_done):
            for i in range(N):
                still_driving = bool(step.active[w, i] and not step.terminated[w, i])
                infos[w * N + i] = {
                    "terminal_observation": step.final_obs[w, i].copy(),
                    "TimeLimit.truncated": bool(step.truncated[w]) and still_driving,
                }
        self.recent_episodes.extend(step.episodes)
        return self._flat(step.obs).copy(), self._flat(rewards), dones, infos

    def close(self) -> None:
        self.env.backend.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        raise NotImplementedError("the robots of a batched world have no gymnasium env of their own")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


class WallClockBudget(BaseCallback):
    """Stops SB3 training at the first rollout that starts past the budget, so, like
    MAPPO, the last update before the deadline is completed."""

    def __init__(self, started: float, seconds: float):
        super().__init__()
        self.started, self.seconds = started, seconds
        self.out_of_time = False

    def _on_rollout_start(self) -> None:
        self.out_of_time = time.monotonic() - self.started >= self.seconds

    def _on_step(self) -> bool:
        return not self.out_of_time


def evaluate_commands(
    name: str, commands: Callable[[np.ndarray], np.ndarray], world: WorldSpec, episodes: int, seed: int
) -> dict[str, Any]:
    """Mean episode metrics over seeds ``seed .. seed+episodes-1``, the path ``sern eval`` takes."""
    return evaluate(lambda context: FunctionPolicy(context, name, commands), world, episodes, seed, EVAL_BACKEND)


def train_mappo(world: WorldSpec, config: TrainConfig, budget_s: float):
    result = train(world, config, out=None, progress=False, seconds=budget_s)
    model = result.model.eval()
    last = result.history[-1] if result.history else {}

    def commands(obs: np.ndarray) -> np.ndarray:
        return model.act(torch.as_tensor(obs), deterministic=True).numpy()

    return commands, {
        "agent_steps": result.agent_steps,
        "train_s": result.seconds,
        "train_success": last.get("success_rate"),
    }


def train_sb3(world: WorldSpec, config: TrainConfig, budget_s: float):
    started = time.monotonic()
    torch.set_num_threads(config.torch_threads)
    robots = RobotsVecEnv(world, config.num_worlds, config.seed)
    venv = VecNormalize(robots, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=config.gamma)
    samples = config.num_worlds * robots.env.num_agents * config.rollout_steps
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=(lambda left: config.learning_rate * left) if config.anneal_lr else config.learning_rate,
        n_steps=config.rollout_steps,
        batch_size=max(1, samples // config.minibatches),
        n_epochs=config.update_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_coef,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs={
            "net_arch": {"pi": [config.hidden, config.hidden], "vf": [config.hidden, config.hidden]},
            "activation_fn": torch.nn.Tanh,
            "log_std_init": config.init_log_std,
        },
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=config.total_agent_steps, callback=WallClockBudget(started, budget_s))
    seconds = time.monotonic() - started
    venv.training = False
    recent = [e["success_rate"] for e in robots.recent_episodes]

    def commands(obs: np.ndarray) -> np.ndarray:
        unit, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
        return unit_to_command(unit, robots.low, robots.high)

    stats = {
        "agent_steps": int(model.num_timesteps),
        "train_s": seconds,
        "train_success": float(np.mean(recent)) if recent else None,
    }
    return commands, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, default=600.0, help="training wall-clock per trainer (default 600)")
    parser.add_argument("--num-worlds", type=int, default=16, help="worlds side by side, both trainers (default 16)")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes (default 20)")
    parser.add_argument("--eval-seed", type=int, default=1000, help="first evaluation seed (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="training seed, both trainers (default 0)")
    parser.add_argument(
        "--agent-steps",
        type=int,
        default=AGENT_STEPS,
        help="robot-step cap and learning-rate annealing horizon, both trainers (default %(default)s)",
    )
    args = parser.parse_args()
    if args.budget_s <= 0 or args.episodes < 1:
        parser.error("--budget-s must be positive and --episodes at least 1")
    world = load_world(WORLD)
    config = TrainConfig(num_worlds=args.num_worlds, total_agent_steps=args.agent_steps, seed=args.seed)
    rows = {}
    for name, trainer in (("MAPPO (sern)", train_mappo), ("SB3 PPO, shared", train_sb3)):
        commands, stats = trainer(world, config, args.budget_s)
        rows[name] = {**stats, **evaluate_commands(name, commands, world, args.episodes, args.eval_seed)}
    print(
        f"{WORLD}, {args.num_worlds} worlds, budget {args.budget_s:.0f} s; "
        f"evaluation: {args.episodes} episodes on the {EVAL_BACKEND} engine, seeds {args.eval_seed}.."
        f"{args.eval_seed + args.episodes - 1}, deterministic actions"
    )
    print(f"{'trainer':16} {'robot-steps':>12} {'train s':>8} {'train success':>14} {'success':>8} {'collisions':>11}")
    for name, r in rows.items():
        train_success = "-" if r["train_success"] is None else f"{r['train_success']:.1%}"
        print(
            f"{name:16} {r['agent_steps']:>12,} {r['train_s']:>8.0f} {train_success:>14} "
            f"{r['success_rate']:>8.1%} {r['collision_rate']:>11.1%}"
        )
    mappo, sb3 = rows["MAPPO (sern)"], rows["SB3 PPO, shared"]
    print(
        json.dumps(
            {
                "mappo_success": round(mappo["success_rate"], 4),
                "sb3_success": round(sb3["success_rate"], 4),
                "budget_s": args.budget_s,
                "mappo_collision": round(mappo["collision_rate"], 4),
                "sb3_collision": round(sb3["collision_rate"], 4),
                "mappo_agent_steps": mappo["agent_steps"],
                "sb3_agent_steps": sb3["agent_steps"],
                "mappo_train_s": round(mappo["train_s"], 1),
                "sb3_train_s": round(sb3["train_s"], 1),
                "num_worlds": args.num_worlds,
                "episodes": args.episodes,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
