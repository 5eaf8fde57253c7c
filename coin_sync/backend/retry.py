"""Retry policy (pure functions and one value) and the one place that runs calls under
`backoff`. Every wait goes through the Clock and the Stop it is given, so a stop cuts a
60 s wait short and tests run the policy on virtual time."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import backoff

from coin_sync.backend.errors import BackendError
from coin_sync.clock import Clock
from coin_sync.config.settings import RetrySettings
from coin_sync.stop import Stop

T = TypeVar("T")

# No single wait longer than this, whatever Retry-After says: Condition.wait overflows on
# absurd values, and a pass that sleeps for a day is a hung pass.
MAX_SINGLE_WAIT = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    first_delay: float = 10.0
    max_delay: float = 60.0

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(settings.max_retries, settings.delay_seconds, settings.max_delay_seconds)

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The waits before retry 1, 2, 3... of one call (a sync in the pool, a read in
        call_with_retries): backoff.expo from first_delay, jittered to 75-125 % so parallel
        calls do not retry in lockstep, capped at max_delay."""
        expo = backoff.expo(factor=self.first_delay, max_value=self.max_delay)
        next(expo)  # backoff's generators start with a bare yield
        for base in expo:
            yield jittered(base, self.max_delay, rand())


def honouring_retry_after(wait: float, error: BackendError) -> float:
    """`wait`, never shorter than the error's Retry-After; the one clamp comes after it."""
    if error.retry_after is not None:
        wait = max(wait, error.retry_after)
    return min(wait, MAX_SINGLE_WAIT)


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


def jittered(base: float, cap: float, rand: float) -> float:
    """`base` spread to 75-125 % by `rand` (0..1), then capped."""
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
        self.cancelled = cancelled  # the pass stopped while this call still had retries left


OnRetry = Callable[[int, BackendError, float], None]


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    clock: Clock,
    stop: Stop,
    *,
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
        if last_error is not None and stop.is_set():
            raise last_error  # stopped during the wait: no further request
        attempts += 1
        try:
            return call()
        except BackendError as error:
            last_error = error
            raise

    def waits() -> Generator[float, BackendError | None, None]:
        # backoff sleeps with time.sleep, which nothing can cut short; the real wait
        # happens here, on the clock and the stop, and backoff is handed 0.
        error = yield 0.0
        sequence = policy.delays(rand)
        while True:
            assert error is not None
            delay = honouring_retry_after(next(sequence), error)
            if on_retry is not None:
                on_retry(attempts, error, delay)
            clock.sleep(stop, delay)
            error = yield 0.0

    def give_up(error: Exception) -> bool:
        return not (isinstance(error, BackendError) and error.retryable) or stop.is_set()

    runner = backoff.on_exception(
        waits,
        BackendError,
        max_tries=policy.max_retries + 1,
        giveup=give_up,
        jitter=None,
        logger=None,
    )(attempt)
    try:
        return Outcome(runner(), attempts)
    except BackendError as error:
        cancelled = error.retryable and stop.is_set() and attempts <= policy.max_retries
        raise RetriesExhausted(error, attempts, cancelled) from None
