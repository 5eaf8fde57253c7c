"""What to do after one sync attempt failed: pure policy, no I/O.

- The exchange rate-limited or banned the backend: halt the pass (our retries must never
  be what keeps a ban alive).
- Explicit overload (429, 503: "not now, I am full"): re-queue after a short pause
  scaled to the observed latency, never before Retry-After, NOT counted as a failed
  attempt; at most OVERLOAD_REQUEUES times per symbol, so a symbol answering 503 forever
  still ends.
- Any other retryable error (a plain 500 is an error, as are 502 and 504): a counted
  attempt, retried after the next wait of the backoff sequence (RetryPolicy.delays,
  backoff.expo), so MAX_RETRIES=2 means at most 3 calls.
- No retry is scheduled whose wait would end past the pass budget: the symbol fails now
  and the next pass retries it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from coin_sync.backend.errors import BackendError, ErrorKind
from coin_sync.backend.exchange import Verdict as ExchangeVerdict
from coin_sync.backend.retry import RetryPolicy, honouring_retry_after
from coin_sync.sync.lanes import REQUEST_WEIGHT, Lane
from coin_sync.sync.limiter import Signal

# What the limiter reads as load (it backs off); only REQUEUE_STATUSES skip the count.
OVERLOAD_STATUSES = frozenset({429, 500, 502, 503})
REQUEUE_STATUSES = frozenset({429, 503})
OVERLOAD_REQUEUES = 5
MIN_PAUSE = 0.05
MAX_PAUSE = 5.0
DEFAULT_PAUSE = 0.2  # before any latency was seen
BUDGET_NOTE = " (sin tiempo en el presupuesto de la pasada: se reintentará en la próxima pasada)"


def exchange_quota_reason(error: BackendError) -> str | None:
    """Why the exchange will not serve the backend now (its rate limit, or an IP ban), as
    coin_sync.backend.exchange read the relayed 500; else None."""
    exchange = error.exchange
    if exchange is None:
        return None
    if exchange.verdict is ExchangeVerdict.BANNED:
        return f"el exchange bloqueó la IP del backend ({exchange.reason})"
    if exchange.verdict is ExchangeVerdict.RATE_LIMITED:
        return f"el exchange limitó al backend ({exchange.reason})"
    return None


def limiter_signal(error: BackendError) -> Signal:
    """What a failed call says about the backend's load."""
    if error.rejected_by_exchange:  # "this symbol does not exist" says nothing of load
        return Signal.NEUTRAL
    if error.kind is ErrorKind.TIMEOUT or error.status in OVERLOAD_STATUSES or error.status == 504:
        return Signal.OVERLOAD
    return Signal.NEUTRAL


class Action(Enum):
    REQUEUE = "requeue"  # overload: again after a pause, not a failed attempt
    RETRY = "retry"  # a failed attempt, retried after a backoff wait
    FAIL = "fail"  # no more attempts in this pass
    HALT = "halt"  # the exchange's quota: stop the pass


@dataclass(frozen=True)
class Decision:
    action: Action
    wait: float = 0.0
    note: str = ""  # appended to the failure line
    reason: str = ""  # HALT: why


@dataclass
class Job:
    """One symbol's way through a pass."""

    symbol: str
    rank: int  # dispatch order: lower first
    lane: Lane = Lane.CATCH_UP
    requests: int = 1  # exchange requests its sync should cost (coin_sync.sync.lanes)
    left: bool = False  # left to the backend at the budget: the pass no longer waits for it
    deferred: bool = False  # a backfill still queued when the pass budget ran out: the next pass sends it
    calls: int = 0  # requests sent
    requeues: int = 0  # of those, rejected for overload (not failed attempts)
    began: float | None = None
    error: BackendError | None = None  # the last failure
    delays: Iterator[float] | None = field(default=None, repr=False)

    @property
    def weight(self) -> int:
        """The exchange weight its sync should cost."""
        return self.requests * REQUEST_WEIGHT

    @property
    def attempts(self) -> int:
        return self.calls - self.requeues

    @property
    def failed_attempts(self) -> bool:
        """For a job back in the queue: a counted attempt failed (not only overload)."""
        return self.attempts > 0


def overload_pause(latency: float | None, rand: float) -> float:
    """A pause of about one typical latency (jittered 50-150 %), within bounds."""
    base = DEFAULT_PAUSE if latency is None else latency
    return min(MAX_PAUSE, max(MIN_PAUSE, base * (0.5 + rand)))


def decide(
    error: BackendError,
    job: Job,
    policy: RetryPolicy,
    *,
    now: float,
    budget_end: float | None,
    latency: float | None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """After `job`'s last call failed with `error` (job.calls already counts it)."""
    reason = exchange_quota_reason(error)
    if reason is not None:
        return Decision(Action.HALT, reason=reason)
    overload = error.retryable and error.status in REQUEUE_STATUSES and job.requeues < OVERLOAD_REQUEUES
    if overload:
        wait = overload_pause(latency, rand())
    elif not error.retryable or job.attempts > policy.max_retries:
        return Decision(Action.FAIL)
    else:
        if job.delays is None:
            job.delays = policy.delays(rand)
        wait = next(job.delays)
    wait = honouring_retry_after(wait, error)
    if budget_end is not None and now + wait > budget_end:
        return Decision(Action.FAIL, note=BUDGET_NOTE)
    return Decision(Action.REQUEUE if overload else Action.RETRY, wait)
