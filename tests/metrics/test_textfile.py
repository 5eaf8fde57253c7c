"""The textfile transport, scraped by a real node_exporter (textfile collector only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prom_tools
from coin_sync.config.load import load_settings
from coin_sync.observe.publish import publish
from coin_sync.outcome import EndReason, PassReport
from fake_backend import FakeBackend, error400
from prom_tools import promtool_check, samples

RunPass = Callable[..., Any]  # the run_coin_sync fixture (conftest.py)


def _value(text: str, name: str) -> float:
    (sample,) = samples(text, name)
    return sample.value


def test_node_exporter_scrapes_the_textfile_cleanly(
    fake_backend: FakeBackend, run_coin_sync: RunPass, tmp_path: Path
) -> None:
    directory = tmp_path / "textfile"
    run = run_coin_sync(BACKEND_URL=fake_backend.url, METRICS_TEXTFILE=str(directory / "coin_sync.prom"))
    assert run.code == 0, run.stdout + run.stderr
    assert [p.name for p in directory.iterdir()] == ["coin_sync.prom"]  # no temporary file left
    text = (directory / "coin_sync.prom").read_text()
    assert promtool_check(text) == ""
    for server in prom_tools.node_exporter(tmp_path, directory):
        scraped = server.metrics_text()
    assert _value(scraped, "node_textfile_scrape_error") == 0
    assert _value(scraped, "coin_sync_last_exit_code") == 0
    per_symbol = samples(scraped, "coin_sync_symbol_last_record_timestamp_seconds")
    assert {dict(s.labels)["symbol"] for s in per_symbol} == set(fake_backend.symbols)
    assert {s.timestamp for s in per_symbol} == {None}


def test_a_failed_pass_carries_the_last_success_forward(
    fake_backend: FakeBackend, run_coin_sync: RunPass, tmp_path: Path
) -> None:
    textfile = tmp_path / "coin_sync.prom"
    assert run_coin_sync(BACKEND_URL=fake_backend.url, METRICS_TEXTFILE=str(textfile)).code == 0
    success = _value(textfile.read_text(), "coin_sync_last_success_timestamp_seconds")
    fake_backend.script("ETHUSDT", error400("nope"))
    assert run_coin_sync(BACKEND_URL=fake_backend.url, METRICS_TEXTFILE=str(textfile)).code == 1
    text = textfile.read_text()
    assert _value(text, "coin_sync_last_exit_code") == 1
    assert _value(text, "coin_sync_last_success_timestamp_seconds") == success
    assert _value(text, "coin_sync_last_run_timestamp_seconds") >= success


def test_a_first_failed_pass_has_no_last_success_and_an_unwritable_file_is_one_warning(
    fake_backend: FakeBackend, run_coin_sync: RunPass, tmp_path: Path
) -> None:
    fake_backend.script("ETHUSDT", error400("nope"))
    textfile = tmp_path / "coin_sync.prom"
    assert run_coin_sync(BACKEND_URL=fake_backend.url, METRICS_TEXTFILE=str(textfile)).code == 1
    assert samples(textfile.read_text(), "coin_sync_last_success_timestamp_seconds") == []
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    run = run_coin_sync(BACKEND_URL=fake_backend.url, METRICS_TEXTFILE=str(blocker / "coin_sync.prom"))
    assert run.code == 1
    (warning,) = run.lines("No se pudo escribir METRICS_TEXTFILE")
    assert " WARNING " in warning and "Traceback" not in run.stdout + run.stderr


def test_metrics_come_after_the_local_files_and_before_the_guard(tmp_path: Path) -> None:
    """publish(): FIN, SUMMARY_FILE, termination message, metrics, then the guard."""
    textfile, summary = tmp_path / "coin_sync.prom", tmp_path / "summary.json"
    settings = load_settings({}, {"METRICS_TEXTFILE": str(textfile), "SUMMARY_FILE": str(summary)})
    seen: list[bool] = []

    class Guard:
        def finish(self, report: PassReport) -> None:
            seen.append(textfile.exists() and summary.exists())

    report = PassReport(pass_number=1, started_at="2026-01-01T00:00:00+00:00", reason=EndReason.LOCK_HELD)
    assert publish(report, settings, logging.getLogger("coin_sync.test.publish"), Guard()) == 0
    assert seen == [True]
    text = textfile.read_text()
    assert _value(text, "coin_sync_last_run_timestamp_seconds") > 0  # finished_at filled in for this end
    assert samples(text, "coin_sync_last_success_timestamp_seconds") == []  # a skip is not a success
    assert samples(text, "coin_sync_symbol_last_record_timestamp_seconds") == []


def test_holes_per_symbol_and_in_total(run_coin_sync: RunPass, tmp_path: Path) -> None:
    textfile = tmp_path / "coin_sync.prom"
    with FakeBackend(symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"], holes={"ETHUSDT": 7, "BNBUSDT": 2}) as backend:
        run = run_coin_sync(BACKEND_URL=backend.url, METRICS_TEXTFILE=str(textfile))
    assert run.code == 0, run.stdout + run.stderr
    text = textfile.read_text()
    assert promtool_check(text) == ""
    per_symbol = {dict(s.labels)["symbol"]: s.value for s in samples(text, "coin_sync_symbol_missing_candles")}
    assert per_symbol == {"BTCUSDT": 0, "ETHUSDT": 7, "BNBUSDT": 2}
    assert _value(text, "coin_sync_last_pass_missing_candles") == 9
    assert _value(text, "coin_sync_last_pass_symbols_with_gaps") == 2
