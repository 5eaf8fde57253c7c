"""Longest work first (pure): backfills, then oldest last_record, then the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coin_sync.sync.ordering import longest_first, minutes_behind
from fake_backend import FakeBackend
from virtual_clock import VirtualClock

NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("symbols", "last_records", "expected"),
    [
        # nothing known (today's list of names, or SYMBOLS_TO_SYNC alone): list order
        (["A", "B", "C"], {}, ["A", "B", "C"]),
        # every symbol one minute behind: a tie, list order
        (["A", "B", "C"], {"A": ago(1), "B": ago(1), "C": ago(1)}, ["A", "B", "C"]),
        # the same minute is a tie too (seconds do not reorder)
        (["A", "B"], {"A": ago(1.1), "B": ago(1.6)}, ["A", "B"]),
        # oldest first
        (["A", "B", "C"], {"A": ago(2), "B": ago(5000), "C": ago(90)}, ["B", "C", "A"]),
        # absent from the backend's list: a full backfill, before anything listed
        (["A", "NEW", "B"], {"A": ago(1), "B": ago(100_000)}, ["NEW", "B", "A"]),
        # listed without a usable last_record: after everything known
        (["X", "A", "B"], {"X": None, "A": ago(1), "B": ago(3)}, ["B", "A", "X"]),
        # all three kinds; ties within each keep the given order
        (
            ["U1", "C1", "N1", "C2", "U2", "N2", "O"],
            {"U1": None, "U2": None, "C1": ago(1), "C2": ago(1), "O": ago(2000)},
            ["N1", "N2", "O", "C1", "C2", "U1", "U2"],
        ),
        # a last_record in the future (clock skew) counts as up to date
        (["A", "B"], {"A": NOW + timedelta(minutes=5), "B": ago(1)}, ["B", "A"]),
        ([], {}, []),
    ],
)
def test_longest_first(symbols: list[str], last_records: dict[str, datetime | None], expected: list[str]) -> None:
    assert longest_first(symbols, last_records, NOW) == expected


def test_minutes_behind() -> None:
    assert minutes_behind(ago(0.5), NOW) == 0
    assert minutes_behind(ago(61), NOW) == 61
    assert minutes_behind(NOW + timedelta(hours=1), NOW) == 0


def test_a_pass_dispatches_the_longest_work_first(run_pass) -> None:  # type: ignore[no-untyped-def]
    """Against the fake backend, one sync at a time: the declared symbol the backend does
    not list yet (a full backfill) first, then the listed ones oldest first, ties in list
    order."""
    clock = VirtualClock()
    lags = {"ETHUSDT": 3 * 3600, "BNBUSDT": 600, "SOLUSDT": 3 * 3600}
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
    with FakeBackend(symbols=symbols, lags=lags, clock=clock.wall) as backend:
        run = run_pass(clock=clock, BACKEND_URL=backend.url, SYNC_CONCURRENCY="1", SYMBOLS_INCLUDE="NEWCOINUSDT")
        order = [call.symbol for call in backend.sync_calls()]
    assert run.code == 0, run.log_lines
    assert order == ["NEWCOINUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "BTCUSDT", "XRPUSDT"]
