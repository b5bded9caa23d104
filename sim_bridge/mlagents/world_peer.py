"""Unity's side of ML-Agents' protocol for a sern world (``sern serve-mlagents``).

In ML-Agents the trainer (mlagents-envs' ``UnityEnvironment``, which ``mlagents-learn`` and
HIVEX's scripts use) is the gRPC server of ``UnityToExternalProto`` and the Unity build is its
client. ``WorldPeer`` plays the build: it connects to the trainer's port, answers the
handshake, and then turns each of the trainer's inputs into one control period of a
``MultiRobotEnv`` (the same world, task and backend ``sern run`` uses):

- one behaviour, ``<world name>?team=0`` (or ``behaviour``), one agent per robot, agent id =
  robot index;
- one vector observation per agent, the task's observation (float32), named ``observation``;
- two continuous actions per agent in [-1, 1], mapped onto the robot's limits
  (``actions``); non-finite actions stop the robot and are counted;
- an agent that finishes (its goal) sends a terminal step and then waits parked, as in
  sern's env; when the world's episode ends, the remaining agents' terminal steps
  (``max_step_reached`` at the time limit) and the next episode's first decisions come in
  the same message, as a Unity build's do;
- each episode's metrics go out through the stats channel (``Episode/<metric>``, for
  TensorBoard) and exactly through sern's world channel, with each step's robot poses;
- a reset seed sent on sern's world channel seeds the next episode; otherwise episodes follow
  the world's RNG from the trainer's seed, as ``MultiRobotEnv.reset`` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import grpc
import numpy as np
from mlagents_envs.communicator_objects.command_pb2 import QUIT, RESET
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
from mlagents_envs.communicator_objects.unity_to_external_pb2_grpc import UnityToExternalProtoStub

from sim_bridge.env import MultiRobotEnv
from sim_bridge.mlagents import actions as actions_map
from sim_bridge.mlagents import channels
from worlds.spec import command_bounds

COMMUNICATION_VERSION = "1.5.0"  # the protocol mlagents-envs 1.1.0 speaks (its major is checked)
PACKAGE_VERSION = "3.0.0"  # com.unity.ml-agents of ML-Agents release 22, which it pairs with
ACADEMY_NAME = "sern"
OBSERVATION_NAME = "observation"
DIMENSION_NONE = 1  # ObservationProto.dimension_properties for a vector observation's axis

RETRY_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]

log = logging.getLogger("sern.serve_mlagents")


class PeerError(RuntimeError):
    """The trainer could not be reached or broke the protocol."""


@dataclass
class PeerStats:
    """What a serving session did."""

    steps: int = 0
    resets: int = 0
    episodes: int = 0
    non_finite_actions: int = 0
    env_params: dict[str, float] = field(default_factory=dict)
    time_scale: float | None = None


class WorldPeer:
    """One sern world served to one trainer over ML-Agents' protocol (see module docstring)."""

    def __init__(self, env: MultiRobotEnv, behaviour: str | None = None):
        self.env = env
        self.behaviour = f"{behaviour or env.world.name}?team=0"
        self.command_low, self.command_high = command_bounds(env.robots)
        self._asking: list[int] = []  # agent ids asked for a decision in the last output, in order
        self._spec_sent = False
        self._index = {name: i for i, name in enumerate(env.possible_agents)}
        self._seed = env.world.seed  # the trainer's seed replaces it at the handshake
        self._reset_seed: int | None = None
        self._first_reset = True
        self.stats = PeerStats()

    # ---- the connection ------------------------------------------------------------------
    def serve(self, port: int, timeout_s: float, host: str = "localhost") -> PeerStats:
        """Connect to the trainer at ``host:port`` (retrying until it listens, at most
        ``timeout_s``), then serve until it closes the connection."""
        # Retry quickly while the trainer is not yet listening (gRPC's default backoff grows to
        # seconds; a Unity build is launched by a trainer that already listens, a peer may not be).
        channel = grpc.insecure_channel(f"{host}:{port}", options=RETRY_OPTIONS)
        stub = UnityToExternalProtoStub(channel)
        try:
            try:
                reply = stub.Exchange(self._hello(), wait_for_ready=True, timeout=timeout_s)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise PeerError(f"no ML-Agents trainer listened on {host}:{port} within {timeout_s:g} s") from None
                raise PeerError(f"the trainer at {host}:{port} refused the handshake: {err.details()}") from None
            init = reply.unity_input.rl_initialization_input
            self._seed = int(init.seed)
            log.info(
                "connected to trainer %s (communication %s) on port %d",
                init.package_version,
                init.communication_version,
                port,
            )
            empty = UnityMessageProto()
            empty.header.status = 200
            reply = stub.Exchange(empty)  # the second call ML-Agents' handshake requires: its reply is the first input
            while reply.header.status == 200 and reply.unity_input.rl_input.command != QUIT:
                output = self.answer(reply.unity_input.rl_input)
                try:
                    reply = stub.Exchange(output)
                except grpc.RpcError as err:
                    if err.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE):
                        break  # the trainer closed (it stops its server as it replies 400)
                    raise PeerError(f"the trainer at {host}:{port} failed: {err.details()}") from None
        finally:
            channel.close()
        return self.stats

    def _hello(self):
        message = UnityMessageProto()
        message.header.status = 200
        init = message.unity_output.rl_initialization_output
        init.name = ACADEMY_NAME
        init.communication_version = COMMUNICATION_VERSION
        init.package_version = PACKAGE_VERSION
        caps = init.capabilities
        caps.baseRLCapabilities = True
        caps.concatenatedPngObservations = True
        caps.compressedChannelMapping = True
        caps.hybridActions = True
        caps.trainingAnalytics = True
        caps.variableLengthObservation = False
        caps.multiAgentGroups = True
        return message

    # ---- one exchange --------------------------------------------------------------------
    def answer(self, rl_input):
        """The output for one trainer input (side channels first, then the command, as a
        Unity build handles them)."""
        self._read_side_channels(rl_input.side_channel)
        message = UnityMessageProto()
        message.header.status = 200
        infos = message.unity_output.rl_output.agentInfos[self.behaviour].value
        frames: list[bytes] = []
        if rl_input.command == RESET or self._first_reset:
            self._reset(infos, frames)
        else:
            actions = rl_input.agent_actions[self.behaviour].value if self.behaviour in rl_input.agent_actions else []
            self._step(actions, infos, frames)
        message.unity_output.rl_output.side_channel = b"".join(frames)
        if not self._spec_sent and len(infos):
            self._add_spec(message.unity_output.rl_initialization_output.brain_parameters.add())
            self._spec_sent = True
        return message

    def _read_side_channels(self, data: bytes) -> None:
        try:
            frames = channels.split_frames(data)
        except channels.SideChannelError as err:
            log.warning("side channel: %s; ignored", err)
            return
        for channel, payload in frames:
            try:
                if channel == channels.SERN_WORLD_CHANNEL_ID:
                    message = channels.decode_json(payload)
                    if "reset_seed" in message:
                        self._reset_seed = int(message["reset_seed"])
                elif channel == channels.ENV_PARAMS_CHANNEL_ID:
                    param = channels.read_env_param(payload)
                    if param is not None:
                        self.stats.env_params[param[0]] = param[1]
                elif channel == channels.ENGINE_CHANNEL_ID:
                    kind, values = channels.read_engine_setting(payload)
                    if kind == channels.ENGINE_TIME_SCALE:
                        self.stats.time_scale = float(values[0])  # sern steps as fast as asked anyway
            except (channels.SideChannelError, ValueError, TypeError, UnicodeDecodeError) as err:
                log.warning("side channel %s: %s; ignored", channel, err)

    def _reset(self, infos, frames: list[bytes]) -> None:
        seed = self._reset_seed if self._reset_seed is not None else (self._seed if self._first_reset else None)
        self._reset_seed = None
        self._first_reset = False
        observations, _ = self.env.reset(seed=seed)
        self.stats.resets += 1
        self._asking = []
        for agent in self.env.agents:
            self._add_info(infos, agent, observations[agent], 0.0, done=False)
        frames.append(self._poses_frame(after_reset=True))

    def _step(self, actions, infos, frames: list[bytes]) -> None:
        if len(actions) != len(self._asking):
            raise PeerError(f"the trainer sent {len(actions)} actions for {len(self._asking)} agents asking for one")
        ids = np.array(self._asking, dtype=int)
        commands = self._commands(ids, [a.continuous_actions for a in actions])
        commands = {f"robot_{i}": c for i, c in zip(ids.tolist(), commands, strict=True)}
        observations, rewards, terminations, truncations, _ = self.env.step(commands)
        self.stats.steps += 1
        self._asking = []
        for agent, obs in observations.items():
            done = terminations[agent] or truncations[agent]
            self._add_info(infos, agent, obs, rewards[agent], done=done, max_step=truncations[agent])
        if self.env.agents:
            frames.append(self._poses_frame())
            return
        metrics = self.env.episode_metrics()
        self.stats.episodes += 1
        episode = {"episode": metrics, "drawables": self.env.task.drawables()}
        frames.append(self._poses_frame(**episode))
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
                frames.append(channels.stats_frame(f"Episode/{key}", float(value)))
        self._reset(infos, frames)  # the next episode starts at once, as a Unity build's agents do

    def _commands(self, ids: np.ndarray, actions: list) -> np.ndarray:
        """Commands ``(k, 2)`` for the agents ``ids`` from their [-1, 1] actions; an action
        that is not two finite numbers stops its robot."""
        rows = np.zeros((len(ids), 2))
        ok = np.zeros(len(ids), dtype=bool)
        for k, action in enumerate(actions):
            if len(action) == 2:
                rows[k] = action
                ok[k] = True
        ok &= np.isfinite(rows).all(axis=1)
        if not ok.all():
            if self.stats.non_finite_actions == 0:  # the first time only: the count says the rest
                bad = [f"robot_{i}: {list(actions[k])}" for k, i in enumerate(ids.tolist()) if not ok[k]]
                log.warning("%s: not two finite numbers; the robot stops", "; ".join(bad))
            self.stats.non_finite_actions += int((~ok).sum())
        commands = actions_map.from_unit(rows, self.command_low[ids], self.command_high[ids])
        commands[~ok] = 0.0
        return commands

    def _add_info(self, infos, agent: str, obs: np.ndarray, reward: float, done: bool, max_step: bool = False) -> None:
        info = infos.add()
        agent_id = self._index[agent]
        info.id = agent_id
        info.reward = float(reward)
        info.done = bool(done)
        info.max_step_reached = bool(max_step)
        observation = info.observations.add()
        observation.shape.append(len(obs))
        observation.float_data.data.extend(np.asarray(obs, dtype=np.float32).tolist())
        observation.dimension_properties.append(DIMENSION_NONE)
        observation.name = OBSERVATION_NAME
        if not done:
            self._asking.append(agent_id)

    def _poses_frame(self, after_reset: bool = False, **extra) -> bytes:
        snapshot = self.env.snapshot
        message = {"poses": snapshot.poses[0], "time_s": float(snapshot.time_s[0]), **extra}
        if after_reset:
            message["after_reset"] = True
        return channels.frame(channels.SERN_WORLD_CHANNEL_ID, channels.encode_json(message))

    def _add_spec(self, brain) -> None:
        brain.brain_name = self.behaviour
        brain.is_training = True
        brain.action_spec.num_continuous_actions = 2
        brain.action_spec.num_discrete_actions = 0
        brain.action_spec.action_descriptions.extend(["linear speed (-1..1 of limits)", "turn rate (-1..1 of limits)"])
