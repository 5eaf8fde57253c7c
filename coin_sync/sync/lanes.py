"""Two lanes per pass (pure): catch-ups first, backfills beside them, never in their way.

Before dispatching, /api/symbols tells how far behind each listed coin is, so what each
sync costs the exchange is known: the backend fetches every missing minute, 1,000 klines
per exchange request (weight 2 each), so a sync `m` minutes behind costs ceil(m / 1,000)
requests; a coin not listed yet is a first backfill from 2025-06-01 (~800 requests at the
end of 2026, minutes of work, often past HTTP_TIMEOUT).

- catch-up: listed and at most one exchange request behind (or nothing known about it:
  SYMBOLS_TO_SYNC, a bare list of names, a timestamp that cannot be read). Dispatched
  first, under the adaptive limiter, oldest first.
- backfill: not listed yet, or further behind. Its own bounded lane
  (BACKFILL_CONCURRENCY), fewest requests first, so the most coins become current soonest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Final

from coin_sync.sync.listing import Listing

BACKFILL_FROM: Final = datetime(2025, 6, 1, tzinfo=UTC)  # where the backend starts a first backfill
KLINES_PER_REQUEST: Final = 1000
REQUEST_WEIGHT: Final = 2  # Binance's weight of one klines request


class Lane(Enum):
    CATCH_UP = "catch_up"
    BACKFILL = "backfill"


@dataclass(frozen=True)
class Planned:
    """One symbol of the pass: its lane and the exchange requests its sync should cost."""

    symbol: str
    lane: Lane
    requests: int
    listed: bool  # in /api/symbols (False: a first backfill, or nothing was read)

    @property
    def weight(self) -> int:
        return self.requests * REQUEST_WEIGHT


def minutes_behind(last_record: datetime, now: datetime) -> int:
    """Whole minutes from last_record to now; 0 for a record in the future."""
    return max(0, int((now - last_record).total_seconds() // 60))


def exchange_requests(last_record: datetime | None, now: datetime) -> int:
    """Requests a sync needs: ceil(minutes behind / 1,000); None = never stored (a first
    backfill from BACKFILL_FROM)."""
    return math.ceil(minutes_behind(last_record or BACKFILL_FROM, now) / KLINES_PER_REQUEST)


def classify(symbols: Sequence[str], listing: Listing | None, now: datetime) -> list[Planned]:
    """Each symbol with its lane and estimated requests, in the given order."""
    planned = []
    for symbol in symbols:
        if listing is None:  # nothing read (SYMBOLS_TO_SYNC): assume the common case
            planned.append(Planned(symbol, Lane.CATCH_UP, 1, listed=False))
        elif symbol not in listing:
            planned.append(Planned(symbol, Lane.BACKFILL, exchange_requests(None, now), listed=False))
        else:
            last = listing.last_record(symbol)
            requests = 1 if last is None else exchange_requests(last, now)
            lane = Lane.CATCH_UP if requests <= 1 else Lane.BACKFILL
            planned.append(Planned(symbol, lane, requests, listed=True))
    return planned


def dispatch_order(planned: Sequence[Planned], listing: Listing | None, now: datetime) -> list[Planned]:
    """Catch-ups oldest first (a tie keeps the given order), then backfills fewest
    requests first. Unknown last_records go after the known catch-ups."""

    def key(item: Planned) -> tuple[int, int]:
        if item.lane is Lane.BACKFILL:
            return 2, item.requests
        last = None if listing is None else listing.last_record(item.symbol)
        return (1, 0) if last is None else (0, -minutes_behind(last, now))

    return sorted(planned, key=key)
