"""Waiting for a healthy backend: `/health` with growing pauses, within a budget.
Shared by `run` (before any symbol) and `check` (its whole job)."""

from __future__ import annotations

import logging
from typing import Protocol

from coin_sync.clock import Clock
from coin_sync.stop import Stop

FIRST_PAUSE = 0.5
MAX_PAUSE = 5.0
MIN_PROBE_TIMEOUT = 0.5


class HealthProbe(Protocol):
    @property
    def shown_url(self) -> str: ...

    def health(self, timeout: float) -> tuple[bool, str]: ...


def wait_until_healthy(
    client: HealthProbe, budget: float, clock: Clock, stop: Stop, log: logging.Logger
) -> tuple[bool, str]:
    """(healthy, why not). Probes at once, then after 0.5, 1, 2, 4, 5, 5... s until
    healthy, the budget is spent, or the stop is set (then the last reason)."""
    deadline = clock.now() + budget
    pause = FIRST_PAUSE
    while True:
        remaining = deadline - clock.now()
        healthy, why = client.health(timeout=max(MIN_PROBE_TIMEOUT, min(MAX_PAUSE, remaining)))
        if healthy:
            log.info("Backend disponible: %s", client.shown_url)
            return True, ""
        remaining = deadline - clock.now()
        if remaining <= 0:
            return False, why
        wait = min(pause, remaining)
        log.warning("Backend no disponible (%s); nuevo intento en %.1f s", why, wait)
        if clock.sleep(stop, wait):
            return False, why
        pause = min(pause * 2, MAX_PAUSE)
