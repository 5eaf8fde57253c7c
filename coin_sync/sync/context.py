"""What a pass talks to and waits on, handed to every step of the pass."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from coin_sync.backend.client import BackendClient
from coin_sync.backend.errors import BackendError
from coin_sync.backend.health import wait_until_healthy
from coin_sync.backend.retry import RetryPolicy
from coin_sync.clock import Clock
from coin_sync.config.settings import Settings
from coin_sync.stop import Stop
from coin_sync.sync.state import MemoryStateStore, StateStore


@dataclass
class PassContext:
    """What a pass talks to and waits on; tests swap the clock."""

    settings: Settings
    client: BackendClient
    log: logging.Logger
    stop: Stop
    clock: Clock
    state: StateStore = field(default_factory=MemoryStateStore)  # the CLI gives STATE_FILE's

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy.from_settings(self.settings.retry)

    def log_retry(self, what: str, attempt: int, error: BackendError, delay: float) -> None:
        self.log.warning(
            "↻ %s: intento %d de %d falló (%s); reintento en %.1f s",
            what,
            attempt,
            self.policy.max_retries + 1,
            error,
            delay,
        )

    def backend_ready(self) -> bool:
        """Does /health answer healthy within BACKEND_WAIT_SECONDS? If not, one ERROR says why."""
        wait = self.settings.backend.wait_seconds
        healthy, why = wait_until_healthy(self.client, wait, self.clock, self.stop, self.log)
        if not healthy:
            self.log.error("El backend no está disponible tras %.0f s: %s", wait, why)
        return healthy
