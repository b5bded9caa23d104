"""What handing a landmark off is worth on coverage: the scripted baseline with hand-offs.

In most episodes the greedy baseline loses, the missing landmark was in view only of a robot
holding its own (benchmarks/coverage_failures.py). ``CoveragePolicy.hand_off`` sends such a
robot to the free landmark, leaving its own to whoever comes; the baseline never calls it.
This runs the baseline on the same seeded episodes with hand-offs decided by:
  baseline        never (the shipped baseline);
  p = x           a coin with probability x, tossed at each moment a holding robot's view
                  changes (``CoveragePolicy.holding_anew``: what a ``steer_on=holding_changes``
                  actor with a fixed output does);
  rule            a hand-written rule at every holding step: hand off when a neighbour in
                  view sits on no landmark in view (it can take this one) and no neighbour in
                  view is within 4 m of the free landmark (nobody else is going for it).
The rows bracket what a learned hand-off choice (policies/steering.py) can reach with the
same local view; see the README (Learning) for what PPO reached.

    .venv/bin/python benchmarks/coverage_hand_off.py [--episodes 100] [--seed 0]

Ends with one JSON line {variant: success rate}.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from coverage_view import coverage_world, success  # a sibling script: benchmarks/ is on the path

from policies.scripted_coverage import CoveragePolicy

IDLE_M = 0.45  # a neighbour this far from every landmark in view holds none
OTHERS_GOING_M = 4.0  # a neighbour this near the free landmark may be going for it
COIN_PROBABILITIES = (0.12, 0.27, 0.5, 1.0)


class CoinHandOff(CoveragePolicy):
    """The baseline, handing off with probability ``p`` at each moment a holding robot's view
    changes (seeded per episode)."""

    def __init__(self, context, p: float):
        super().__init__(context)
        self.p = p
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.rng = np.random.default_rng(seed)

    def act(self, observations):
        commands = super().act(observations)
        for agent in observations:
            if self.holding_anew(agent) and self.rng.random() < self.p:
                self.hand_off(agent)
        return commands


class RuleHandOff(CoveragePolicy):
    """The baseline, handing off by a hand-written rule (module docstring)."""

    def act(self, observations):
        commands = super().act(observations)
        for agent, obs in observations.items():
            if not self.holding(agent):
                continue
            obs = np.asarray(obs, dtype=float)
            lm = obs[self._lm].reshape(-1, 4)
            lm = lm[lm[:, 3] > 0.5]
            nb = obs[self._nb].reshape(-1, 5)
            nb = nb[nb[:, 4] > 0.5]
            if not len(nb):
                continue
            idle = np.linalg.norm(nb[:, None, :2] - lm[None, :, :2], axis=-1).min(axis=1) > IDLE_M
            nobody_going = np.linalg.norm(nb[:, :2] - self._other_free[agent], axis=1).min() > OTHERS_GOING_M
            if idle.any() and nobody_going:
                self.hand_off(agent)
        return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.episodes)
    world = coverage_world()

    variants = {"baseline": lambda context, env: CoveragePolicy(context)}
    for p in COIN_PROBABILITIES:
        variants[f"p = {p:g}"] = lambda context, env, p=p: CoinHandOff(context, p)
    variants["rule"] = lambda context, env: RuleHandOff(context)
    rows = {name: success(world, make, seeds) for name, make in variants.items()}
    print(f"greedy coverage baseline with hand-offs, {args.episodes} episodes, seeds {seeds.start}..{seeds.stop - 1}")
    print(f"{'hand-offs':<10} {'success':>8} {'collision rate':>15}")
    for name, (rate, collisions) in rows.items():
        print(f"{name:<10} {rate:>8.0%} {collisions:>15.1%}")
    print(json.dumps({name: rate for name, (rate, _) in rows.items()}))


if __name__ == "__main__":
    main()
