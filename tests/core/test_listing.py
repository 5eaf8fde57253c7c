"""One listing value: the backend's names normalised once, each last_record parsed once.

A backend that lists a symbol in a shape the normaliser accepts (" btcusdt") must not make
it look unlisted: not for pending_backfill, not for the hold of an ambiguous sync, not for
the freshness or the dispatch order. Issue 17 asked to prove or disprove it: on the code
before the single listing value, the two pass tests below failed (a false pending_backfill;
a hold kept although the backend had stored the sync).
"""

from __future__ import annotations

from datetime import UTC, datetime

from coin_sync.backend.wire import MISSING, ListedSymbol
from coin_sync.sync.listing import Listing
from coin_sync.sync.state import MemoryStateStore
from fake_backend import FakeBackend, status
from virtual_clock import VirtualClock

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_names_are_normalised_once_and_each_last_record_parsed_once() -> None:
    rows = [
        ListedSymbol(" btcusdt", "2026-01-01T11:58:00+00:00"),
        ListedSymbol("BTCUSDT", "2020-01-01T00:00:00+00:00"),  # the first row of a name wins
        ListedSymbol("ETHUSDT", MISSING),
        ListedSymbol("SOLUSDT", "ayer"),
        ListedSymbol("bad name", "2026-01-01T11:58:00+00:00"),
    ]
    listing = Listing.from_rows(rows)
    assert listing.names == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert [r.raw for r in listing.rejected] == ["bad name"]
    assert "BTCUSDT" in listing and " btcusdt" not in listing
    assert listing.last_record("BTCUSDT") == datetime(2026, 1, 1, 11, 58, tzinfo=UTC)
    eth, sol = listing.stamp("ETHUSDT"), listing.stamp("SOLUSDT")
    assert eth is not None and (eth.at, eth.problem, eth.missing) == (None, "sin last_record", True)
    assert sol is not None and sol.at is None and sol.problem is not None and "ISO 8601" in sol.problem
    # The bare-names shape: listed, no timestamp, none expected.
    bare = Listing.from_rows([ListedSymbol("btcusdt")])
    assert bare.names == ["BTCUSDT"] and bare.stamp("BTCUSDT") is None and bare.last_record("BTCUSDT") is None


def test_a_declared_coin_listed_in_another_spelling_is_not_pending_backfill(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=2) as backend:
        backend.add_new_symbol("NEWUSDT", backfill=0.05)
        backend.spell("NEWUSDT", " newusdt")  # once its backfill stored data
        run = run_pass(BACKEND_URL=backend.url, SYMBOLS_INCLUDE="NEWUSDT")
        assert "NEWUSDT" in backend.symbols  # listed after the pass (as " newusdt")
    new = next(s for s in run.summary["symbols"] if s["symbol"] == "NEWUSDT")
    assert new["status"] == "ok" and new["pending_backfill"] is False
    assert run.summary["totals"]["pending_backfill"] == 0
    assert not run.lines("aún no está en /api/symbols")


def test_a_hold_on_a_symbol_listed_in_another_spelling_clears_when_it_advances(run_pass) -> None:  # type: ignore[no-untyped-def]
    state, clock = MemoryStateStore(), VirtualClock()
    with FakeBackend(symbols=2, clock=clock.wall) as backend:
        backend.spell("BTCUSDT", " btcusdt")
        backend.script("BTCUSDT", status(504, "<html>Gateway Timeout</html>"))
        first = run_pass(clock=clock, state=state, BACKEND_URL=backend.url)
        (entry,) = state.state.ambiguous.values()
        # Measured from its listed last_record, not as "not listed yet".
        assert entry.baseline_known and entry.last_record == backend.stats("BTCUSDT")["last_record"]
        backend.script("BTCUSDT")
        clock.advance(60)  # the backend stored the next minute: its last_record advanced
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url)
        assert len(backend.sync_calls("BTCUSDT")) == 2
    assert first.code == 1 and second.code == 0 and not second.lines("⏸")
    assert state.state.ambiguous == {}
    btc = next(s for s in second.summary["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["status"] == "ok" and btc["lag_seconds"] is not None
