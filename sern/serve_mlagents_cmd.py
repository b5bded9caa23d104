"""``sern serve-mlagents WORLD``: a sern world for any ML-Agents trainer.

Plays the Unity build's part of ML-Agents' protocol (``sim_bridge.mlagents.world_peer``): it
connects to the trainer's port, as a build launched by ``mlagents-learn`` or the Editor's Play
button does, and serves the world until the trainer closes.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sern.errors import JobFailed, UsageError
from worlds import WorldFileError, load_world
from worlds.spec import MLAGENTS_EDITOR_PORT

MAX_TIMEOUT_S = 86_400.0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve-mlagents",
        help="serve a world to an ML-Agents trainer (in a Unity build's place)",
        description=(
            "Serve WORLD (on its kinematic or PyBullet backend) over Unity ML-Agents' gRPC protocol, "
            "in the place of a Unity build: connect to the trainer's port (mlagents-envs' UnityEnvironment, "
            "mlagents-learn, or a world with backend: unity), retrying until it listens, and serve until it "
            "closes. One behaviour (the world's name), one agent per robot, the task's observation, two "
            "continuous actions in [-1, 1] scaled to each robot's limits."
        ),
        epilog=(
            "Example:  sern serve-mlagents worlds/navigation.yaml --port 5004 --backend kinematic\n"
            "   then:  sern run worlds/navigation.yaml --backend unity"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("world", metavar="WORLD", help="world file (worlds/*.yaml) or a shipped world's name")
    p.add_argument(
        "--port",
        type=_port,
        default=MLAGENTS_EDITOR_PORT,
        metavar="P",
        help=f"the trainer's port (default {MLAGENTS_EDITOR_PORT}, where a trainer waits for the Editor)",
    )
    # What ML-Agents passes a Unity build it launches: a script that runs serve-mlagents can stand
    # where `unity.build` expects a build (the port as --mlagents-port; graphics flags ignored).
    p.add_argument("--mlagents-port", type=_port, dest="port", help=argparse.SUPPRESS)
    p.add_argument("-nographics", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-batchmode", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-logFile", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--host", default="localhost", metavar="HOST", help="the trainer's host (default localhost)")
    p.add_argument("--backend", default=None, metavar="NAME", help="the engine (default: the world's; not unity)")
    p.add_argument("--behaviour", default=None, metavar="NAME", help="behaviour name (default: the world's name)")
    p.add_argument(
        "--timeout-s",
        type=_timeout,
        default=60.0,
        metavar="S",
        help="how long to keep trying to reach the trainer (default 60)",
    )
    p.add_argument("--quiet", action="store_true", help="no log lines")
    p.set_defaults(handler=run)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {value}")
    return value


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_TIMEOUT_S:g} s, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        world = load_world(args.world)
    except WorldFileError as err:
        raise UsageError(str(err)) from None
    backend = args.backend or world.backend
    if backend == "unity":
        raise UsageError(
            f"{world.source}: backend unity: serve the world on an engine sern runs itself (--backend kinematic "
            "or pybullet); unity is what the other side connects with"
        )
    from sim_bridge.env import MultiRobotEnv
    from sim_bridge.mlagents.world_peer import PeerError, WorldPeer

    try:
        env = MultiRobotEnv(world, backend=backend)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="sern serve-mlagents: %(message)s", stream=sys.stderr)
    if args.logFile:  # as a Unity player does with -logFile
        logging.getLogger("sern").addHandler(logging.FileHandler(args.logFile))
    peer = WorldPeer(env, behaviour=args.behaviour)
    try:
        print(
            f"sern serve-mlagents: serving {world.name} ({backend}, {len(env.possible_agents)} agents, "
            f"behaviour {peer.behaviour}) to {args.host}:{args.port}",
            file=sys.stderr,
        )
        stats = peer.serve(args.port, args.timeout_s, host=args.host)
    except PeerError as err:
        raise JobFailed(str(err)) from None
    finally:
        env.close()
    print(
        f"sern serve-mlagents: trainer closed after {stats.steps} steps, {stats.resets} resets, "
        f"{stats.episodes} episodes"
        + (f", {stats.non_finite_actions} non-finite actions" if stats.non_finite_actions else ""),
        file=sys.stderr,
    )
    return 0
