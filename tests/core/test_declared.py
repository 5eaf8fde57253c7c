"""Declared symbols: SYMBOLS_INCLUDE / SYMBOLS_EXCLUDE around the backend's list, and
pending_backfill for a declared coin that is not in /api/symbols yet."""

from __future__ import annotations

from coin_sync.config.table import describe
from coin_sync.sync.symbols import compose
from fake_backend import FakeBackend, exchange_error


def test_compose_is_a_union_in_order_and_exclude_wins() -> None:
    listed = ["BTCUSDT", "ETHUSDT", "LUNAUSDT"]
    assert compose(listed, ["NEWUSDT", "BTCUSDT", "NEWUSDT"], ["LUNAUSDT", "NEWUSDT"]) == ["BTCUSDT", "ETHUSDT"]
    assert compose(listed, ["SOLUSDT"], []) == ["BTCUSDT", "ETHUSDT", "LUNAUSDT", "SOLUSDT"]
    assert compose([], ["SOLUSDT"], []) == ["SOLUSDT"]


def test_included_symbols_are_normalised_added_and_excluded_ones_dropped(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=3) as backend:  # BTCUSDT, ETHUSDT, BNBUSDT
        run = run_pass(
            BACKEND_URL=backend.url, SYMBOLS_INCLUDE=" solusdt,BTCUSDT,SOLUSDT", SYMBOLS_EXCLUDE="bnbusdt, solusdt"
        )
        synced = sorted(c.symbol or "" for c in backend.sync_calls())
    assert run.code == 0
    assert synced == ["BTCUSDT", "ETHUSDT"]  # the exclude wins over the include


def test_an_included_symbol_absent_from_the_list_is_synced_and_reported_pending_backfill(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=2) as backend:
        backend.add_new_symbol("NEWUSDT", backfill=1.0)
        # The first backfill outlasts the timeout: the symbol is still not listed after it.
        run = run_pass(BACKEND_URL=backend.url, SYMBOLS_INCLUDE="NEWUSDT", HTTP_TIMEOUT="0.3")
        assert len(backend.sync_calls("NEWUSDT")) == 1
    new = next(s for s in run.summary["symbols"] if s["symbol"] == "NEWUSDT")
    assert new["pending_backfill"] is True and new["status"] == "failed"
    assert run.summary["totals"]["pending_backfill"] == 1
    assert run.report.pending_backfill_symbols == ["NEWUSDT"]
    assert [line for line in run.lines("NEWUSDT (SYMBOLS_INCLUDE) aún no está en /api/symbols") if " WARNING " in line]
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert "pendientes de backfill: 1" in fin


def test_an_included_symbol_whose_backfill_lands_is_not_pending(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=2) as backend:
        backend.add_new_symbol("NEWUSDT", backfill=0.05)
        run = run_pass(BACKEND_URL=backend.url, SYMBOLS_INCLUDE="NEWUSDT")
        listed_after = list(backend.symbols)
    assert run.code == 0 and "NEWUSDT" in listed_after
    new = next(s for s in run.summary["symbols"] if s["symbol"] == "NEWUSDT")
    assert new["status"] == "ok" and new["pending_backfill"] is False
    assert run.summary["totals"]["pending_backfill"] == 0
    assert "pendientes de backfill" not in run.lines("FIN DE SINCRONIZACIÓN")[0]


def test_a_rejected_included_symbol_is_pending_and_failed(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=1) as backend:
        backend.script("BTCUSTD", exchange_error("invalid_symbol", "BTCUSTD"))
        run = run_pass(BACKEND_URL=backend.url, SYMBOLS_INCLUDE="BTCUSTD")
        assert len(backend.sync_calls("BTCUSTD")) == 1
    typo = next(s for s in run.summary["symbols"] if s["symbol"] == "BTCUSTD")
    assert (typo["status"], typo["rejected"], typo["pending_backfill"]) == ("failed", True, True)
    assert run.code == 1


def test_an_empty_backend_with_includes_syncs_the_includes(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=[]) as backend:
        run = run_pass(BACKEND_URL=backend.url, SYMBOLS_INCLUDE="BTCUSDT,ETHUSDT")
        assert sorted(c.symbol or "" for c in backend.sync_calls()) == ["BTCUSDT", "ETHUSDT"]
    assert run.code == 0 and run.summary["reason"] == "ok"


def test_symbols_to_sync_means_exactly_these(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=3) as backend:
        run = run_pass(
            BACKEND_URL=backend.url,
            SYMBOLS_TO_SYNC="ETHUSDT,NEWUSDT",
            SYMBOLS_INCLUDE="SOLUSDT",
            SYMBOLS_EXCLUDE="ETHUSDT",
        )
        assert sorted(c.symbol or "" for c in backend.sync_calls()) == ["ETHUSDT", "NEWUSDT"]
        assert not [c for c in backend.calls if c.path == "/api/symbols"]
    assert run.code == 0
    assert run.lines("se ignoran SYMBOLS_INCLUDE/SYMBOLS_EXCLUDE")
    assert run.summary["totals"]["pending_backfill"] == 0


def test_symbols_command_prints_the_union(run_cli) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=2) as backend:
        run = run_cli("symbols", BACKEND_URL=backend.url, SYMBOLS_INCLUDE="newusdt", SYMBOLS_EXCLUDE="ETHUSDT")
    assert run.code == 0 and run.stdout.split() == ["BTCUSDT", "NEWUSDT"]


def test_the_banner_shows_empty_lists_for_what_they_mean() -> None:
    from coin_sync.config.load import load_settings

    shown = dict(describe(load_settings({}, {})))
    assert (shown["SYMBOLS_TO_SYNC"], shown["SYMBOLS_INCLUDE"], shown["SYMBOLS_EXCLUDE"]) == (
        "(todos)",
        "(ninguno)",
        "(ninguno)",
    )
