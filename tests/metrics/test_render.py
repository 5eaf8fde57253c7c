"""The metric set itself: what the loop serves, promtool-clean, and never imported
(nor kubernetes) by a pass without metrics."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
from typing import Any

import pytest
import requests
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

import prom_tools
from coin_sync.observe.loop_metrics import LoopMetrics, read_summary
from coin_sync.observe.metrics import render, succeeded
from coin_sync.outcome import EndReason, PassReport, SymbolStatus
from fake_backend import FakeBackend
from harness import REPO, clean_env
from prom_tools import promtool_check, samples


def _summary(exit_code: int, finished_at: str, **totals: Any) -> dict[str, Any]:
    return {
        "exit_code": exit_code,
        "reason": "ok" if exit_code == 0 else "symbols_failed",
        "finished_at": finished_at,
        "shard": {"index": 0, "count": 1},
        "totals": {
            "symbols": 2,
            "ok": 2 - (exit_code != 0),
            "failed": int(exit_code != 0),
            "skipped": 0,
            "interrupted": 0,
            "new_records": 3,
            "duration": 0.4,
            "retries": 1,
            "stale": 1,
            "freshness_unknown": 1,
            "max_lag_seconds": 700.0,
            "backfills": 1,
            "left_to_backend": 1,
            **totals,
        },
        "symbols": [
            {"symbol": "BTCUSDT", "status": "ok", "last_record": "2026-01-01T00:10:00+00:00", "lag_seconds": 700.0},
            {"symbol": "ETHUSDT", "status": "ok", "last_record": None, "lag_seconds": None},
        ],
    }


def _one(text: str, name: str, **labels: str) -> float:
    (sample,) = [s for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items())]
    return sample.value


def test_the_loop_serves_the_latest_pass_plus_its_counters_after_two_passes() -> None:
    loop = LoopMetrics()
    loop.record(_summary(0, "2026-01-01T00:22:00+00:00"), 0, 0.5)
    loop.record(_summary(1, "2026-01-01T00:23:00+00:00"), 1, 1.5)
    text = loop.render().decode()
    assert promtool_check(text) == ""
    assert _one(text, "coin_sync_passes_total", exit_code="0") == 1
    assert _one(text, "coin_sync_passes_total", exit_code="1") == 1
    assert _one(text, "coin_sync_pass_duration_seconds_count") == 2
    assert _one(text, "coin_sync_pass_duration_seconds_sum") == 2.0
    assert _one(text, "coin_sync_last_exit_code") == 1
    success = _one(text, "coin_sync_last_success_timestamp_seconds")
    assert success == _one(text, "coin_sync_last_run_timestamp_seconds") - 60
    assert _one(text, "coin_sync_last_pass_symbols", status="failed") == 1
    assert _one(text, "coin_sync_last_pass_backfills") == _one(text, "coin_sync_last_pass_left_to_backend") == 1
    # Only known freshness has a per-symbol series.
    (per_symbol,) = samples(text, "coin_sync_symbol_last_record_timestamp_seconds")
    assert per_symbol.labels == {"symbol": "BTCUSDT"} and per_symbol.value == 1767226200.0


def test_a_pass_that_left_no_summary_still_counts() -> None:
    loop = LoopMetrics()
    loop.record(None, 143, 2.0)
    text = loop.render().decode()
    assert promtool_check(text) == ""
    assert _one(text, "coin_sync_passes_total", exit_code="143") == 1
    assert samples(text, "coin_sync_last_exit_code") == []


def test_unknown_max_lag_is_nan_and_a_lock_held_skip_is_not_a_success(tmp_path: Any) -> None:
    summary = _summary(0, "2026-01-01T00:22:00+00:00", max_lag_seconds=None)
    summary["reason"] = "lock_held"
    text = render(summary, None).decode()
    assert promtool_check(text) == ""
    assert math.isnan(_one(text, "coin_sync_last_pass_max_lag_seconds"))
    loop = LoopMetrics()
    loop.record(summary, 0, 0.1)
    assert samples(loop.render().decode(), "coin_sync_last_success_timestamp_seconds") == []
    (tmp_path / "bad.json").write_text("{")
    assert read_summary(tmp_path / "bad.json") is None and read_summary(tmp_path / "none.json") is None


def test_success_and_statuses_come_from_the_outcome() -> None:
    """Every end reason, as its summary carries it: a success is a pass that ran and exited 0;
    one series per symbol status."""
    for reason in EndReason:
        summary = PassReport(1, "2026-01-01T00:00:00+00:00", reason, signum=signal.SIGTERM).to_dict()
        assert succeeded(summary) is (reason in (EndReason.OK, EndReason.NOTHING_TO_SYNC)), reason
    assert not succeeded({**summary, "exit_code": 0, "reason": "no_such_reason"})
    text = render(_summary(0, "2026-01-01T00:22:00+00:00"), None).decode()
    shown = {dict(s.labels)["status"] for s in samples(text, "coin_sync_last_pass_symbols")}
    assert shown == {str(status) for status in SymbolStatus}


def test_a_pass_without_metrics_imports_neither_prometheus_client_nor_kubernetes(tmp_path: Any) -> None:
    code = (
        "import sys; from coin_sync.cli import main; rc = main(['run']);"
        "print(sorted(m for m in ('prometheus_client', 'kubernetes') if m in sys.modules)); sys.exit(rc)"
    )
    with FakeBackend(symbols=1) as backend:
        env = clean_env(
            LOG_DIR=str(tmp_path / "logs"),
            BACKEND_URL=backend.url,
            K8S_INTEGRATION="auto",
            SYMBOLS_TO_SYNC="BTCUSDT",
            TERMINATION_MESSAGE_PATH=str(tmp_path / "termination-log"),
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("[]")


def test_the_readme_documents_every_metric_and_the_three_queries() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Monitorización con Prometheus", 1)[1].split("\n## ", 1)[0]
    loop = LoopMetrics()
    loop.record(_summary(0, "2026-01-01T00:22:00+00:00"), 0, 0.5)
    names = {family.name for family in text_string_to_metric_families(loop.render().decode())}
    for name in names:
        assert f"`{name}" in section, name
    assert "honor_labels: true" in section
    assert section.count("```promql") == 1 and len(re.findall(r"^[a-z(].*coin_sync_", section, re.M)) >= 3


def test_the_loop_registry_served_over_http_after_two_passes() -> None:
    """The way the loop serves it: prometheus_client's own server on LoopMetrics.registry."""
    loop = LoopMetrics()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=loop.registry)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        for n in (1, 2):
            loop.record(_summary(0, f"2026-01-01T00:2{n}:00+00:00"), 0, 0.5)
        text = requests.get(url, timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert promtool_check(text) == ""
    assert _one(text, "coin_sync_passes_total", exit_code="0") == 2
    assert _one(text, "coin_sync_last_success_timestamp_seconds") == _one(text, "coin_sync_last_run_timestamp_seconds")


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch: Any) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="get-prometheus"):
        prom_tools.tool("no-such-prometheus-tool")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="get-prometheus"):
        prom_tools.tool("no-such-prometheus-tool")
