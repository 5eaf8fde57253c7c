"""The exchange budget (pure policy): how much Binance weight the pass may ask the backend
to spend, and what a quota halt leaves for the next passes.

The backend spends 2 weight per exchange request (klines); Binance allows an IP 6,000
weight a minute (../shared/backend-contract.md). Each sync is estimated from its lag
(coin_sync/sync/lanes.py: ceil(minutes behind / 1000) requests) and charged when it is
dispatched, a long one in slices of SYNC_WEIGHT_PER_MINUTE a minute. Catch-ups always go;
a backfill goes only while the estimate of the last WINDOW (this pass's charges and the
earlier passes' ones, remembered) plus what is reserved for catch-ups plus its own slice
stays within the budget; the others are deferred to the next pass.

When the exchange limits anyway (its real limit is lower: a shared IP, other clients of
the backend), the budget drops to what was spent in the minute that met the limit, holds
there for RECOVERY_HOLD, then recovers by RECOVERY_SHARE of the setting a minute.

After a quota halt (exit 4) the next pass probes: a single sync, sent no earlier than
PROBE_QUIET after the halt (the exchange's window has passed by then), and nothing else
until it answered; the pass stops there if the exchange still limits. Backfills stay
paused for COOL_DOWN after the halt.

Everything here is a function of what it is given (times included): no clock, no I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

WINDOW = timedelta(seconds=60)  # Binance counts weight per minute
# One sync fetches its pages one after another, each >= ~50 ms at Binance plus the
# backend's fixed 0.1 s pause: at most ~400 requests (800 weight) a minute. A larger
# estimate is charged in slices of this much, one per minute.
SYNC_WEIGHT_PER_MINUTE = 800
RECOVERY_HOLD = timedelta(minutes=30)
RECOVERY_SHARE = 0.01  # of the setting, per minute once the hold is over
PROBE_QUIET = timedelta(seconds=60)
COOL_DOWN = timedelta(seconds=90)  # the probing pass of a minutely schedule sends no backfill


@dataclass(frozen=True)
class Spend:
    at: datetime  # when the sync was dispatched (UTC)
    weight: int


@dataclass(frozen=True)
class ExchangeMemory:
    """What a pass leaves for the next ones (coin_sync/sync/state.py keeps it)."""

    spent: tuple[Spend, ...] = ()  # charges of the last WINDOW, and slices still to come
    adapted: int | None = None  # the budget the last limit left; None: the setting
    adapted_at: datetime | None = None
    halted_at: datetime | None = None  # the last quota halt (cool-down)
    probe: bool = False  # the next pass probes before opening up

    @property
    def empty(self) -> bool:
        return self == ExchangeMemory()


def budget_at(setting: int, memory: ExchangeMemory, now: datetime) -> int:
    """The budget in force at `now`: the setting, or the adapted one on its way back."""
    if memory.adapted is None or memory.adapted_at is None:
        return setting
    recovering = (now - memory.adapted_at - RECOVERY_HOLD).total_seconds()
    grown = memory.adapted + max(0.0, recovering) / 60 * RECOVERY_SHARE * setting
    return min(setting, int(grown))


def cooling_down(memory: ExchangeMemory, now: datetime) -> bool:
    return memory.halted_at is not None and now < memory.halted_at + COOL_DOWN


def probe_not_before(memory: ExchangeMemory) -> datetime | None:
    """When this pass's probe may leave; None when no probe is due."""
    if not memory.probe:
        return None
    return None if memory.halted_at is None else memory.halted_at + PROBE_QUIET


def _within(spent: list[Spend], now: datetime) -> list[Spend]:
    return [s for s in spent if now - WINDOW < s.at <= now]


def _live(spent: list[Spend], now: datetime) -> list[Spend]:
    """In the window now or later (the slices of a long sync still to come)."""
    return [s for s in spent if now - WINDOW < s.at]


def slices(weight: int, now: datetime) -> list[Spend]:
    """A sync's estimate as it reaches the exchange: SYNC_WEIGHT_PER_MINUTE a minute at most."""
    parts = range(0, weight, SYNC_WEIGHT_PER_MINUTE)
    return [Spend(now + i * WINDOW, min(SYNC_WEIGHT_PER_MINUTE, weight - start)) for i, start in enumerate(parts)]


