"""Time, passed in: the pass's policy reads and waits through a Clock, so tests run it on
virtual time (tests/virtual_clock.py) while the HTTP stays real."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from coin_sync.stop import Stop


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    def wall(self) -> datetime:
        """The current UTC time, for timestamps people read."""

    def sleep(self, stop: Stop, seconds: float) -> bool:
        """Wait `seconds` or until `stop`; True when stopped."""

    def wait_for(self, stop: Stop, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until predicate() (re-checked whenever `stop` is notified) or timeout."""


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, stop: Stop, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds))

    def wait_for(self, stop: Stop, predicate: Callable[[], bool], timeout: float | None) -> bool:
        return stop.wait_for(predicate, None if timeout is None else max(0.0, timeout))
