"""Retry policy: classification, Retry-After, delays, and the backoff-driven loop."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from coin_sync.backend.errors import BackendError, ErrorKind
from coin_sync.backend.retry import RetriesExhausted, RetryPolicy, call_with_retries, parse_retry_after
from coin_sync.clock import RealClock
from coin_sync.stop import Stop
from virtual_clock import VirtualClock


@pytest.mark.parametrize(
    ("kind", "status", "retry"),
    [
        (ErrorKind.CONNECTION, None, True),
        (ErrorKind.TIMEOUT, None, True),
        (ErrorKind.BODY, 200, True),
        (ErrorKind.REJECTED, 200, False),
        (ErrorKind.HTTP, 429, True),
        (ErrorKind.HTTP, 500, True),
        (ErrorKind.HTTP, 502, True),
        (ErrorKind.HTTP, 503, True),
        (ErrorKind.HTTP, 504, True),
        (ErrorKind.HTTP, 400, False),
        (ErrorKind.HTTP, 401, False),
        (ErrorKind.HTTP, 404, False),
        (ErrorKind.HTTP, 422, False),
        (ErrorKind.HTTP, 501, False),
    ],
)
def test_classification(kind: ErrorKind, status: int | None, retry: bool) -> None:
    assert BackendError("x", kind, status=status).retryable is retry


def test_a_request_that_may_still_run_is_never_retried() -> None:
    error = BackendError("timeout de lectura (1 s)", ErrorKind.TIMEOUT, may_still_run=True)
    assert not error.retryable
    assert str(error).endswith("(el backend puede seguir sincronizándolo: no se reintenta en esta pasada)")


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def _nth_delay(policy: RetryPolicy, n: int, rand: float) -> float:
    """The wait before retry n+1 (0-based) of the one backoff sequence."""
    return next(itertools.islice(policy.delays(lambda: rand), n, None))


def test_delays_double_with_jitter_and_cap() -> None:
    assert [_nth_delay(RetryPolicy(3, 10, 1000), n, 0.5) for n in range(4)] == [10, 20, 40, 80]
    assert _nth_delay(RetryPolicy(3, 10, 1000), 0, 0.0) == 7.5
    assert _nth_delay(RetryPolicy(3, 10, 1000), 0, 0.999999) == pytest.approx(12.5, abs=1e-3)
    assert _nth_delay(RetryPolicy(3, 10, 60), 10, 0.5) == 60
    assert _nth_delay(RetryPolicy(3, 10, 60), 500, 0.5) == 60  # no overflow on huge retry counts
    assert _nth_delay(RetryPolicy(3, 0, 60), 3, 0.5) == 0


def _flaky(failures: list[BackendError], clock: VirtualClock) -> tuple[list[float], Callable[[], str]]:
    calls: list[float] = []

    def call() -> str:
        calls.append(clock.now())
        if failures:
            raise failures.pop(0)
        return "done"

    return calls, call


def test_retries_until_success_and_counts_attempts() -> None:
    clock = VirtualClock()
    calls, call = _flaky([BackendError("x", ErrorKind.HTTP, status=500)] * 2, clock)
    seen: list[tuple[int, float]] = []
    out = call_with_retries(
        call, RetryPolicy(3, 10, 60), clock, Stop(), on_retry=lambda n, e, d: seen.append((n, d)), rand=lambda: 0.5
    )
    assert (out.value, out.attempts, len(calls)) == ("done", 3, 3)
    assert seen == [(1, 10), (2, 20)]
    assert [b - a for a, b in itertools.pairwise(calls)] == [10, 20]  # waited on the clock given


def test_gives_up_after_max_retries() -> None:
    clock = VirtualClock()
    calls, call = _flaky([BackendError("x", ErrorKind.CONNECTION)] * 10, clock)
    with pytest.raises(RetriesExhausted) as err:
        call_with_retries(call, RetryPolicy(2, 10, 60), clock, Stop(), rand=lambda: 0.5)
    assert err.value.attempts == 3 and len(calls) == 3 and not err.value.cancelled
    assert clock.sleeps == [10, 20]


def test_permanent_error_is_not_retried() -> None:
    clock = VirtualClock()
    _, call = _flaky([BackendError("HTTP 400: bad", ErrorKind.HTTP, status=400)], clock)
    with pytest.raises(RetriesExhausted) as err:
        call_with_retries(call, RetryPolicy(3, 10, 60), clock, Stop())
    assert err.value.attempts == 1 and err.value.error.status == 400
    assert clock.sleeps == []


def test_retry_after_is_a_minimum_and_an_hour_is_the_most() -> None:
    clock = VirtualClock()
    errors = [
        BackendError("429", ErrorKind.HTTP, status=429, retry_after=40),
        BackendError("429", ErrorKind.HTTP, status=429, retry_after=1e12),
    ]
    _, call = _flaky(errors, clock)
    call_with_retries(call, RetryPolicy(2, 0.01, 0.01), clock, Stop(), rand=lambda: 0.5)
    assert clock.sleeps == [40, 3600]


class _StopDuringWait(VirtualClock):
    """Someone stops the pass while the call waits for its retry."""

    def sleep(self, stop: Stop, seconds: float) -> bool:
        stop.request()
        return super().sleep(stop, seconds)


def test_a_stop_during_the_wait_makes_no_further_attempt() -> None:
    clock = _StopDuringWait()
    calls, call = _flaky([BackendError("x", ErrorKind.HTTP, status=503)] * 5, clock)
    with pytest.raises(RetriesExhausted) as err:
        call_with_retries(call, RetryPolicy(5, 30, 30), clock, Stop())
    assert len(calls) == 1 and err.value.cancelled and err.value.attempts == 1


def test_a_stop_cuts_a_real_wait_short() -> None:
    stop = Stop()
    woke: list[bool] = []
    sleeper = threading.Thread(target=lambda: woke.append(RealClock().sleep(stop, 3600)))
    sleeper.start()
    stop.request()
    sleeper.join(30)
    assert not sleeper.is_alive() and woke == [True]
