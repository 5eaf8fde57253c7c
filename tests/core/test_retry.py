"""Retry policy: classification, Retry-After, delays, and the backoff-driven loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from coin_sync.retry import (
    BackendError,
    RetriesExhausted,
    backoff_delay,
    call_with_retries,
    is_retryable,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("kind", "status", "retry"),
    [
        ("connection", None, True),
        ("timeout", None, True),
        ("body", 200, True),
        ("http", 429, True),
        ("http", 500, True),
        ("http", 502, True),
        ("http", 503, True),
        ("http", 504, True),
        ("http", 400, False),
        ("http", 401, False),
        ("http", 404, False),
        ("http", 422, False),
        ("http", 501, False),
    ],
)
def test_classification(kind: str, status: int | None, retry: bool) -> None:
    assert is_retryable(kind, status) is retry


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_delays_double_with_jitter_and_cap() -> None:
    assert [backoff_delay(n, 10, 1000, 0.5) for n in range(4)] == [10, 20, 40, 80]
    assert backoff_delay(0, 10, 1000, 0.0) == 7.5
    assert backoff_delay(0, 10, 1000, 0.999999) == pytest.approx(12.5, abs=1e-3)
    assert backoff_delay(10, 10, 60, 0.5) == 60
    assert backoff_delay(500, 10, 60, 0.5) == 60  # no overflow on huge retry counts
    assert backoff_delay(3, 0, 60, 0.5) == 0


def _flaky(failures: list[BackendError]) -> tuple[list[float], Callable[[], str]]:
    calls: list[float] = []

    def call() -> str:
        calls.append(time.monotonic())
        if failures:
            raise failures.pop(0)
        return "done"

    return calls, call


def test_retries_until_success_and_counts_attempts() -> None:
    calls, call = _flaky([BackendError("x", kind="http", status=500)] * 2)
    seen: list[tuple[int, float]] = []
    out = call_with_retries(
        call,
        max_retries=3,
        first_delay=0.01,
        max_delay=0.02,
        halt=threading.Event(),
        on_retry=lambda n, e, d: seen.append((n, d)),
        rand=lambda: 0.5,
    )
    assert (out.value, out.attempts, len(calls)) == ("done", 3, 3)
    assert seen == [(1, 0.01), (2, 0.02)]


def test_gives_up_after_max_retries() -> None:
    calls, call = _flaky([BackendError("x", kind="connection")] * 10)
    with pytest.raises(RetriesExhausted) as err:
        call_with_retries(call, max_retries=2, first_delay=0, max_delay=0, halt=threading.Event())
    assert err.value.attempts == 3 and len(calls) == 3 and not err.value.cancelled


def test_permanent_error_is_not_retried() -> None:
    _, call = _flaky([BackendError("HTTP 400: bad", kind="http", status=400)])
    with pytest.raises(RetriesExhausted) as err:
        call_with_retries(call, max_retries=3, first_delay=0, max_delay=0, halt=threading.Event())
    assert err.value.attempts == 1 and err.value.error.status == 400


def test_retry_after_is_a_minimum() -> None:
    calls, call = _flaky([BackendError("429", kind="http", status=429, retry_after=0.4)])
    call_with_retries(call, max_retries=1, first_delay=0.01, max_delay=0.01, halt=threading.Event())
    assert calls[1] - calls[0] >= 0.4


def test_halt_cuts_a_long_wait_short_and_makes_no_further_attempt() -> None:
    calls, call = _flaky([BackendError("x", kind="http", status=503)] * 5)
    halt = threading.Event()
    threading.Timer(0.2, halt.set).start()
    began = time.monotonic()
    with pytest.raises(RetriesExhausted) as err:
        call_with_retries(call, max_retries=5, first_delay=30, max_delay=30, halt=halt)
    assert time.monotonic() - began < 5  # not the 30 s delay
    assert len(calls) == 1 and err.value.cancelled
