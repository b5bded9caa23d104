"""Threads that keep slow work off the paths commands take.

``LatestWorker``: one thread per image stream that encodes (or decodes) the newest frame
while the executor goes on forwarding commands and timing probes; a frame that arrives
while another waits replaces it (newest frame wins: an old picture is worth nothing once a
newer one exists), so the queue is one frame deep whatever the load.

``DelayedCalls``: one thread that runs calls at given delays, in time order (the redundant
copies of best-effort messages, spread out so that one burst of loss cannot take all).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Any


class LatestWorker:
    """Runs ``work(item)`` on its own thread for the newest submitted item."""

    def __init__(
        self,
        name: str,
        work: Callable[[Any], None],
        on_superseded: Callable[[], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ):
        self._work = work
        self._on_superseded = on_superseded
        self._on_error = on_error
        self._item: Any = None
        self._pending = False
        self._stop = False
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)
        self.thread.start()

    def submit(self, item: Any) -> None:
        """Hand over an item; one still waiting is dropped for it."""
        with self._cond:
            superseded = self._pending
            self._item, self._pending = item, True
            self._cond.notify()
        if superseded and self._on_superseded is not None:
            self._on_superseded()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                item, self._item, self._pending = self._item, None, False
            _guarded(self._work, (item,), self._on_error)

    def stop(self, timeout_s: float = 1.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout_s)


class DelayedCalls:
    """A thread that runs calls at given delays, in time order."""

    def __init__(self, name: str = "site_link_copies", on_error: Callable[[Exception], None] | None = None):
        self._on_error = on_error
        self._queue: list = []
        self._cond = threading.Condition()
        self._stop = False
        self._n = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    def schedule(self, delay_s: float, fn: Callable, *args) -> None:
        with self._cond:
            self._n += 1
            heapq.heappush(self._queue, (time.monotonic() + delay_s, self._n, fn, args))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = None if not self._queue else max(0.0, self._queue[0][0] - time.monotonic())
                    self._cond.wait(timeout=wait)
                if self._stop:
                    return
                _, _, fn, args = heapq.heappop(self._queue)
            _guarded(fn, args, self._on_error)

    def stop(self, timeout_s: float = 1.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout_s)


def _guarded(fn: Callable, args: tuple, on_error: Callable[[Exception], None] | None) -> None:
    """A failing call is reported, and the thread goes on: one bad frame must not stop a stream."""
    try:
        fn(*args)
    except Exception as err:
        if on_error is None:
            raise
        on_error(err)
