"""Completeness: the rule as a table, then passes against the fake backend, which lists
holed symbols the way the real backend does (total_records short of the minutes from
first_record to last_record): the WARNING, the FIN line, the summary, FAIL_ON_GAPS."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coin_sync.backend.wire import MISSING, parse_symbols_payload
from coin_sync.sync.completeness import Completeness, assess_completeness
from fake_backend import FakeBackend, wrong_json
from virtual_clock import VirtualClock

NOW = datetime(2026, 1, 1, 0, 16, 40, tzinfo=UTC)
FIRST = "2026-01-01T00:00:00+00:00"
LAST = "2026-01-01T00:15:00+00:00"  # 16 minutes, both ends included

TABLE: list[tuple[str, object, object, object, int | None, str | None]] = [
    # case, first_record, last_record, total_records -> missing minutes, culprit of the problem
    ("complete", FIRST, LAST, 16, 0, None),
    ("seven missing", FIRST, LAST, 9, 7, None),
    ("one candle", FIRST, FIRST, 1, 0, None),
    ("all but the ends", FIRST, LAST, 2, 14, None),
    ("naive times are UTC", "2026-01-01T00:00:00", "2026-01-01T00:15:00", 15, 1, None),
    ("Z suffix", "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z", 16, 0, None),
    ("other offset", "2026-01-01T01:00:00+01:00", LAST, 16, 0, None),
    ("a float count", FIRST, LAST, 16.0, 0, None),
    ("impossible: more records than minutes", FIRST, LAST, 17, None, "total_records"),
    ("impossible: last before first", LAST, FIRST, 1, None, "span"),
    ("not a whole number of minutes", FIRST, "2026-01-01T00:15:30+00:00", 16, None, "span"),
    ("negative count", FIRST, LAST, -1, None, "total_records"),
    ("fractional count", FIRST, LAST, 15.5, None, "total_records"),
    ("boolean count", FIRST, LAST, True, None, "total_records"),
    ("NaN count", FIRST, LAST, float("nan"), None, "total_records"),
    ("infinite count", FIRST, LAST, float("inf"), None, "total_records"),
    ("a count beyond any float", FIRST, LAST, 10**400, None, "total_records"),
    ("text count", FIRST, LAST, "16", None, "total_records"),
    ("first missing", MISSING, LAST, 16, None, "first_record"),
    ("last missing", FIRST, MISSING, 16, None, "last_record"),
    ("count missing", FIRST, LAST, MISSING, None, "total_records"),
    ("first garbage", "ayer", LAST, 16, None, "first_record"),
    ("last a number", FIRST, 1_700_000_000, 16, None, "last_record"),
    ("first in 1970", "1970-01-01T00:00:00+00:00", LAST, 16, None, "first_record"),
    ("last in the future", FIRST, "2026-01-02T00:00:00+00:00", 16, None, "last_record"),
    ("year 1 with an offset", "0001-01-01T00:00:00+01:00", LAST, 16, None, "first_record"),
    ("bare name: nothing to judge, nothing wrong", None, None, None, None, None),
]


@pytest.mark.parametrize(
    ("first", "last", "total", "missing", "culprit"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_the_rule(first: object, last: object, total: object, missing: int | None, culprit: str | None) -> None:
    gaps = assess_completeness(first, last, total, NOW)
    assert (gaps.missing_minutes, gaps.culprit) == (missing, culprit)
    assert (gaps.problem is None) == (culprit is None)
    assert gaps.holed == bool(missing)


def test_the_span_is_named_in_utc() -> None:
    gaps = assess_completeness("2026-01-01T01:00:00+01:00", LAST, 9, NOW)
    assert gaps == Completeness(7, "2026-01-01T00:00:00+00:00", LAST)


def test_the_bare_list_shape_is_unknown_and_silent() -> None:
    (row,) = parse_symbols_payload(["BTCUSDT"])
    assert assess_completeness(row.first_record, row.last_record, row.total_records, NOW) == Completeness()


def test_an_object_row_carries_the_three_fields() -> None:
    (row,) = parse_symbols_payload(
        {"symbols": [{"symbol": "ETHUSDT", "first_record": FIRST, "last_record": LAST, "total_records": 9}]}
    )
    assert assess_completeness(row.first_record, row.last_record, row.total_records, NOW).missing_minutes == 7


# --- passes on the fake backend ----------------------------------------------------------

WALL = datetime(2026, 1, 1, 0, 16, 40, tzinfo=UTC)


def test_a_holed_symbol_is_warned_counted_and_summed(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = FakeBackend(
        symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"], clock=clock.wall, holes={"ETHUSDT": 7, "BNBUSDT": 1}
    ).start()
    try:
        run = run_pass(clock=clock, BACKEND_URL=backend.url)
    finally:
        backend.stop()
    assert run.code == 0 and run.summary["reason"] == "ok"  # holes alone do not fail a pass
    rows = {row["symbol"]: row["missing_minutes"] for row in run.summary["symbols"]}
    assert rows == {"BTCUSDT": 0, "ETHUSDT": 7, "BNBUSDT": 1}
    totals = run.summary["totals"]
    assert (totals["symbols_with_gaps"], totals["missing_minutes"]) == (2, 8)
    span = "sin datos entre 2025-06-01T00:00:00+00:00 y 2026-01-01T00:15:00+00:00 (el backend no rellena huecos)"
    assert sorted(run.lines("sin datos entre")) == [
        f"- WARNING - ⚠ BNBUSDT tiene 1 minuto {span}",
        f"- WARNING - ⚠ ETHUSDT tiene 7 minutos {span}",
    ]
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    # The existing fields keep their place; the new one is the line's last.
    assert "código de salida: 0 (ok), desactualizados: 0, retraso máximo: 40 s, concurrencia: en vuelo máx" in fin
    assert fin.endswith(", con huecos: 2 símbolos (8 minutos)")
    assert "symbols_with_gaps=2 missing_minutes=8" in run.report.one_line()


def test_a_complete_backend_says_so(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    with FakeBackend(symbols=3, clock=clock.wall) as backend:
        run = run_pass(clock=clock, BACKEND_URL=backend.url)
    assert run.code == 0 and not run.lines("sin datos") and not run.lines("huecos desconocidos")
    assert [row["missing_minutes"] for row in run.summary["symbols"]] == [0, 0, 0]
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert fin.endswith(", con huecos: 0 símbolos (0 minutos)")


def test_an_impossible_count_is_a_backend_problem_not_a_hole(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = FakeBackend(symbols=["BTCUSDT", "ETHUSDT"], clock=clock.wall, holes={"ETHUSDT": -3}).start()
    try:
        run = run_pass(clock=clock, BACKEND_URL=backend.url, FAIL_ON_GAPS="true")
    finally:
        backend.stop()
    assert run.code == 0, run.log_lines
    (warning,) = run.lines("huecos desconocidos")
    assert warning.startswith("- WARNING - ⚠ ETHUSDT: huecos desconocidos (total_records (")
    assert "supera los" in warning
    eth = next(row for row in run.summary["symbols"] if row["symbol"] == "ETHUSDT")
    assert eth["missing_minutes"] is None and run.summary["totals"]["symbols_with_gaps"] == 0


def test_a_bad_last_record_is_named_once(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = FakeBackend(symbols=["BTCUSDT", "ETHUSDT"], clock=clock.wall).start()
    backend.bad_timestamp("ETHUSDT", "garbage")
    try:
        run = run_pass(clock=clock, BACKEND_URL=backend.url)
    finally:
        backend.stop()
    assert run.code == 0
    assert len(run.lines("⚠ ETHUSDT")) == 1 and run.lines("frescura desconocida")  # freshness named it
    eth = next(row for row in run.summary["symbols"] if row["symbol"] == "ETHUSDT")
    assert eth["missing_minutes"] is None


def test_a_bad_listed_last_record_is_named_when_the_sync_answer_had_a_good_one(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    backend = FakeBackend(symbols=["BTCUSDT", "ETHUSDT"], clock=clock.wall).start()
    good = backend.stats("ETHUSDT")
    backend.bad_timestamp("ETHUSDT", "garbage")  # in the listing (and in its own answers)
    answer = {"success": True, "symbol": "ETHUSDT", "new_records": 0, "statistics": good}
    backend.script("ETHUSDT", wrong_json(answer))  # this answer carries the good one
    try:
        run = run_pass(clock=clock, BACKEND_URL=backend.url)
    finally:
        backend.stop()
    assert run.code == 0 and not run.lines("frescura desconocida")
    (warning,) = run.lines("⚠ ETHUSDT")
    assert warning.startswith("- WARNING - ⚠ ETHUSDT: huecos desconocidos (last_record no es una fecha ISO 8601")


def test_the_bare_list_shape_knows_no_holes(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=WALL)
    with FakeBackend(symbols=["BTCUSDT"], symbols_shape="strings", clock=clock.wall, holes={"BTCUSDT": 5}) as backend:
        run = run_pass(clock=clock, BACKEND_URL=backend.url, FAIL_ON_GAPS="true")
    assert run.code == 0 and not run.lines("⚠")
    assert run.summary["symbols"][0]["missing_minutes"] is None


def test_fail_on_gaps_exits_1_as_a_process(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    summary = tmp_path / "summary.json"
    with FakeBackend(symbols=["BTCUSDT", "ETHUSDT"], holes={"ETHUSDT": 7}) as backend:
        lenient = run_cli(BACKEND_URL=backend.url)
        failing = run_cli(BACKEND_URL=backend.url, FAIL_ON_GAPS="true", SUMMARY_FILE=str(summary))
        backend.punch_hole("ETHUSDT", 0)  # someone deleted the data after the hole and it was refilled
        mended = run_cli(BACKEND_URL=backend.url, FAIL_ON_GAPS="true")
    assert lenient.code == 0, lenient.stdout[-2000:]
    assert failing.code == 1, failing.stdout[-2000:]
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["reason"] == "gaps" and data["exit_code"] == 1
    assert (data["totals"]["symbols_with_gaps"], data["totals"]["missing_minutes"]) == (1, 7)
    (fin,) = failing.lines("FIN DE SINCRONIZACIÓN")
    assert "código de salida: 1 (gaps)" in fin and fin.endswith("con huecos: 1 símbolo (7 minutos)")
    assert mended.code == 0 and not mended.lines("sin datos entre")
