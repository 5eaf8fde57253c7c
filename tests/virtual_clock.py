"""A virtual clock for the policy tests: time moves only when the code under test waits.

- sleep(stop, s) records s and jumps the clock s ahead at once (unless stopped);
- wait_for(stop, predicate, timeout) gives the real threads (HTTP in flight) up to
  `real_slice` real seconds to make predicate true; if they do not, the clock jumps to
  the timeout. With timeout None it simply waits for the predicate.
So a 60 s retry wait costs nothing, and a grace period expires only when nothing that
really runs finishes within the slice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from coin_sync.stop import Stop

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class VirtualClock:
    def __init__(self, start: float = 1000.0, real_slice: float = 1.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.real_slice = real_slice
        self.sleeps: list[float] = []  # every sleep asked for, in order

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now())

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def sleep(self, stop: Stop, seconds: float) -> bool:
        with self._lock:
            self.sleeps.append(seconds)
        if stop.is_set():
            return True
        self.advance(seconds)
        return stop.is_set()

    def wait_for(self, stop: Stop, predicate: Callable[[], bool], timeout: float | None) -> bool:
        if timeout is None:
            return stop.wait_for(predicate, None)
        if stop.wait_for(predicate, min(max(0.0, timeout), self.real_slice)):
            return True
        self.advance(timeout)
        return predicate()
