"""A ``backend: unity`` world as sern's env, over mlagents-envs' ``UnityEnvironment``.

The world runs on the other side of ML-Agents' protocol: a Unity build sern launches
(``unity.build``), the Editor (Play, with sern listening on ``base_port``, 5004 by default),
or ``sern serve-mlagents`` serving the world on another engine. ``UnityWorldEnv`` has
``MultiRobotEnv``'s interface (PettingZoo ``ParallelEnv``, agents ``robot_<i>``, actions
(v m/s, ω rad/s), the task's observations, ``snapshot``, ``episode_metrics``,
``drawables``), so ``sern run`` and ``sern eval`` and every sern policy use it unchanged.

What the Unity side must present (``world_peer`` does): one behaviour whose agents are the
world's robots (agent id = robot index), one vector observation of the task's size, two
continuous actions in [-1, 1] mapped affinely onto each robot's limits. Anything else is
refused at the first reset with what was found. Each episode's metrics, the robots' poses
and reset seeds cross on sern's world channel (``channels``); a build without it still runs,
with NaN poses and the stats channel's ``Episode/*`` values as metrics.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv

from sim_bridge.agents import WorldAgents
from sim_bridge.mlagents import actions as actions_map
from sim_bridge.mlagents import channels
from worlds import WorldSpec, make_task
from worlds.spec import Unity, source_path


class UnityWorldError(ValueError):
    """The world's ``unity`` settings cannot work as given (a build that is not there, a port
    in use, a behaviour that does not exist or does not fit the task): a usage error."""


class UnityRunError(RuntimeError):
    """The Unity side did not connect, died or stopped answering."""


@dataclass
class PoseSnapshot:
    """The robots' poses ``(1, N, 3)`` (map-frame x, y, yaw; NaN if the Unity side does not
    send them) at ``time_s`` ``(1,)``, as ``MultiRobotEnv.snapshot`` gives them."""

    poses: np.ndarray
    time_s: np.ndarray


def _where(world: WorldSpec, key: str) -> str:
    return f"{world.source}: unity.{key}" if world.unity is not None else f"{world.source} (backend unity, defaults)"


def build_path(world: WorldSpec, config: Unity) -> str | None:
    """The build's path (relative ones from the world file's folder), checked to exist."""
    if config.build is None:
        return None
    path = Path(config.build).expanduser()
    if not path.is_absolute():
        folder = source_path(world)
        path = (folder.parent if folder else Path.cwd()) / path
    candidates = [path, *(path.with_name(path.name + ext) for ext in (".x86_64", ".x86"))]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise UnityWorldError(f"{_where(world, 'build')}: no Unity build at {path}")
    return str(found)


class UnityWorldEnv(WorldAgents, ParallelEnv):
    """A world file's task run by a Unity side over ML-Agents (see the module docstring)."""

    metadata = {"name": "sern_unity_world_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, world: WorldSpec, config: Unity | None = None):
        self.world = world
        self.config = config or world.unity or Unity()
        self.task = make_task(world)  # the task's spaces and context; the Unity side runs it
        self._init_agents(world, self.task)
        self.agents: list[str] = []
        self.control_dt = world.control_dt
        self.max_steps = math.ceil(self.task.max_episode_s / self.control_dt - 1e-9)
        self.num_steps = 0
        self.behaviour: str | None = None
        self.snapshot: PoseSnapshot | None = None
        self._metrics: dict[str, Any] = {}
        self._drawables: dict[str, np.ndarray] = {}
        self._next_episode: tuple[dict, PoseSnapshot] | None = None  # the Unity side's own restart
        self._asking: list[int] = []
        self._unity = None
        self._open()

    # ---- connection ----------------------------------------------------------------------
    def _open(self) -> None:
        from mlagents_envs.environment import UnityEnvironment
        from mlagents_envs.exception import UnityEnvironmentException, UnityTimeOutException, UnityWorkerInUseException
        from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
        from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
        from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel

        cfg = self.config
        build = build_path(self.world, cfg)
        engine = EngineConfigurationChannel()
        engine.set_configuration_parameters(time_scale=cfg.time_scale)
        params = EnvironmentParametersChannel()
        for key, value in cfg.env_params.items():
            params.set_float_parameter(key, value)
        self._stats = StatsSideChannel()
        self._sern = channels.make_sern_world_channel()
        try:
            self._unity = UnityEnvironment(
                file_name=build,
                worker_id=cfg.worker_id,
                base_port=cfg.base_port,
                seed=self.world.seed,
                no_graphics=cfg.no_graphics,
                timeout_wait=math.ceil(cfg.timeout_s),
                side_channels=[engine, params, self._stats, self._sern],
            )
        except UnityWorkerInUseException:
            raise UnityWorldError(
                f"{_where(self.world, 'worker_id')}: port {cfg.port} is in use (another trainer or Unity link?); "
                "choose another worker_id or base_port"
            ) from None
        except UnityTimeOutException:
            waited_for = (
                f"the build {build}"
                if build
                else "the Unity Editor (press Play) or a peer such as `sern serve-mlagents`"
            )
            raise UnityRunError(f"{waited_for} did not connect to port {cfg.port} within {cfg.timeout_s:g} s") from None
        except UnityEnvironmentException as err:
            raise UnityRunError(f"Unity side on port {cfg.port}: {err}") from None

    def close(self) -> None:
        """Close the connection (a launched build is stopped and reaped). Safe to call twice."""
        unity, self._unity = self._unity, None
        if unity is not None:
            with contextlib.suppress(Exception):  # a peer that already died: nothing left to close
                unity.close()

    # ---- episodes ------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode. With ``seed``, the Unity side is asked to seed it (sern's world
        channel); without, the episode the Unity side started on its own is used if there is one."""
        self._require_open()
        if seed is None and self._next_episode is not None:
            observations, self.snapshot = self._next_episode
        else:
            if seed is not None:
                self._sern.send_reset_seed(seed)
            self._call(self._unity.reset)
            if self.behaviour is None:
                self.behaviour = self._choose_behaviour()
            observations, _, _, snapshot = self._read(None)
            self.snapshot = snapshot
        self._next_episode = None
        self.agents = [a for a in self.possible_agents if a in observations]
        self.num_steps = 0
        self._metrics, self._drawables = {}, {}
        return observations, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        from mlagents_envs.base_env import ActionTuple

        self._require_open()
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() before step()")
        asking = np.array(self._asking, dtype=int)
        u = np.zeros((len(asking), 2))  # a robot with no action this step is commanded to stop
        for agent, action in actions.items():
            u[asking == self._agent_index(agent)] = self._checked_action(agent, action)
        rows = actions_map.to_unit(u, self.command_low[asking], self.command_high[asking])
        self._unity.set_actions(self.behaviour, ActionTuple(continuous=rows))
        self._call(self._unity.step)
        self.num_steps += 1
        observations, rewards, ended, snapshot = self._read(self.agents)
        self.snapshot = snapshot
        terminations, truncations, infos = {}, {}, {}
        for agent in self.agents:
            reason = ended.get(agent)
            terminations[agent] = reason == "terminated"
            truncations[agent] = reason == "truncated"
            infos[agent] = {}
        self.agents = [a for a in self.agents if a not in ended]
        if not self.agents:
            for agent in infos:
                infos[agent]["episode"] = self._metrics
        return (
            {a: observations[a] for a in infos},
            {a: rewards.get(a, 0.0) for a in infos},
            terminations,
            truncations,
            infos,
        )

    def episode_metrics(self) -> dict[str, Any]:
        """The episode's metrics, as the Unity side reported them when it ended."""
        return dict(self._metrics)

    def drawables(self) -> dict[str, np.ndarray]:
        """What the task draws (goals, items, ...), as the Unity side reported them."""
        return dict(self._drawables)

    def render(self):
        return None

    # ---- reading what the Unity side sent ------------------------------------------------
    def _read(self, acting: list[str] | None):
        """Observations, rewards and ends of this exchange; keeps the Unity side's own next
        episode (agents that ended and asked again at once) for the next ``reset``."""
        decisions, terminals = self._unity.get_steps(self.behaviour)
        observations, rewards, ended = {}, {}, {}
        for k, agent_id in enumerate(terminals.agent_id):
            agent = self._agent_name(agent_id)
            observations[agent] = terminals.obs[0][k]
            rewards[agent] = float(terminals.reward[k])
            ended[agent] = "truncated" if terminals.interrupted[k] else "terminated"
        fresh = {}
        for k, agent_id in enumerate(decisions.agent_id):
            agent = self._agent_name(agent_id)
            if acting is not None and agent in ended:
                fresh[agent] = decisions.obs[0][k]  # the same agent, already in its next episode
                continue
            observations[agent] = decisions.obs[0][k]
            rewards[agent] = float(decisions.reward[k])
        self._asking = [int(i) for i in decisions.agent_id]
        snapshot, next_snapshot = self._read_world_channel()
        if acting is not None and fresh and all(a in ended for a in acting):
            self._next_episode = (fresh, next_snapshot)
        return observations, rewards, ended, snapshot

    def _read_world_channel(self) -> tuple[PoseSnapshot, PoseSnapshot]:
        messages, self._sern.messages = self._sern.messages, []
        n = len(self.robots)
        nothing = PoseSnapshot(np.full((1, n, 3), np.nan), np.array([np.nan]))
        now = nxt = nothing
        for message in messages:
            snap = PoseSnapshot(
                np.asarray(message["poses"], dtype=float).reshape(1, n, 3), np.array([message["time_s"]])
            )
            if message.get("after_reset"):
                nxt = snap
            else:
                now = snap
            if "episode" in message:
                self._metrics = message["episode"]
                self._drawables = {k: np.asarray(v) for k, v in message.get("drawables", {}).items()}
        if not messages:
            stats = self._stats.get_and_reset_stats()
            episode = {k.removeprefix("Episode/"): v[-1][0] for k, v in stats.items() if k.startswith("Episode/")}
            if episode:
                self._metrics = episode
        return (nxt if now is nothing else now), nxt

    def _agent_name(self, agent_id) -> str:
        agent_id = int(agent_id)
        if not 0 <= agent_id < len(self.possible_agents):
            raise UnityWorldError(
                f"{_where(self.world, 'behaviour')}: behaviour {self.behaviour!r} has agent id {agent_id}; "
                f"a sern world's agents are its robots, ids 0..{len(self.possible_agents) - 1}"
            )
        return self.possible_agents[agent_id]

    def _choose_behaviour(self) -> str:
        specs = dict(self._unity.behavior_specs)
        names = {name.split("?")[0]: name for name in specs}
        wanted = self.config.behaviour
        if wanted is None:
            if len(specs) != 1:
                raise UnityWorldError(
                    f"{_where(self.world, 'behaviour')}: the Unity side has {len(specs)} behaviours "
                    f"({', '.join(sorted(names)) or 'none'}); name one"
                )
            name = next(iter(specs))
        elif wanted in specs or wanted in names:
            name = wanted if wanted in specs else names[wanted]
        else:
            raise UnityWorldError(
                f"{_where(self.world, 'behaviour')}: no behaviour {wanted!r} on the Unity side; "
                f"it has {', '.join(sorted(names)) or 'none'}"
            )
        self._check_spec(name, specs[name])
        return name

    def _check_spec(self, name: str, spec) -> None:
        problems = []
        shapes = [tuple(o.shape) for o in spec.observation_specs]
        if shapes != [(self.task.observation_size,)]:
            problems.append(f"observations {shapes}, the task's is [({self.task.observation_size},)]")
        acts = spec.action_spec
        if acts.continuous_size != 2 or acts.discrete_size != 0:
            problems.append(
                f"{acts.continuous_size} continuous and {acts.discrete_size} discrete actions, "
                "a sern robot takes 2 continuous (v, ω)"
            )
        if problems:
            raise UnityWorldError(
                f"{_where(self.world, 'behaviour')}: behaviour {name!r} does not fit task "
                f"{self.task.name!r}: {'; '.join(problems)}"
            )

    def _call(self, method) -> None:
        from mlagents_envs.exception import UnityCommunicatorStoppedException, UnityException

        try:
            method()
        except UnityCommunicatorStoppedException:
            self.close()
            raise UnityRunError(f"the Unity side on port {self.config.port} closed the connection") from None
        except UnityException as err:  # a timeout, a dead build, a broken message
            self.close()
            raise UnityRunError(f"the Unity side on port {self.config.port}: {err}") from None

    def _require_open(self) -> None:
        if self._unity is None:
            raise RuntimeError("the Unity connection is closed")
