"""VirtualClock: a coin_sync.clock.Clock on virtual time, for testing time policy fast.

Waiting never sleeps: it moves virtual time on. A test schedules what happens "later"
with `at(when, action)` / `after(delay, action)`; a wait jumps from one scheduled action
to the next, runs it, and re-checks its predicate, until the predicate holds or the
timeout is reached. So a 60 s interval or a 20 s grace costs nothing, and every time the
code reads is exact: assert `clock.now() == 3.25`, not "about 3 s".

    clock = VirtualClock()
    clock.after(2.0, stop.request)        # the stop comes at t=2
    assert clock.sleep(stop, 60) is True  # returns at once...
    assert clock.now() == 2.0             # ...at virtual t=2

Real threads (a pass's workers doing real HTTP against the fake backend) can also be
what a wait is waiting for: with `real_slice` > 0, a wait_for() with nothing scheduled
first gives them up to that many REAL seconds to make its predicate true, and only then
jumps to its timeout (with timeout None it waits for them). sleep() never waits for real
time: a 60 s retry wait on a worker costs nothing.

The API, all of it:
- now() -> float: virtual monotonic seconds, starting at `start` (default 0.0).
- wall() -> datetime: `wall_start` (default 2026-01-01 00:00 UTC) + elapsed virtual time.
- sleep(stop, seconds) -> bool: records `seconds` in `sleeps`, then waits as wait_for(stop,
  stop.is_set, seconds) does, without the real slice; True when stopped.
- wait_for(stop, predicate, timeout) -> bool: as above; predicate()'s final value.
  With timeout None, no real slice and nothing scheduled while the predicate is false,
  it raises AssertionError: the code under test would wait forever.
- at(when, action) / after(delay, action): run action() when virtual time reaches
  `when` (or now + delay). Actions due at the same time run in the order scheduled;
  one due in the past runs at the next wait. An action may schedule others.
- advance(seconds): move time on from outside a wait (a sync that "costs" time).

Actions run in the thread that is waiting when their time comes. Time never goes back.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from coin_sync.stop import Stop

WALL_START = datetime(2026, 1, 1, tzinfo=UTC)


class VirtualClock:
    def __init__(self, start: float = 0.0, wall_start: datetime = WALL_START, real_slice: float = 0.0) -> None:
        self._start = start
        self._now = start
        self._wall_start = wall_start
        self.real_slice = real_slice
        self.sleeps: list[float] = []  # every sleep asked for, in order
        self._lock = threading.RLock()
        self._order = itertools.count()  # ties broken by the order scheduled
        self._actions: list[tuple[float, int, Callable[[], object]]] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def at(self, when: float, action: Callable[[], object]) -> None:
        with self._lock:
            heapq.heappush(self._actions, (when, next(self._order), action))

    def after(self, delay: float, action: Callable[[], object]) -> None:
        self.at(self._now + delay, action)

    def sleep(self, stop: Stop, seconds: float) -> bool:
        with self._lock:
            self.sleeps.append(seconds)
        return self._wait(stop, stop.is_set, seconds, real_slice=0.0)

    def wait_for(self, stop: Stop, predicate: Callable[[], bool], timeout: float | None) -> bool:
        return self._wait(stop, predicate, timeout, self.real_slice)

    def _wait(self, stop: Stop, predicate: Callable[[], bool], timeout: float | None, real_slice: float) -> bool:
        deadline = None if timeout is None else self._now + max(0.0, timeout)
        while not predicate():
            with self._lock:
                due = bool(self._actions) and (deadline is None or self._actions[0][0] <= deadline)
                action = heapq.heappop(self._actions) if due else None
                if action is not None:
                    self._now = max(self._now, action[0])
            if action is not None:
                action[2]()
                continue
            if real_slice > 0:
                if stop.wait_for(predicate, None if deadline is None else real_slice):
                    return True
            elif deadline is None:
                raise AssertionError(f"t={self._now:g}: wait with no timeout and nothing scheduled")
            with self._lock:
                self._now = max(self._now, deadline if deadline is not None else self._now)
            return predicate()
        return True
