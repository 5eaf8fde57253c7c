"""What a pass talks to and waits on, handed to every step of the pass."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from coin_sync.backend.client import BackendClient
from coin_sync.backend.errors import BackendError
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
