"""Freshness in the pass, on a virtual clock against the real fake backend (its live
clock reads the same virtual time): stale, current, FAIL_ON_STALE, bad timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coin_sync.backend.wire import MISSING
from coin_sync.sync.freshness import assess, stamp
from fake_backend import BAD_TIMESTAMPS, FakeBackend, error400, wrong_json
from virtual_clock import VirtualClock

# The wall time these tests' comments count from (the clock starts there).
WALL = datetime(2026, 1, 1, 0, 16, 40, tzinfo=UTC)


def _backend(clock: VirtualClock, **kwargs: object) -> FakeBackend:
    return FakeBackend(symbols=["BTCUSDT", "ETHUSDT"], clock=clock.wall, **kwargs).start()  # type: ignore[arg-type]


def test_a_frozen_symbol_is_stale_with_its_lag_and_a_current_one_is_not(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)  # wall 2026-01-01T00:16:40
    backend = _backend(clock, frozen={"ETHUSDT"})  # stuck at 00:15:00
    try:
        clock.advance(600)  # now 00:26:40
        run = run_pass(clock=clock, BACKEND_URL=backend.url)
        eth_sync = backend.sync_calls("ETHUSDT")
    finally:
        backend.stop()
    assert run.code == 0 and run.report.reason.word == "ok"
    assert len(eth_sync) == 1
    rows = {row["symbol"]: row for row in run.summary["symbols"]}
    assert rows["ETHUSDT"]["new_records"] == 0
    assert rows["ETHUSDT"]["last_record"] == "2026-01-01T00:15:00+00:00"
    assert rows["ETHUSDT"]["lag_seconds"] == 640.0 and rows["ETHUSDT"]["stale"] is True
    assert rows["BTCUSDT"]["last_record"] == "2026-01-01T00:25:00+00:00"
    assert rows["BTCUSDT"]["lag_seconds"] == 40.0 and rows["BTCUSDT"]["stale"] is False
    totals = run.summary["totals"]
    assert (totals["stale"], totals["freshness_unknown"], totals["max_lag_seconds"]) == (1, 0, 640.0)
    (warning,) = run.lines("desactualizado:")
    assert warning.startswith("- WARNING - ⚠ ETHUSDT desactualizado: último registro 2026-01-01T00:15:00+00:00")
    assert "10.7 min de retraso" in warning
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert "código de salida: 0 (ok), desactualizados: 1, retraso máximo: 640 s, concurrencia:" in fin
    assert "stale=1 max_lag=640s" in run.report.one_line()


def test_fail_on_stale_exits_1_and_the_threshold_is_a_setting(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = _backend(clock, frozen={"ETHUSDT"})
    try:
        clock.advance(600)
        failing = run_pass(clock=clock, BACKEND_URL=backend.url, FAIL_ON_STALE="true")
        lenient = run_pass(clock=clock, BACKEND_URL=backend.url, FAIL_ON_STALE="true", STALE_AFTER_SECONDS="900")
    finally:
        backend.stop()
    assert failing.code == 1 and failing.summary["reason"] == "stale"
    assert failing.report.event() == ("SyncPartial", "Warning")
    assert lenient.code == 0 and lenient.summary["totals"]["stale"] == 0 and not lenient.lines("desactualizado:")


def test_a_failed_symbol_keeps_the_listed_freshness_and_counts_as_stale(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = _backend(clock, lags={"ETHUSDT": 3600})
    backend.script("ETHUSDT", error400("nope"))
    try:
        run = run_pass(clock=clock, BACKEND_URL=backend.url, FAIL_ON_STALE="true")
    finally:
        backend.stop()
    assert run.code == 1 and run.summary["reason"] == "symbols_failed"  # the failure, not "stale"
    eth = next(row for row in run.summary["symbols"] if row["symbol"] == "ETHUSDT")
    assert eth["status"] == "failed" and eth["stale"] is True and eth["lag_seconds"] > 3600


@pytest.mark.parametrize("kind", sorted(BAD_TIMESTAMPS))
def test_bad_timestamps_never_crash_a_pass(run_pass, kind: str) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = _backend(clock)
    backend.bad_timestamp("ETHUSDT", kind)
    try:
        run = run_pass(clock=clock, BACKEND_URL=backend.url, FAIL_ON_STALE="true")
    finally:
        backend.stop()
    assert run.code == 0, run.log_lines
    eth = next(row for row in run.summary["symbols"] if row["symbol"] == "ETHUSDT")
    assert eth["status"] == "ok" and eth["last_record"] is None and eth["lag_seconds"] is None
    (warning,) = run.lines("frescura desconocida (")
    assert warning.startswith("- WARNING - ⚠ ETHUSDT: frescura desconocida (") and "last_record" in warning
    assert run.summary["totals"]["freshness_unknown"] == 1
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert "desactualizados: 0, retraso máximo: 40 s (frescura desconocida de 1 símbolo), concurrencia:" in fin


def test_unknown_without_a_source_is_silent(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    # A brand-new symbol in SYMBOLS_TO_SYNC, answered by a backend that sends no statistics.
    fake_backend.script("NEWCOINUSDT", wrong_json({"success": True, "new_records": 5}))
    run = run_pass(BACKEND_URL=fake_backend.url, SYMBOLS_TO_SYNC="NEWCOINUSDT")
    assert run.code == 0 and not run.lines("⚠")
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert "desactualizados: 0, retraso máximo: desconocido, concurrencia:" in fin
    assert run.summary["totals"]["max_lag_seconds"] is None


def test_a_bare_list_of_names_still_gets_freshness_from_the_sync(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = FakeBackend(symbols=2, clock=clock.wall, symbols_shape="strings").start()
    try:
        run = run_pass(clock=clock, BACKEND_URL=backend.url)
    finally:
        backend.stop()
    assert run.summary["totals"]["freshness_unknown"] == 0 and run.summary["totals"]["stale"] == 0


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-01T11:59:00+00:00", NOW - timedelta(minutes=1)),
        ("2026-01-01T11:59:00Z", NOW - timedelta(minutes=1)),
        ("2026-01-01T11:59:00", NOW - timedelta(minutes=1)),  # no offset: the backend's UTC
        ("2026-01-01T13:59:00+02:00", NOW - timedelta(minutes=1)),
        ("2026-01-01T12:04:00+00:00", NOW + timedelta(minutes=4)),  # within the clock tolerance
        ("2026-01-01T12:06:00+00:00", None),
        ("2016-12-31T23:59:00+00:00", None),
        ("", None),
        ("9999-12-31T23:59:59-23:59", None),  # overflows when moved to UTC
        ("0001-01-01T00:00:00+23:59", None),
        ("2026-13-01", None),
        (17, None),
        (MISSING, None),
    ],
)
def test_a_stamp_is_parsed_once_and_judged_against_now(raw: object, expected: datetime | None) -> None:
    parsed = stamp(raw)
    assert parsed is not None
    value, problem = parsed.judged(NOW).at, parsed.judged(NOW).problem
    assert value == expected
    assert (problem is None) == (expected is not None)


def test_assess_prefers_the_sync_answer_then_the_listing() -> None:
    listed, synced = stamp("2026-01-01T11:00:00+00:00"), stamp("2026-01-01T11:58:00+00:00")
    missing = stamp(MISSING)
    assert stamp(None) is None  # a source that never carries the field
    assert assess(synced, listed, NOW, 180).lag_seconds == 60.0
    assert assess(None, listed, NOW, 180).lag_seconds == 3540.0
    assert assess(missing, listed, NOW, 180).lag_seconds == 3540.0
    assert assess(missing, None, NOW, 180).problem == "sin last_record"
    assert assess(None, None, NOW, 180) == assess(None, None, NOW, 0)
    assert not assess(None, None, NOW, 180).known
    current = assess(stamp("2026-01-01T11:59:30+00:00"), None, NOW, 0)
    assert current.lag_seconds == 0.0 and not current.stale
