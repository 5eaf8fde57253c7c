"""Two lanes (pure): catch-ups (at most one exchange request behind) oldest first, then
backfills (not listed, or further behind) fewest requests first; the request estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coin_sync.backend.wire import ListedSymbol
from coin_sync.sync.lanes import Lane, classify, dispatch_order, exchange_requests, minutes_behind
from coin_sync.sync.listing import Listing
from fake_backend import FakeBackend
from virtual_clock import VirtualClock

NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def listing(last_records: dict[str, datetime | None]) -> Listing:
    return Listing.from_rows(
        [ListedSymbol(name, "ayer" if last is None else last.isoformat()) for name, last in last_records.items()]
    )


def order(symbols: list[str], last_records: dict[str, datetime | None] | None) -> list[str]:
    given = None if last_records is None else listing(last_records)
    return [p.symbol for p in dispatch_order(classify(symbols, given, NOW), given, NOW)]


@pytest.mark.parametrize(
    ("symbols", "last_records", "expected"),
    [
        # nothing known (SYMBOLS_TO_SYNC alone): list order, all catch-ups
        (["A", "B", "C"], None, ["A", "B", "C"]),
        # every symbol one minute behind: a tie, list order
        (["A", "B", "C"], {"A": ago(1), "B": ago(1), "C": ago(1)}, ["A", "B", "C"]),
        # the same minute is a tie too (seconds do not reorder)
        (["A", "B"], {"A": ago(1.1), "B": ago(1.6)}, ["A", "B"]),
        # catch-ups oldest first; far behind (5000 min: 5 requests) is a backfill, after them
        (["A", "B", "C"], {"A": ago(2), "B": ago(5000), "C": ago(90)}, ["C", "A", "B"]),
        # absent from the backend's list: a first backfill, after every catch-up
        (["A", "NEW", "B"], {"A": ago(1), "B": ago(100_000)}, ["A", "B", "NEW"]),
        # listed without a usable last_record: after the known catch-ups
        (["X", "A", "B"], {"X": None, "A": ago(1), "B": ago(3)}, ["B", "A", "X"]),
        # all kinds; backfills fewest requests first, ties keep the given order
        (
            ["U1", "C1", "N1", "C2", "U2", "N2", "O"],
            {"U1": None, "U2": None, "C1": ago(1), "C2": ago(1), "O": ago(2000)},
            ["C1", "C2", "U1", "U2", "O", "N1", "N2"],
        ),
        # a last_record in the future (clock skew) counts as up to date
        (["A", "B"], {"A": NOW + timedelta(minutes=5), "B": ago(1)}, ["B", "A"]),
        ([], {}, []),
    ],
)
def test_dispatch_order(
    symbols: list[str], last_records: dict[str, datetime | None] | None, expected: list[str]
) -> None:
    assert order(symbols, last_records) == expected


def test_lanes_and_the_exchange_requests_each_sync_needs() -> None:
    given = listing({"CUR": ago(1), "EDGE": ago(1000), "FAR": ago(1001), "BAD": None})
    planned = {p.symbol: p for p in classify(["CUR", "EDGE", "FAR", "BAD", "NEW"], given, NOW)}
    assert {s: (p.lane, p.requests) for s, p in planned.items()} == {
        "CUR": (Lane.CATCH_UP, 1),
        "EDGE": (Lane.CATCH_UP, 1),  # 1,000 minutes: still one request
        "FAR": (Lane.BACKFILL, 2),
        "BAD": (Lane.CATCH_UP, 1),  # nothing known: the common case
        # a first backfill from 2025-06-01: 214 days + 12 h = 308,880 minutes
        "NEW": (Lane.BACKFILL, 309),
    }
    assert planned["NEW"].weight == 618 and not planned["NEW"].listed and planned["FAR"].listed
    assert exchange_requests(NOW, NOW) == 0  # up to date within the minute: no request
    assert [p.lane for p in classify(["A", "B"], None, NOW)] == [Lane.CATCH_UP, Lane.CATCH_UP]


def test_minutes_behind() -> None:
    assert minutes_behind(ago(0.5), NOW) == 0
    assert minutes_behind(ago(61), NOW) == 61
    assert minutes_behind(NOW + timedelta(hours=1), NOW) == 0


def test_a_pass_dispatches_catch_ups_oldest_first_and_the_backfill_beside_them(run_pass) -> None:  # type: ignore[no-untyped-def]
    """Against the fake backend, one catch-up at a time. Issue 18 changed this on purpose:
    the new coin (a first backfill) went first, holding the only slot; now it runs in its
    own lane, beside the catch-ups, which keep their order (oldest first, ties in list
    order)."""
    clock = VirtualClock()
    lags = {"ETHUSDT": 3 * 3600, "BNBUSDT": 600, "SOLUSDT": 3 * 3600}
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
    # 50 ms a sync: five catch-ups one after another take long enough to tell "beside".
    with FakeBackend(symbols=symbols, lags=lags, clock=clock.wall, latency=0.05) as backend:
        backend.add_new_symbol("NEWCOINUSDT", backfill=0.5)
        run = run_pass(clock=clock, BACKEND_URL=backend.url, SYNC_CONCURRENCY="1", SYMBOLS_INCLUDE="NEWCOINUSDT")
        calls = backend.sync_calls()
    assert run.code == 0, run.log_lines
    catch_ups = [c.symbol for c in calls if c.symbol != "NEWCOINUSDT"]
    assert catch_ups == ["ETHUSDT", "SOLUSDT", "BNBUSDT", "BTCUSDT", "XRPUSDT"]
    (new,) = [c for c in calls if c.symbol == "NEWCOINUSDT"]
    # Beside them: sent before the catch-ups were done, and it never held their one slot.
    assert new.started < max(c.finished or 0.0 for c in calls if c.symbol != "NEWCOINUSDT")
    rows = {r["symbol"]: r for r in run.summary["symbols"]}
    assert rows["NEWCOINUSDT"]["backfill"] is True and rows["ETHUSDT"]["backfill"] is False
    assert run.summary["totals"]["backfills"] == 1
    assert run.lines("Carriles: 5 al día primero, 1 backfills aparte (BACKFILL_CONCURRENCY=2")
