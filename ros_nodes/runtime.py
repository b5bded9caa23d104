"""Running a node as a console script: init, build, spin, clean shutdown, exit codes.

SIGINT and SIGTERM end the spin through Python (not rclpy's own handlers), so a node
still has a live context in ``on_shutdown`` and can, for instance, command its robots to
stop before it exits. Bad parameters or a bad world file print one message and exit 2.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ros_nodes.params import ParameterError
from worlds import WorldFileError

EXIT_USAGE = 2


class _Stop(Exception):
    pass


_stop_requested = {"signal": None, "exit_code": 0}


def _request_stop(signum, frame):
    # Only a flag: raising here could land inside a C++ callback dispatch (events executor).
    _stop_requested["signal"] = signum


def request_stop(exit_code: int = 0) -> None:
    """Ask the running node's spin to end (as SIGINT would), e.g. when its job is done, or
    with a non-zero ``exit_code`` after a failure it has reported."""
    _stop_requested["signal"] = signal.SIGINT
    _stop_requested["exit_code"] = exit_code


def make_executor():
    """The fastest executor this rclpy has: the events executor (Jazzy and later) cuts
    per-message overhead several times over; older releases get the single-threaded one."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return SingleThreadedExecutor()
    return EventsExecutor()


def run_node(
    factory: Callable[[], Node], args: list[str] | None = None, name: str = "node", executor: Callable | None = None
) -> int:
    """Build the node with ``factory`` and spin it until SIGINT/SIGTERM with ``executor()``
    (default: ``make_executor``); returns an exit code."""
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as err:
        reason = str(err).split("Error:")[0].strip().removeprefix("failed to initialize rcl: ")
        print(f"[{name}] error: bad command-line ROS arguments: {reason}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    _stop_requested["signal"] = None
    _stop_requested["exit_code"] = 0
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    code = 0
    try:
        try:
            node = factory()
        except (ParameterError, WorldFileError) as err:
            print(f"[{name}] error: {err}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        executor = (executor or make_executor)()
        executor.add_node(node)
        try:
            while _stop_requested["signal"] is None:
                executor.spin_once(timeout_sec=0.1)
        except (_Stop, KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            on_shutdown = getattr(node, "on_shutdown", None)
            if on_shutdown is not None:
                try:
                    on_shutdown()
                except Exception as err:
                    print(f"[{name}] error while stopping: {err}", file=sys.stderr, flush=True)
            executor.shutdown(timeout_sec=1.0)
        code = _stop_requested["exit_code"]
    except _Stop:
        code = 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def main_for(
    factory: Callable[[], Node], name: str, executor: Callable | None = None
) -> Callable[[list[str] | None], None]:
    """A console-script ``main`` for a node class (``executor``: see ``run_node``)."""

    def main(args: list[str] | None = None) -> None:
        sys.exit(run_node(factory, args, name, executor))

    return main
