"""Longest work first: the order a pass dispatches its symbols in (pure).

A long job dispatched last sets the makespan, so the expected cost orders the pass:
1. symbols absent from the backend's list (named only in SYMBOLS_TO_SYNC): a full
   backfill, the longest job there is;
2. then by how far behind their last_record is, in whole minutes, oldest first;
3. then the rest (listed, but with no usable last_record).
Ties keep the given order (the sort is stable), so a pass where every symbol is one
minute behind, or where nothing is known, dispatches in list order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

BACKFILL, BEHIND, UNKNOWN = 0, 1, 2


def minutes_behind(last_record: datetime, now: datetime) -> int:
    """Whole minutes from last_record to now; 0 for a record in the future."""
    return max(0, int((now - last_record).total_seconds() // 60))


def longest_first(symbols: Sequence[str], last_records: Mapping[str, datetime | None], now: datetime) -> list[str]:
    """`symbols` reordered by expected cost. `last_records`: symbol -> its last_record
    from /api/symbols (None when the backend listed it without a usable one); a symbol
    missing from it was not listed at all."""

    def cost(symbol: str) -> tuple[int, int]:
        if symbol not in last_records:
            return BACKFILL, 0
        last = last_records[symbol]
        if last is None:
            return UNKNOWN, 0
        return BEHIND, -minutes_behind(last, now)

    return sorted(symbols, key=cost)
