"""The exchange behind the fake backend: Binance's request weight, its per-minute limit,
its 429s and its 418 bans, as the real backend meets them (backend-contract.md).

- Every klines request weighs WEIGHT; the fake backend says how many requests a sync
  makes (an up-to-date sync: 0 within the same minute, else 1; a backfill: one per 1,000
  minutes behind).
- Weight is counted per clock minute of the backend's clock, as Binance counts its
  REQUEST_WEIGHT interval; past `weight_per_minute` the exchange answers 429 until the
  minute is over (the backend relays it as a 500).
- Calls that keep coming during a limit escalate to a ban: one that arrives more than
  `grace` seconds after the minute's first 429 (what was already in flight had that
  long) is answered 418, and so is every call for `ban_seconds` after it.

Counted for tests and benchmarks: `episodes` (runs of 429s with no served call between),
`limited` (429 answers), `bans` (418 answers), and the weight served per minute.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

WEIGHT = 2  # one klines request


@dataclass(frozen=True)
class ExchangeLimit:
    weight_per_minute: int
    grace: float = 1.0
    ban_seconds: float = 120.0


class FakeExchange:
    def __init__(self, limit: ExchangeLimit, clock: Callable[[], datetime]) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._minute: int | None = None  # the clock minute being counted (epoch minutes)
        self._used = 0
        self._first_refusal: float | None = None  # this minute's first 429 (epoch seconds)
        self._banned_until = 0.0
        self._refusing = False  # the last answer was a 429 or a 418
        self.served_by_minute: dict[int, int] = {}  # epoch minute -> weight served
        self.episodes = 0
        self.limited = 0
        self.bans = 0

    def request(self, requests: int) -> str | None:
        """Spend `requests` klines requests now: None when served, else the exchange's
        refusal ("rate_limited" or "banned"). A refused sync still spent what fitted."""
        now = self._clock().timestamp()
        minute = int(now // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._used, self._first_refusal = minute, 0, None
            if now < self._banned_until:
                return self._refuse("banned")
            if self._first_refusal is not None and now - self._first_refusal > self.limit.grace:
                self._banned_until = now + self.limit.ban_seconds
                return self._refuse("banned")
            weight = WEIGHT * requests
            if self._used + weight > self.limit.weight_per_minute:
                fitted = (self.limit.weight_per_minute - self._used) // WEIGHT * WEIGHT
                self._serve(minute, max(0, fitted))
                if self._first_refusal is None:
                    self._first_refusal = now
                return self._refuse("rate_limited")
            self._serve(minute, weight)
            self._refusing = False
            return None

    def _serve(self, minute: int, weight: int) -> None:  # caller holds _lock
        self._used += weight
        self.served_by_minute[minute] = self.served_by_minute.get(minute, 0) + weight

    def _refuse(self, kind: str) -> str:  # caller holds _lock
        if kind == "banned":
            self.bans += 1
        else:
            self.limited += 1
            if not self._refusing:
                self.episodes += 1
        self._refusing = True
        return kind
