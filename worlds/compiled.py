"""Serial and parallel numba builds of one kernel, and which to call for a batch size.

A ``prange`` kernel compiled with ``parallel=True`` wakes numba's thread pool on every call:
on one world (a PyBullet run, a ROS node) that costs more than the work, and on a busy
machine far more. Both builds come from the same Python source, so they compute the same
numbers; callers pick one by batch size with ``build_for``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from numba import njit

OPTIONS: dict[str, Any] = {"cache": True, "fastmath": True, "nogil": True}
"""What every sern kernel is compiled with."""
PARALLEL_FROM = 64
"""Worlds per batch from which the multi-threaded builds pay off (measured on 2 cores)."""


def _named(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` under another name: numba's on-disk cache keys on the name, and the
    serial and parallel builds must not share an entry."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    return copy


def serial_and_parallel(fn: Callable) -> tuple[Callable, Callable]:
    """``(serial, parallel)`` numba builds of the ``prange`` kernel ``fn``."""
    name = fn.__name__.lstrip("_")
    serial = njit(**OPTIONS)(_named(fn, f"{name}_serial"))
    parallel = njit(parallel=True, **OPTIONS)(_named(fn, f"{name}_parallel"))
    return serial, parallel


def build_for(batch: int, serial: Callable, parallel: Callable) -> Callable:
    """The build to call for a batch of ``batch`` worlds."""
    return parallel if batch >= PARALLEL_FROM else serial
