"""Ambiguous syncs across passes (pure policy): which symbols a pass must not send yet.

A sync that ended without a clear answer (read timeout, a gateway's 504, or still in
flight when the pass was cut short) may still be running in the backend: a first backfill
can outlast HTTP_TIMEOUT. Sending it again then makes the backend fetch the same klines
twice at once. So the pass remembers it (coin_sync/sync/state.py) and the next passes hold it
back until the backend finished it or AMBIGUOUS_HOLD_SECONDS passed.

Finished means: its last_record advanced past the one it had when the sync was sent (or
it appeared in /api/symbols) AND is now within one exchange request of the present. The
backend lists a new symbol, and moves its last_record, as soon as a backfill starts
storing, one candle at a time from the oldest (../shared/backend-contract.md): a
last_record that moved but is still far behind is a backfill still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from coin_sync.sync.freshness import stamp
from coin_sync.sync.lanes import exchange_requests
from coin_sync.sync.listing import Listing
from coin_sync.sync.state import AmbiguousSync, State


def advanced(entry: AmbiguousSync, current: datetime | None) -> bool:
    """Has the backend stored something since the ambiguous sync was sent? `current`:
    its usable last_record in the listing now."""
    if not entry.baseline_known or current is None:
        return False
    if entry.last_record is None:
        return True  # it appeared in /api/symbols: its first backfill stored data
    before = stamp(entry.last_record)
    # A remembered value no date can be read from: a usable one now means it changed.
    return before is None or before.at is None or current > before.at


def finished(entry: AmbiguousSync, current: datetime | None, now: datetime) -> bool:
    """Has the backend finished the ambiguous sync: stored since it was sent, and caught up
    (at most one exchange request behind, as a catch-up)? `current`: as in advanced()."""
    return advanced(entry, current) and current is not None and exchange_requests(current, now) <= 1


@dataclass(frozen=True)
class Held:
    entry: AmbiguousSync
    age: float  # seconds since it was sent
    remaining: float  # seconds of hold left


@dataclass(frozen=True)
class Decision:
    send: list[str]  # in the given order
    held: list[Held]
    keep: State  # what to remember from here on (new ambiguous syncs are added later)


def decide(state: State, symbols: list[str], listing: Listing | None, now: datetime, hold_seconds: float) -> Decision:
    """Split this pass's symbols into sent and held; drop memories that expired or were
    resolved (the backend finished), for these symbols and any other."""
    keep: State = {}
    held: dict[str, Held] = {}
    for symbol, entry in state.items():
        age = (now - entry.sent_at).total_seconds()
        done = listing is not None and finished(entry, listing.last_record(symbol), now)
        # A sent_at far in the future (another host's clock) must not hold it forever.
        if age >= hold_seconds or age < -hold_seconds or done:
            continue
        keep[symbol] = entry
        held[symbol] = Held(entry, max(0.0, age), hold_seconds - max(0.0, age))
    send = [s for s in symbols if s not in held]
    return Decision(send, [held[s] for s in symbols if s in held], keep)
