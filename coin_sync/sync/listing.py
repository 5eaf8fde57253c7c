"""GET /api/symbols as one value: each name normalised once, each last_record parsed once.

Dispatch order, lanes, freshness, holds and pending_backfill all read this value, so a
backend that lists " btcusdt" (a shape the normaliser accepts) is BTCUSDT everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from coin_sync.backend.wire import ListedSymbol
from coin_sync.sync.freshness import Stamp, stamp
from coin_sync.sync.symbols import Rejected, normalise_symbols


@dataclass(frozen=True)
class Listing:
    """stamps: normalised name -> its parsed last_record, in the backend's order; None
    for a bare name (the list-of-strings shape carries no timestamp)."""

    stamps: dict[str, Stamp | None] = field(default_factory=dict)
    rejected: tuple[Rejected, ...] = ()  # names the normaliser refused
    # Each listed row by normalised name (first_record, total_records: coin_sync.sync.completeness).
    rows: dict[str, ListedSymbol] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[ListedSymbol]) -> Listing:
        """The first row of a normalised name wins."""
        stamps: dict[str, Stamp | None] = {}
        kept: dict[str, ListedSymbol] = {}
        rejected: list[Rejected] = []
        for row in rows:
            names, refused = normalise_symbols([row.name])
            rejected += refused
            for name in names:
                if name not in stamps:
                    stamps[name] = stamp(row.last_record)
                    kept[name] = row
        return cls(stamps, tuple(rejected), kept)

    @property
    def names(self) -> list[str]:
        return list(self.stamps)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.stamps

    def stamp(self, symbol: str) -> Stamp | None:
        """Its parsed last_record; None when not listed or listed as a bare name."""
        return self.stamps.get(symbol)

    def last_record(self, symbol: str) -> datetime | None:
        """Its usable last_record; None when not listed, bare, or unusable."""
        found = self.stamps.get(symbol)
        return None if found is None else found.at
