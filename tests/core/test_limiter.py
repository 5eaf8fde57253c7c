"""The concurrency limiter on a virtual clock: slow start, one decrease per window,
relative to what was in flight, slow probing afterwards, the latency guard."""

from __future__ import annotations

import itertools
import random

from coin_sync.sync.limiter import (
    BETA,
    INITIAL_LIMIT,
    LONG_CALL_FACTOR,
    LONG_CALL_FLOOR,
    NEAR_CEILING_SLOWDOWN,
    AdaptiveLimiter,
    Limiter,
    Signal,
    Ticket,
    make_limiter,
)
from virtual_clock import VirtualClock


def _fill(limiter: Limiter) -> list[Ticket]:
    tickets = []
    while (ticket := limiter.acquire()) is not None:
        tickets.append(ticket)
    return tickets


def _round(limiter: Limiter, clock: VirtualClock, latency: float = 0.1, signal: Signal = Signal.OK) -> int:
    """Fill the limit, let `latency` pass, answer them all; how many were in flight."""
    tickets = _fill(limiter)
    clock.advance(latency)
    for ticket in tickets:
        limiter.release(ticket, signal)
    return len(tickets)


def test_a_fixed_limit_never_moves() -> None:
    clock = VirtualClock()
    limiter = make_limiter(5, 64, clock)
    for signal in (Signal.OK, Signal.OVERLOAD, Signal.OK):
        assert _round(limiter, clock, signal=signal) == 5
    assert limiter.limit == 5 and limiter.peak == 5


def test_slow_start_grows_by_half_every_round_up_to_the_maximum() -> None:
    clock = VirtualClock()
    limiter = make_limiter("auto", 40, clock)
    sizes = [_round(limiter, clock) for _ in range(9)]
    assert sizes[:4] == [INITIAL_LIMIT, 6, 9, 13] and sizes[-2:] == [40, 40]
    assert all(b <= a * 1.5 + 1 for a, b in itertools.pairwise(sizes))
    assert limiter.peak == 40


def test_one_decrease_per_window_relative_to_what_was_in_flight() -> None:
    clock = VirtualClock()
    limiter = AdaptiveLimiter(64, clock, initial=20)
    tickets = _fill(limiter)
    assert len(tickets) == 20
    for ticket in tickets[:5]:  # five rejections of calls sent in the same window
        limiter.release(ticket, Signal.OVERLOAD)
    assert limiter.limit == int(20 * BETA)  # once, from the 20 in flight at the first one
    for ticket in tickets[5:]:
        limiter.release(ticket, Signal.OK)
    # A call sent after the decrease is a new window: a rejection counts again, against
    # what is in flight then (1), not against the limit.
    late = limiter.acquire()
    assert late is not None
    limiter.release(late, Signal.OVERLOAD)
    assert limiter.limit == 1


def test_after_a_decrease_probing_is_additive_and_slower_near_the_ceiling() -> None:
    clock = VirtualClock()
    limiter = AdaptiveLimiter(64, clock, initial=20)
    tickets = _fill(limiter)
    clock.advance(0.1)
    limiter.release(tickets[0], Signal.OVERLOAD)
    for ticket in tickets[1:]:
        limiter.release(ticket, Signal.OK)
    assert limiter.limit == int(20 * BETA) == 18
    growth = []
    for _ in range(1 + NEAR_CEILING_SLOWDOWN):
        _round(limiter, clock)
        growth.append(limiter.limit)
    # +1 a round up to the ceiling (20 in flight at the overload) minus one, then
    # NEAR_CEILING_SLOWDOWN times slower.
    assert growth == [19] * NEAR_CEILING_SLOWDOWN + [20]


def test_growth_needs_the_limit_in_use() -> None:
    clock = VirtualClock()
    limiter = AdaptiveLimiter(64, clock, initial=10)
    for _ in range(50):  # one call at a time: the limit is not what holds anything back
        ticket = limiter.acquire()
        assert ticket is not None
        clock.advance(0.1)
        limiter.release(ticket, Signal.OK)
    assert limiter.limit == 10


def test_neutral_answers_change_nothing() -> None:
    clock = VirtualClock()
    limiter = AdaptiveLimiter(64, clock)
    assert _round(limiter, clock, signal=Signal.NEUTRAL) == INITIAL_LIMIT
    assert limiter.limit == INITIAL_LIMIT


def test_inflated_latency_backs_off_but_lognormal_noise_does_not() -> None:
    rng = random.Random(7)
    clock = VirtualClock()
    limiter = AdaptiveLimiter(64, clock, initial=32)
    limiter._slow_start = False  # probing slowly, as after a first overload
    for _ in range(3000):  # median 150 ms, p99 800 ms
        ticket = limiter.acquire()
        assert ticket is not None
        clock.advance(rng.lognormvariate(-1.897, 0.72))
        limiter.release(ticket, Signal.OK)
    steady = limiter.limit
    assert steady >= 32  # never decreased
    latency = limiter.latency()
    assert latency is not None and 0.08 < latency < 0.3  # about the median
    for _ in range(30):  # a queue builds up: every call now takes 1 s
        tickets = _fill(limiter)
        clock.advance(1.0)
        for ticket in tickets:
            limiter.release(ticket, Signal.OK)
        if limiter.limit < steady:
            break
    assert limiter.limit < steady


def test_a_long_call_gives_its_slot_back_once_and_is_no_latency_sample() -> None:
    clock = VirtualClock()
    limiter = AdaptiveLimiter(64, clock)
    long_calls = _fill(limiter)  # four calls that will not end soon
    assert len(long_calls) == INITIAL_LIMIT and limiter.acquire() is None
    # Before any call ended, a call counts as long after the floor.
    assert limiter.next_check() == LONG_CALL_FLOOR
    clock.advance(LONG_CALL_FLOOR)
    assert limiter.next_check() is None  # all four counted, nothing left to wait for
    assert limiter.limit == 2 * INITIAL_LIMIT  # one slot back per long call, once
    clock.advance(60)
    assert limiter.limit == 2 * INITIAL_LIMIT  # counted once, however long they run
    for _ in range(20):
        _round(limiter, clock)  # ordinary calls: 0.1 s
    typical = limiter.latency()
    assert typical is not None
    for ticket in long_calls:
        limiter.release(ticket, Signal.OK)
    # 60 s calls said how much work they were, not how loaded the backend is.
    assert limiter.latency() == typical
    # With a typical latency known, long means LONG_CALL_FACTOR times it (at least the floor).
    ticket = limiter.acquire()
    assert ticket is not None
    assert limiter.next_check() == clock.now() + max(LONG_CALL_FLOOR, LONG_CALL_FACTOR * typical)


def test_a_fixed_limit_ignores_long_calls() -> None:
    clock = VirtualClock()
    limiter = make_limiter(2, 64, clock)
    _fill(limiter)
    clock.advance(600)
    assert limiter.next_check() is None and limiter.acquire() is None and limiter.limit == 2
