"""After a failed attempt (pure): halt on the exchange's quota, re-queue overload without
counting it, back off on the rest, and never schedule past the pass budget."""

from __future__ import annotations

import pytest

from coin_sync.backend.errors import BackendError, ErrorKind
from coin_sync.backend.exchange import classify
from coin_sync.backend.retry import RetryPolicy
from coin_sync.sync.attempt import (
    BUDGET_NOTE,
    MAX_PAUSE,
    MIN_PAUSE,
    OVERLOAD_REQUEUES,
    Action,
    Job,
    decide,
    exchange_quota_reason,
    limiter_signal,
)
from coin_sync.sync.limiter import Signal

POLICY = RetryPolicy(max_retries=3, first_delay=10, max_delay=60)
URL = "url=URL('https://api.binance.com/api/v3/klines?symbol=BTCUSDT&interval=1m')"


def http(status: int, text: str = "x", retry_after: float | None = None) -> BackendError:
    """As the client raises it: a 500's text classified as what the exchange said."""
    exchange = classify(text) if status == 500 else None
    return BackendError(
        f"HTTP {status}: {text}", ErrorKind.HTTP, status=status, retry_after=retry_after, exchange=exchange
    )


@pytest.mark.parametrize(
    ("error", "halts"),
    [
        (http(500, f"429, message='Too Many Requests', {URL}"), True),
        (http(500, f'418, message="I\'m a Teapot", {URL}'), True),
        (http(500, '{"code":-1003,"msg":"Too much request weight used"}'), True),
        (http(500, f"500, message='Internal Server Error', {URL}"), False),
        (http(500, f"400, message='Bad Request', {URL}"), False),
        (http(500, "Binance rate limit"), False),
        (http(429, "Too Many Requests"), False),  # a gateway's own 429: overload, not the exchange
        (http(502, "418 I'm a Teapot"), False),
        (BackendError("error de conexión: Too Many Requests", ErrorKind.CONNECTION), False),
    ],
)
def test_exchange_quota_is_told_from_the_relayed_message(error: BackendError, halts: bool) -> None:
    assert (exchange_quota_reason(error) is not None) is halts
    if halts:
        assert decide(error, Job("BTCUSDT", 0, calls=1), POLICY, now=0, budget_end=None, latency=0.1).action is (
            Action.HALT
        )


@pytest.mark.parametrize(
    ("error", "signal"),
    [
        (http(429), Signal.OVERLOAD),
        (http(500), Signal.OVERLOAD),
        (http(502), Signal.OVERLOAD),
        (http(503), Signal.OVERLOAD),
        (http(504), Signal.OVERLOAD),
        (BackendError("timeout de lectura (1 s)", ErrorKind.TIMEOUT, may_still_run=True), Signal.OVERLOAD),
        (http(400), Signal.NEUTRAL),
        # An unknown symbol, relayed as a 500: says nothing of the backend's load.
        (
            http(500, "400, message='Bad Request', url=URL('https://api.binance.com/api/v3/klines?symbol=X')"),
            Signal.NEUTRAL,
        ),
        (BackendError("respuesta no JSON", ErrorKind.BODY, status=200), Signal.NEUTRAL),
        (BackendError("error de conexión: Connection refused", ErrorKind.CONNECTION), Signal.NEUTRAL),
    ],
)
def test_limiter_signal(error: BackendError, signal: Signal) -> None:
    assert limiter_signal(error) is signal


# Issue 18 changed this on purpose: 500 and 502 were re-queued as overload (a plain 500,
# a database error, was called 8 times with MAX_RETRIES=2); only 429 and 503 are now.
@pytest.mark.parametrize("status", [429, 503])
def test_overload_is_requeued_after_about_one_latency_and_not_counted(status: int) -> None:
    job = Job("BTCUSDT", 0, calls=1)
    decision = decide(http(status), job, POLICY, now=0, budget_end=None, latency=0.4, rand=lambda: 0.5)
    assert decision.action is Action.REQUEUE and decision.wait == pytest.approx(0.4)
    assert job.delays is None  # the backoff sequence is untouched


def test_the_pause_is_bounded_and_never_before_retry_after() -> None:
    job = Job("BTCUSDT", 0, calls=1)
    assert decide(http(503), job, POLICY, now=0, budget_end=None, latency=1e-6).wait == MIN_PAUSE
    assert decide(http(503), job, POLICY, now=0, budget_end=None, latency=300).wait == MAX_PAUSE
    assert decide(http(429, retry_after=7), job, POLICY, now=0, budget_end=None, latency=0.1).wait == 7


def test_requeues_are_bounded_then_a_503_is_a_counted_attempt() -> None:
    job = Job("BTCUSDT", 0, calls=OVERLOAD_REQUEUES + 1, requeues=OVERLOAD_REQUEUES)
    decision = decide(http(503), job, POLICY, now=0, budget_end=None, latency=0.1, rand=lambda: 0.5)
    assert decision.action is Action.RETRY and decision.wait == 10
    job.calls += 1
    assert decide(http(503), job, POLICY, now=0, budget_end=None, latency=0.1, rand=lambda: 0.5).wait == 20


@pytest.mark.parametrize("status", [500, 502])
def test_a_plain_500_or_502_is_a_counted_attempt_at_once(status: int) -> None:
    job = Job("BTCUSDT", 0, calls=1)
    decision = decide(http(status), job, POLICY, now=0, budget_end=None, latency=0.1, rand=lambda: 0.5)
    assert decision.action is Action.RETRY and decision.wait == 10 and job.attempts == 1


def test_counted_retries_follow_the_backoff_sequence_then_stop() -> None:
    job = Job("BTCUSDT", 0)
    waits = []
    for _ in range(POLICY.max_retries + 1):
        job.calls += 1
        body = BackendError("respuesta no JSON", ErrorKind.BODY, status=200)
        decision = decide(body, job, POLICY, now=0, budget_end=None, latency=None, rand=lambda: 0.5)
        waits.append((decision.action, decision.wait))
    assert waits == [(Action.RETRY, 10), (Action.RETRY, 20), (Action.RETRY, 40), (Action.FAIL, 0)]


def test_permanent_and_ambiguous_errors_fail_at_once() -> None:
    job = Job("BTCUSDT", 0, calls=1)
    assert decide(http(400), job, POLICY, now=0, budget_end=None, latency=None).action is Action.FAIL
    timeout = BackendError("timeout de lectura", ErrorKind.TIMEOUT, may_still_run=True)
    assert decide(timeout, job, POLICY, now=0, budget_end=None, latency=None).action is Action.FAIL


def test_no_retry_is_scheduled_past_the_budget() -> None:
    body = BackendError("respuesta no JSON", ErrorKind.BODY, status=200)
    fits = decide(body, Job("A", 0, calls=1), POLICY, now=30, budget_end=45, latency=None, rand=lambda: 0.5)
    assert fits.action is Action.RETRY and fits.wait == 10
    late = decide(body, Job("A", 0, calls=1), POLICY, now=40, budget_end=45, latency=None, rand=lambda: 0.5)
    assert late.action is Action.FAIL and late.note == BUDGET_NOTE
    assert "se reintentará en la próxima pasada" in BUDGET_NOTE
    # Retry-After counts: a 429 asking for 30 s does not fit in 5.
    overload = decide(http(429, retry_after=30), Job("A", 0, calls=1), POLICY, now=40, budget_end=45, latency=0.1)
    assert overload.action is Action.FAIL and overload.note == BUDGET_NOTE
