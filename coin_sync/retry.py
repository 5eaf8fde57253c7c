"""Retry policy (pure functions) and the one place that runs calls under `backoff`."""

from __future__ import annotations

import email.utils
import random
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import backoff

T = TypeVar("T")

# 429 from a gateway, 500 when Binance or MongoDB failed, 502-504 from a proxy.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# No single wait longer than this, whatever Retry-After says: Event.wait overflows on
# absurd values, and a pass that sleeps for a day is a hung pass.
MAX_SINGLE_WAIT = 3600.0


class BackendError(Exception):
    """One failed request to the backend, already classified."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        retry_after: float | None = None,
        may_still_run: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind  # "connection" | "timeout" | "http" | "body" | "rejected"
        self.status = status
        self.retry_after = retry_after
        # The request may have reached the backend, which may still be working on it:
        # re-sending a sync then would run the same symbol twice (duplicate klines).
        self.may_still_run = may_still_run

    @property
    def retryable(self) -> bool:
        return is_retryable(self.kind, self.status) and not self.may_still_run

    @property
    def means_backend_down(self) -> bool:
        """Worth asking /health whether the backend itself is gone."""
        return self.kind in ("connection", "timeout") or (self.status is not None and self.status >= 500)

    def __str__(self) -> str:
        return self.message


def is_retryable(kind: str, status: int | None) -> bool:
    if kind in ("connection", "timeout", "body"):
        return True
    if kind == "rejected":  # a deliberate success=false: the same answer again
        return False
    return status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(retry: int, first: float, cap: float, rand: float) -> float:
    """Delay before retry number `retry` (0-based): first * 2**retry, jittered to
    75-125 % so parallel workers do not retry in lockstep, capped at `cap`."""
    base: float = first * (2 ** min(retry, 62))
    return min(cap, base * (0.75 + 0.5 * rand))


@dataclass
class Outcome(Generic[T]):
    value: T
    attempts: int


class RetriesExhausted(Exception):
    def __init__(self, error: BackendError, attempts: int, cancelled: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts
        self.cancelled = cancelled  # the pass halted while this call still had retries left


OnRetry = Callable[[int, BackendError, float], None]


def call_with_retries(
    call: Callable[[], T],
    *,
    max_retries: int,
    first_delay: float,
    max_delay: float,
    halt: threading.Event,
    on_retry: OnRetry | None = None,
    rand: Callable[[], float] = random.random,
) -> Outcome[T]:
    """Run `call` until it succeeds, fails for good, or retries run out.

    Raises RetriesExhausted carrying the last BackendError and the attempt count.
    """
    attempts = 0
    last_error: BackendError | None = None

    def attempt() -> T:
        nonlocal attempts, last_error
        if last_error is not None and halt.is_set():
            raise last_error  # halted during the wait: no further request
        attempts += 1
        try:
            return call()
        except BackendError as error:
            last_error = error
            raise

    def waits() -> Generator[float, BackendError | None, None]:
        # backoff sleeps with time.sleep, which nothing can cut short; a shutdown or a
        # lost backend must not wait out a 60 s delay. So the real wait happens here,
        # on the halt event, and backoff is handed 0.
        error = yield 0.0
        retry = 0
        while True:
            assert error is not None
            delay = backoff_delay(retry, first_delay, max_delay, rand())
            if error.retry_after is not None:
                delay = max(delay, error.retry_after)
            delay = min(delay, MAX_SINGLE_WAIT)  # the one clamp, after Retry-After
            if on_retry is not None:
                on_retry(attempts, error, delay)
            halt.wait(delay)
            retry += 1
            error = yield 0.0

    def give_up(error: Exception) -> bool:
        return not (isinstance(error, BackendError) and error.retryable) or halt.is_set()

    runner = backoff.on_exception(
        waits,
        BackendError,
        max_tries=max_retries + 1,
        giveup=give_up,
        jitter=None,
        logger=None,
    )(attempt)
    try:
        return Outcome(runner(), attempts)
    except BackendError as error:
        cancelled = error.retryable and halt.is_set() and attempts <= max_retries
        raise RetriesExhausted(error, attempts, cancelled) from None
