"""Every shipped task world runs in the ROS graph.

``sern launch sim_launch.yaml world:=W policy:=learned`` (a subprocess: sim_node and
policy_node, real rclpy across processes) completes an episode of each of the six task
worlds with the outcome the task defines: the robots reach their goals, the flock reaches
its goal, coverage covers, foraging delivers, pursuit captures, transport gets the object
in. The probe here is a plain rclpy node reading ``task/status`` and the task's topics. In
lockstep the graph runs the very episode the env runs in-process for the same seed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass, field

import numba
import numpy as np
import pytest
import torch
import yaml
from conftest import write_world
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import BIN, Launched, Probe, fresh_domain, ros_env
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from policies.base import PolicyContext
from policies.registry import make_policy
from policies.rollout import run_episode
from ros_nodes.task_topics import MARKERS_TOPIC, STATUS_QOS, STATUS_TOPIC, TASK_QOS, parse_status, task_topics
from sim_bridge.env import MultiRobotEnv
from worlds import WORLDS_DIR, load_world, make_task, with_robot_count

pytestmark = pytest.mark.ros

EPISODE_TIMEOUT_S = 240.0  # wall seconds for one episode on a busy 2-core machine (idle: 5-25 s)


@dataclass
class Case:
    seed: int
    outcome: str  # what the task's success means, in its own metrics
    args: list[str] = field(default_factory=list)
    robots: int = 0


CASES = {
    # Two Huskies (PyBullet is the slow engine here): each must reach its goal, untouched.
    "navigation": Case(1000, "every robot at its goal without a collision", ["robots:=2"], robots=2),
    "flocking": Case(1000, "the flock at its goal, cohesive and aligned"),
    "coverage": Case(1000, "every landmark covered at the end"),
    "foraging": Case(1000, "all twelve items delivered"),
    "pursuit": Case(1000, "both evaders captured"),
    "transport": Case(1000, "the object in the goal", ["episode_end:=reset"]),
}


def _outcome_holds(world: str, m: dict) -> bool:
    if world == "navigation":
        return all(r["success"] for r in m["robots"]) and m["collisions"] == 0
    if world == "flocking":
        return m["success_rate"] == 1.0 and m["time_to_goal_s"] is not None and m["max_spread_m"] <= 4.0
    if world == "coverage":
        return m["coverage_fraction"] == 1.0
    if world == "foraging":
        return m["items_delivered"] == 12 and m["time_to_deliver_all_s"] is not None
    if world == "pursuit":
        return m["captures"] == 2 and m["time_to_capture_all_s"] is not None
    if world == "transport":
        return m["final_distance_m"] <= 0.5 and m["time_to_goal_s"] is not None
    raise KeyError(world)


@pytest.fixture
def domain():
    return fresh_domain()


def _world(name: str, robots: int):
    world = load_world(name)
    return with_robot_count(world, robots) if robots else world


def _env_episode(world, seed: int) -> dict:
    """The learned policy's episode for ``seed`` in-process, as ``sern eval`` runs it."""
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    env = MultiRobotEnv(world)
    try:
        return run_episode(env, make_policy("learned", PolicyContext.from_task(env.task)), seed).metrics
    finally:
        env.close()
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


