"""How many syncs may be in flight: a fixed number, or an adaptive (AIMD) limit.

The adaptive limit works as TCP congestion control and Netflix's concurrency-limits do:

- slow start: from INITIAL_LIMIT, +1/2 per success (x1.5 every round trip: doubling
  would overshoot a hard cap by as much as the cap itself) until the first overload;
- multiplicative decrease on overload (a 429/500/502/503 rejection, a timeout, or
  latency inflated well above its long-run level): the new limit is BETA times what was
  in flight at that rejection, at most once per latency window. A window is told by the
  dispatch order, not by the clock: a rejection of a call sent before the last decrease
  belongs to the window already answered for and is ignored;
- additive increase afterwards: +1 per limit's worth of successes (one per round
  trip; calls sent before the decrease do not count), NEAR_CEILING_SLOWDOWN times slower once the limit
  is back near where the last overload happened;
- latency guard: a short and a long exponentially weighted mean of log(latency) (the
  median of a lognormal, which one slow call barely moves); short above long by
  INFLATION times means a queue is building: decrease; by HOLD times: stop growing.

Growth only happens while the limit is in use (at least half of it in flight when the
call was sent or when it came back), so an idle tail of retries cannot inflate it.

Long calls: growth comes from completions, so calls that take long (a backlog of
minutes, a slow first sync) would hold the limit at its start value while nothing
completes. A call in flight longer than LONG_CALL_FACTOR times the typical latency (at
least LONG_CALL_FLOOR) gives its slot back: the limit grows by one, once per such call,
and its latency, when it ends, is no sample (it says how much work it was, not how
loaded the backend is).
Every method is thread-safe; time comes from the injected Clock, so the policy runs in
tests on virtual time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from enum import Enum

from coin_sync.clock import Clock

INITIAL_LIMIT = 4
BETA = 0.9
INFLATION = 2.0
HOLD = 1.5
SHORT_WEIGHT = 0.05
LONG_WEIGHT = 0.005
WARM_UP_SAMPLES = 50
NEAR_CEILING_SLOWDOWN = 8
SLOW_START_STEP = 0.5
LONG_CALL_FLOOR = 1.0  # seconds: no call shorter than this counts as long
LONG_CALL_FACTOR = 8.0  # times the typical latency


class Signal(Enum):
    OK = "ok"  # answered in time: a latency sample, and room to grow
    OVERLOAD = "overload"  # the backend (or a proxy) could not take it: back off
    NEUTRAL = "neutral"  # an answer that says nothing about load (400, bad body)


@dataclass(frozen=True)
class Ticket:
    """One call in flight: when it was sent and in which order."""

    seq: int
    started: float
    busy: bool  # sent with at least half the limit in flight


class Limiter:
    """A fixed limit; the base of the adaptive one."""

    def __init__(self, limit: int, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._limit = float(limit)
        self.maximum = limit
        self._in_flight = 0
        self._seq = 0
        self._open: dict[int, Ticket] = {}  # the calls in flight, by seq
        self.peak = 0  # the most ever in flight at once

    @property
    def limit(self) -> int:
        return int(self._limit)

    def latency(self) -> float | None:
        """The typical latency seen so far (None before any sample)."""
        return None

    def acquire(self) -> Ticket | None:
        """A slot, or None when the limit is reached."""
        with self._lock:
            self._review(self._clock.now())
            if self._in_flight >= int(self._limit):
                return None
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
            self._seq += 1
            ticket = Ticket(self._seq, self._clock.now(), self._in_flight * 2 >= int(self._limit))
            self._open[ticket.seq] = ticket
            return ticket

    def release(self, ticket: Ticket, signal: Signal) -> None:
        with self._lock:
            self._observe(ticket, signal, max(0.0, self._clock.now() - ticket.started))
            self._open.pop(ticket.seq, None)
            self._in_flight -= 1

    def next_check(self) -> float | None:
        """When a call now in flight will next count as long (None: never), having
        counted the ones that already do: the pool wakes then to use the slot."""
        with self._lock:
            return self._review(self._clock.now())

    def _review(self, now: float) -> float | None:
        """Count the calls in flight that became long (caller holds the lock)."""
        return None

    def _observe(self, ticket: Ticket, signal: Signal, latency: float) -> None:
        """Adapt the limit (caller holds the lock; in_flight still counts this call)."""


class AdaptiveLimiter(Limiter):
    def __init__(self, maximum: int, clock: Clock, initial: int = INITIAL_LIMIT) -> None:
        super().__init__(max(1, min(initial, maximum)), clock)
        self.maximum = maximum
        self._slow_start = True
        self._window_seq = 0  # tickets up to here were sent before the last decrease
        self._ceiling: float | None = None  # in flight at the last overload
        self._short: float | None = None  # EWMA of log(latency), fast and slow
        self._long: float | None = None
        self._samples = 0
        self._credit = 0  # successes since the limit last grew by one
        self._long_calls: set[int] = set()  # seqs of the calls in flight that counted as long

    def latency(self) -> float | None:
        with self._lock:
            return None if self._short is None else math.exp(self._short)

    def _review(self, now: float) -> float | None:
        # Before any call ended there is no typical latency: the floor alone.
        after = (
            LONG_CALL_FLOOR if self._short is None else max(LONG_CALL_FLOOR, LONG_CALL_FACTOR * math.exp(self._short))
        )
        upcoming = []
        for seq, ticket in self._open.items():
            if seq in self._long_calls:
                continue
            if now - ticket.started >= after:
                self._long_calls.add(seq)
                self._limit = min(float(self.maximum), self._limit + 1)
            else:
                upcoming.append(ticket.started + after)
        return min(upcoming, default=None)

    def _observe(self, ticket: Ticket, signal: Signal, latency: float) -> None:
        if ticket.seq in self._long_calls:
            self._long_calls.discard(ticket.seq)
            if signal is Signal.OVERLOAD:
                self._decrease(ticket)
            return
        if signal is Signal.OVERLOAD:
            self._decrease(ticket)
        elif signal is Signal.OK:
            inflation = self._sample(latency)
            if inflation >= INFLATION:
                self._decrease(ticket)
            elif (
                inflation < HOLD
                and ticket.seq > self._window_seq
                and (ticket.busy or self._in_flight * 2 >= self._limit)
            ):
                self._grow()

    def _sample(self, latency: float) -> float:
        """Take a latency sample; how many times the short mean exceeds the long one."""
        value = math.log(max(latency, 1e-4))
        self._samples += 1
        if self._short is None or self._long is None:
            self._short = self._long = value
            return 1.0
        # A plain running mean until the weight is reached: the first sample, as noisy
        # as any, must not set the baseline for hundreds of calls.
        self._short += max(SHORT_WEIGHT, 1 / self._samples) * (value - self._short)
        self._long += max(LONG_WEIGHT, 1 / self._samples) * (value - self._long)
        return math.exp(self._short - self._long) if self._samples >= WARM_UP_SAMPLES else 1.0

    def _decrease(self, ticket: Ticket) -> None:
        if ticket.seq <= self._window_seq:
            return  # sent before the last decrease: that window was answered for
        self._ceiling = float(self._in_flight)
        self._limit = max(1.0, math.floor(self._in_flight * BETA))
        self._slow_start = False
        self._window_seq = self._seq
        self._credit = 0

    def _grow(self) -> None:
        if self._slow_start:
            self._limit = min(float(self.maximum), self._limit + SLOW_START_STEP)
            return
        self._credit += 1
        near = self._ceiling is not None and self._limit >= self._ceiling - 1
        if self._credit < self._limit * (NEAR_CEILING_SLOWDOWN if near else 1):
            return
        self._credit = 0
        self._limit = min(float(self.maximum), self._limit + 1)


def make_limiter(concurrency: int | str, maximum: int, clock: Clock) -> Limiter:
    """SYNC_CONCURRENCY=auto: adaptive up to `maximum`; a number: exactly that, fixed."""
    if isinstance(concurrency, int):
        return Limiter(concurrency, clock)
    return AdaptiveLimiter(maximum, clock)