class ExchangeBudget:
    """One pass's view of the budget. Thread-safe: the coordinator admits and charges,
    workers report the exchange's answers."""

    def __init__(self, setting: int, memory: ExchangeMemory, now: datetime) -> None:
        self.setting = setting
        self._memory = memory
        self._lock = threading.Lock()
        self._spent: list[Spend] = _live(list(memory.spent), now)
        self._charges: dict[str, list[Spend]] = {}  # this pass's, by symbol
        self._limited_at: datetime | None = None
        self._probed = False
        self.limit = budget_at(setting, memory, now)
        self.charged = 0  # weight dispatched by this pass

    def window(self, now: datetime) -> int:
        """The estimate of the weight spent in the last WINDOW."""
        with self._lock:
            return sum(s.weight for s in _within(self._spent, now))

    def admits(self, weight: int, now: datetime, reserved: int = 0) -> bool:
        """May a backfill of `weight` be dispatched now, `reserved` more being due first?"""
        if cooling_down(self._memory, now) or self._limited_at is not None:
            return False
        return self.window(now) + min(weight, SYNC_WEIGHT_PER_MINUTE) + reserved <= self.limit

    def room_at(self, weight: int, now: datetime, reserved: int = 0) -> datetime | None:
        """The first moment from `now` a backfill of `weight` would be admitted (the
        charges of the window age out); None when it never will in this pass."""
        weight = min(weight, SYNC_WEIGHT_PER_MINUTE) + reserved
        if self._limited_at is not None or weight > self.limit:
            return None
        start = now
        if cooling_down(self._memory, now) and self._memory.halted_at is not None:
            start = self._memory.halted_at + COOL_DOWN
        with self._lock:
            spent = sorted(_within(self._spent, start), key=lambda s: s.at)
        total = sum(s.weight for s in spent)
        if total + weight <= self.limit:
            return start
        for spend in spent:
            total -= spend.weight
            if total + weight <= self.limit:
                return max(start, spend.at + WINDOW)
        return None  # unreachable: an empty window has room for any weight <= limit

    def charge(self, symbol: str, weight: int, now: datetime) -> None:
        """`symbol` was dispatched with this estimate (a catch-up, or an admitted backfill)."""
        parts = slices(weight, now)
        with self._lock:
            self._spent += parts
            self._charges[symbol] = parts
            self.charged += weight

    def answered(self, symbol: str, limited: bool, now: datetime) -> None:
        """The exchange served `symbol`'s sync, or (limited) refused it with its quota:
        then its weight was not spent, and the budget adapts at the end of the pass."""
        with self._lock:
            self._probed = self._probed or not limited
            if not limited:
                return
            if self._limited_at is None:
                self._limited_at = now
        self.refund(symbol)

    def refund(self, symbol: str) -> None:
        """`symbol` was charged but its weight not spent (refused, or never sent)."""
        with self._lock:
            for spend in self._charges.pop(symbol, []):
                self._spent.remove(spend)
                self.charged -= spend.weight

    @property
    def limited(self) -> bool:
        return self._limited_at is not None

    def memory(self, now: datetime) -> ExchangeMemory:
        """What to remember for the next passes, as of the end of this pass."""
        with self._lock:
            spent = tuple(_live(self._spent, now))
            limited_at = self._limited_at
            probed = self._probed
            # What the exchange served in the minute up to the limit.
            met = sum(s.weight for s in _within(self._spent, limited_at)) if limited_at else 0
        memory = self._memory
        if limited_at is not None:
            memory = replace(memory, adapted=min(met, self.limit), adapted_at=limited_at)
            memory = replace(memory, halted_at=limited_at, probe=True)
        elif probed:
            memory = replace(memory, probe=False)
        if memory.adapted is not None and budget_at(self.setting, memory, now) >= self.setting:
            memory = replace(memory, adapted=None, adapted_at=None)
        if memory.halted_at is not None and not memory.probe and not cooling_down(memory, now):
            memory = replace(memory, halted_at=None)
        return replace(memory, spent=spent)