class TaskProbe:
    """Records ``task/status``, ``task/markers`` and every topic of the task's state."""

    def __init__(self, probe: Probe, world):
        self.statuses = []
        self.markers = []
        self.task_msgs: dict[str, list] = {}
        node = probe.node
        node.create_subscription(
            DiagnosticArray, STATUS_TOPIC, lambda m: self.statuses.append(parse_status(m)), STATUS_QOS
        )
        node.create_subscription(MarkerArray, MARKERS_TOPIC, self.markers.append, 10)
        self.topics = task_topics(make_task(world)).topics()
        for topic in self.topics:
            rows = self.task_msgs.setdefault(topic.name, [])
            node.create_subscription(topic.msg_type, topic.name, rows.append, TASK_QOS)

    def final(self, episode: int = 0):
        return next(
            (s for s in self.statuses if s is not None and s.episode == episode and s.over),
            None,
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_learned_policy_completes_the_worlds_episode_in_the_graph(name, domain):
    case = CASES[name]
    world = _world(name, case.robots)
    args = ["sim_launch.yaml", f"world:={name}", "policy:=learned", f"seed:={case.seed}", *case.args]
    graph = Launched([*args, "lockstep:=true", "real_time_factor:=0"], domain)
    probe = Probe(domain)
    started = time.monotonic()
    try:
        seen = TaskProbe(probe, world)
        assert probe.spin_until(lambda: seen.final() is not None, timeout=EPISODE_TIMEOUT_S), graph.output()[-4000:]
        final = seen.final()
        wall_s = time.monotonic() - started
        if name == "transport":  # episode_end:=reset: the next episode, with the next seed
            assert probe.spin_until(lambda: seen.final(1) is not None, timeout=EPISODE_TIMEOUT_S), graph.output()[
                -4000:
            ]
            graph.wait_for(r"\[policy_node-\d+\].*episode 1 \(seed 1001\)")
        probe.spin_for(0.5)
    finally:
        probe.close()
        code = graph.stop()
    assert code in (0, 130), graph.output()[-3000:]
    assert "Traceback" not in graph.output()
    metrics = final.metrics
    assert final.state == "succeeded", f"{name}: {metrics}"
    assert _outcome_holds(name, metrics), f"{name}: not {CASES[name].outcome}: {metrics}"
    print(f"{name}: episode in {wall_s:.1f} s wall: { ({k: v for k, v in metrics.items() if k != 'robots'}) }")

    # The task's typed topics said what the env draws for this seed, in the map frame.
    reference = MultiRobotEnv(world, backend="kinematic")
    reference.reset(seed=case.seed)
    expected = task_topics(reference.task).static_messages(0.0)
    reference.close()
    for topic in seen.topics:
        assert seen.task_msgs[topic.name], f"nothing on {topic.name}"
        msg = seen.task_msgs[topic.name][0]
        assert msg.header.frame_id == "map"
        if not topic.dynamic:
            assert _positions(msg) == pytest.approx(_positions(expected[topic.name]))
    assert any(m.markers and m.markers[-1].header.frame_id == "map" for m in seen.markers)

    if world.backend == "kinematic":  # the graph ran the env's own episode (PyBullet: too slow here)
        env_metrics = _env_episode(world, case.seed)
        headline, _ = reference.task.headline_metric
        assert metrics["success_rate"] == env_metrics["success_rate"]
        assert metrics[headline] == pytest.approx(env_metrics[headline], rel=0.02, abs=0.1), (metrics, env_metrics)
        if name == "transport":
            assert seen.final(1).metrics["success_rate"] == _env_episode(world, case.seed + 1)["success_rate"] == 1.0


def _positions(msg) -> list[float]:
    if hasattr(msg, "poses"):
        return [c for p in msg.poses for c in (p.position.x, p.position.y)]
    return [msg.pose.position.x, msg.pose.position.y]


@pytest.mark.slow
def test_flock_reaches_its_goal_in_real_time_without_lockstep(domain):
    """The issue's command as a user types it (real time, here twice as fast): the policy
    node on simulated time, the sim stepping its kinematic engine by the control period."""
    graph = Launched(["sim_launch.yaml", "world:=flocking", "policy:=learned", "real_time_factor:=2"], domain)
    probe = Probe(domain)
    try:
        seen = TaskProbe(probe, load_world("flocking"))
        assert probe.spin_until(lambda: seen.final() is not None, timeout=EPISODE_TIMEOUT_S), graph.output()[-4000:]
    finally:
        probe.close()
        code = graph.stop()
    metrics = seen.final().metrics
    assert code in (0, 130) and "Traceback" not in graph.output()
    assert seen.final().state == "succeeded" and _outcome_holds("flocking", metrics), metrics
    graph.wait_for(r"\[sim_node-\d+\].*on kinematic.*control period 0\.05 s, step 0\.05 s, odometry 20 Hz")


def test_lockstep_holds_simulated_time_until_every_robot_is_commanded(domain):
    graph = Launched(["sim_launch.yaml", "world:=pursuit", "policy:=none", "lockstep:=true"], domain)
    probe = Probe(domain)
    try:
        clock = []
        probe.node.create_subscription(Clock, "/clock", clock.append, qos_profile_sensor_data)
        graph.wait_for(r"lockstep: waiting for cmd_vel from robot_0, robot_1, robot_2, robot_3", timeout=60)
        assert probe.spin_until(lambda: len(clock) >= 2, timeout=30)  # the state is sent again while it waits
        stamps = {(c.clock.sec, c.clock.nanosec) for c in clock}
        assert len(stamps) == 1, stamps  # simulated time held: no command, no step
    finally:
        probe.close()
        graph.stop()


@pytest.mark.parametrize(
    ("world_change", "expected"),
    [
        (None, r"'camera': world flocking has no sensors\.camera"),
        ("camera", r"'camera': the kinematic engine of world flocking .* renders no camera images"),
    ],
)
def test_camera_on_a_kinematic_world_is_refused_at_start(world_change, expected, domain, tmp_path):
    world = "flocking"
    if world_change == "camera":  # a camera the world asks for, on an engine that cannot render one
        data = yaml.safe_load((WORLDS_DIR / "flocking.yaml").read_text())
        data["sensors"]["camera"] = {"width": 64, "height": 48, "fov_deg": 60}
        world = str(write_world(tmp_path, data, "flocking_camera.yaml"))
    proc = subprocess.run(
        [str(BIN / "sim_node"), "--ros-args", "-p", f"world:={world}", "-p", "camera:=true"],
        env=ros_env(domain),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert re.search(expected, proc.stderr), proc.stderr


def test_policy_node_drives_on_fresh_task_state_and_stops_the_robots_when_it_goes_stale(domain):
    """No command before the task's state has come once (nothing to stop yet); commands
    while evaders keep coming; every robot stopped once they stop coming (a dead simulator
    or tracker must not leave a team running on old targets)."""
    from geometry_msgs.msg import Twist

    from ros_nodes import conversions as conv
    from ros_nodes.task_topics import point_cloud

    world = load_world("pursuit")
    node = subprocess.Popen(
        [str(BIN / "policy_node"), "--ros-args", "-p", "world:=pursuit", "-p", "policy:=scripted"],
        env=ros_env(domain),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    probe = Probe(domain)
    try:
        commands = []
        probe.node.create_subscription(Twist, "robot_0/cmd_vel", lambda m: commands.append((time.monotonic(), m)), 10)
        odom_pubs = [probe.node.create_publisher(Odometry, f"{r.name}/odom", 10) for r in world.robot_entries()]
        evaders = probe.node.create_publisher(PointCloud2, "task/evaders", TASK_QOS)
        starts = [(-4.0, -3.0 + 2.0 * k) for k in range(len(odom_pubs))]

        def publish(with_evaders: bool) -> None:
            stamp = time.time()
            for (x, y), pub, r in zip(starts, odom_pubs, world.robot_entries(), strict=True):
                pub.publish(conv.odometry(stamp, r.name, x, y, 0.0, 0.0, 0.0, 0.0))
            if with_evaders:  # one evader 2 m ahead of robot_0, standing
                cols = {"x": [-2.0], "y": [-3.0], "z": [0.0], "vx": [0.0], "vy": [0.0]}
                evaders.publish(point_cloud(stamp, {k: np.array(v) for k, v in cols.items()}))

        def run_for(seconds: float, with_evaders: bool) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                publish(with_evaders)
                probe.spin_for(0.05)

        assert probe.spin_until(lambda: odom_pubs[0].get_subscription_count() > 0, timeout=60)
        run_for(2.0, with_evaders=False)
        assert commands == []  # without the task's state it has nothing to act on, and sends nothing
        run_for(2.0, with_evaders=True)
        assert commands and commands[-1][1].linear.x > 0.3  # after the evader, ahead
        cut = time.monotonic()
        run_for(2.0, with_evaders=False)
        after = [(t - cut, m.linear.x, m.linear.y) for t, m in commands if t > cut]
        stopped = [t for t, vx, vy in after if vx == 0.0 and vy == 0.0]
        assert stopped and stopped[0] <= 0.5 + 0.5, after[:20]  # sensor_timeout_s, then a tick or two
        assert all(vx == vy == 0.0 for t, vx, vy in after if t > stopped[0])
    finally:
        probe.close()
        node.send_signal(signal.SIGINT)
        out, _ = node.communicate(timeout=30)
    assert "robot_0: no fresh task/evaders: holding it stopped" in out, out


def test_a_failure_while_stepping_ends_the_node_with_one_message_and_exit_1(domain, monkeypatch, capfd):
    """What the kinematic engine's refusal of a 60 Hz step used to do (a traceback per
    node), any stepping failure now does as one line and exit code 1."""
    from ros_nodes.runtime import run_node
    from ros_nodes.sim_node import SimNode

    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    def refuse(dt: float) -> None:
        raise ValueError(f"dt={dt} s is not a whole number of control periods of 0.05 s")

    def sim_node_with_a_failing_engine() -> SimNode:
        node = SimNode()
        node.fleet.backend.step = refuse  # the engine fails on its first step
        return node

    args = ["--ros-args", "-p", "world:=flocking", "-p", "real_time_factor:=0"]
    code = run_node(sim_node_with_a_failing_engine, args, "sim_node")
    out = capfd.readouterr()
    text = out.out + out.err
    assert code == 1, text
    assert "world flocking: simulation stopped: ValueError: dt=0.05 s is not a whole number" in text, text
    assert "Traceback" not in text
