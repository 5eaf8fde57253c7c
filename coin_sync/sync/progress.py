"""Progress of a long pass, at INFO: between `Sincronizando N símbolos` and FIN a line
`Progreso: done/total ...` every EVERY_SECONDS or every STEP of the symbols, whichever
comes first, once the pool has run FIRST_AFTER seconds (a short pass stays quiet).

The pool asks the reporter after every change and at the time the reporter names, on the
pass's Clock: the policy runs on virtual time in tests."""

from __future__ import annotations

import logging
import math

from coin_sync.clock import Clock
from coin_sync.sync.pool_api import PoolProgress

FIRST_AFTER = 5.0
EVERY_SECONDS = 10.0
STEP = 0.10


def line_due(elapsed: float, since_line: float | None, done_since_line: int, total: int) -> bool:
    """Whether a progress line is due. elapsed: seconds since the pool started;
    since_line: seconds since the last line (None before the first); done_since_line:
    symbols finished since then."""
    if elapsed < FIRST_AFTER:
        return False
    if since_line is None:
        return True
    return since_line >= EVERY_SECONDS or done_since_line >= max(1, math.ceil(total * STEP))


class ProgressReporter:
    """Called by the pool with where it stands; returns when it wants to be asked again."""

    def __init__(self, clock: Clock, log: logging.Logger) -> None:
        self._clock = clock
        self._log = log
        self._started: float | None = None
        self._last: tuple[float, int] | None = None  # (when, done) of the last line

    def __call__(self, progress: PoolProgress) -> float | None:
        now = self._clock.now()
        if self._started is None:
            self._started = now
        if progress.done >= progress.total:
            return None  # FIN says the rest
        since, done_since = None, progress.done
        if self._last is not None:
            since, done_since = now - self._last[0], progress.done - self._last[1]
        if line_due(now - self._started, since, done_since, progress.total):
            self._log_line(progress, now - self._started)
            self._last = (now, progress.done)
        return self._started + FIRST_AFTER if self._last is None else self._last[0] + EVERY_SECONDS

    def _log_line(self, p: PoolProgress, elapsed: float) -> None:
        self._log.info(
            "Progreso: %d/%d símbolos (%d %%), %d en curso, %d fallidos, %d en espera de reintento, %.0f s",
            p.done,
            p.total,
            100 * p.done // p.total,
            p.in_flight,
            p.failed,
            p.deferred,
            elapsed,
        )
