"""Real passes push to a real Pushgateway (Debian's prometheus-pushgateway)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from coin_sync.config.settings import MetricsSettings
from coin_sync.observe.metrics import publish_metrics, push
from fake_backend import FakeBackend, error400
from prom_tools import Server, promtool_check

RunPass = Callable[..., Any]  # the run_coin_sync fixture (conftest.py)
GROUP = {"job": "coin-sync", "namespace": "prod", "cronjob": "coin-sync", "shard": "0"}


def _ours(server: Server, name: str) -> dict[str, float]:
    """name's samples as {symbol-or-status-or-"": value}, after checking each carries the
    grouping key and no timestamp."""
    found = {}
    for sample in server.samples(name):
        labels = dict(sample.labels)
        assert sample.timestamp is None, sample
        assert labels.pop("instance", "") == ""  # the gateway's own empty instance, never ours
        key = labels.pop("symbol", None) or labels.pop("status", None) or ""
        assert labels == GROUP, sample
        found[key] = sample.value
    return found


def test_a_pass_pushes_every_metric_with_the_grouping_key(
    fake_backend: FakeBackend, run_coin_sync: RunPass, pushgateway: Server
) -> None:
    run = run_coin_sync(
        BACKEND_URL=fake_backend.url,
        METRICS_PUSHGATEWAY_URL=pushgateway.url,
        POD_NAMESPACE="prod",
        CRONJOB_NAME="coin-sync",
    )
    assert run.code == 0, run.stdout + run.stderr
    assert run.lines("Métricas enviadas al Pushgateway")
    text = pushgateway.metrics_text()
    assert promtool_check(text) == ""
    assert _ours(pushgateway, "coin_sync_last_exit_code") == {"": 0}
    by_status = _ours(pushgateway, "coin_sync_last_pass_symbols")
    assert by_status == {"ok": 3, "failed": 0, "skipped": 0, "interrupted": 0}
    assert sum(by_status.values()) == run.summary["totals"]["symbols"]
    last_run = _ours(pushgateway, "coin_sync_last_run_timestamp_seconds")[""]
    assert _ours(pushgateway, "coin_sync_last_success_timestamp_seconds") == {"": last_run}
    per_symbol = _ours(pushgateway, "coin_sync_symbol_last_record_timestamp_seconds")
    assert set(per_symbol) == set(fake_backend.symbols)
    assert all(last_run - 3600 < when < last_run for when in per_symbol.values())
    assert _ours(pushgateway, "coin_sync_last_pass_stale_symbols") == {"": 0}
    assert _ours(pushgateway, "coin_sync_last_pass_new_records") == {"": run.summary["totals"]["new_records"]}
    assert _ours(pushgateway, "coin_sync_last_pass_retries") == {"": 0}
    # Under a minute when read and judged within one minute; a minute boundary between
    # the sync answer and the judgement adds up to 60 s (real clocks here).
    assert 0 <= _ours(pushgateway, "coin_sync_last_pass_max_lag_seconds")[""] < 120
    assert _ours(pushgateway, "coin_sync_last_pass_duration_seconds")[""] >= 0


def test_a_failed_pass_keeps_the_last_success_and_symbols_are_replaced_whole(
    run_coin_sync: RunPass, pushgateway: Server
) -> None:
    env = {"METRICS_PUSHGATEWAY_URL": pushgateway.url, "POD_NAMESPACE": "prod", "CRONJOB_NAME": "coin-sync"}
    with FakeBackend(symbols=4) as backend:
        assert run_coin_sync(BACKEND_URL=backend.url, **env).code == 0
        success = _ours(pushgateway, "coin_sync_last_success_timestamp_seconds")[""]
        assert len(_ours(pushgateway, "coin_sync_symbol_last_record_timestamp_seconds")) == 4

        gone = backend.symbols.pop()  # delisted: the next pass never sees it
        backend.script(backend.symbols[0], error400("nope"))
        failed = run_coin_sync(BACKEND_URL=backend.url, **env)
        assert failed.code == 1
    assert _ours(pushgateway, "coin_sync_last_exit_code") == {"": 1}
    assert _ours(pushgateway, "coin_sync_last_success_timestamp_seconds") == {"": success}
    assert _ours(pushgateway, "coin_sync_last_run_timestamp_seconds")[""] >= success
    assert _ours(pushgateway, "coin_sync_last_pass_symbols")["failed"] == 1
    per_symbol = _ours(pushgateway, "coin_sync_symbol_last_record_timestamp_seconds")
    assert gone not in per_symbol and set(per_symbol) == set(backend.symbols)


def test_shards_and_jobs_are_separate_groups(
    fake_backend: FakeBackend, run_coin_sync: RunPass, pushgateway: Server
) -> None:
    for index in ("0", "1"):
        run = run_coin_sync(
            BACKEND_URL=fake_backend.url,
            METRICS_PUSHGATEWAY_URL=pushgateway.url,
            SHARD_COUNT="2",
            SHARD_INDEX=index,
            METRICS_JOB="coin-sync-test",
        )
        assert run.code == 0
    groups = {
        (dict(s.labels)["job"], dict(s.labels)["shard"], "namespace" in dict(s.labels))
        for s in pushgateway.samples("coin_sync_last_exit_code")
    }
    assert groups == {("coin-sync-test", "0", False), ("coin-sync-test", "1", False)}


@pytest.mark.parametrize("scripted", [False, True])
def test_an_unreachable_gateway_is_one_warning_and_the_same_exit_code(
    fake_backend: FakeBackend, run_coin_sync: RunPass, free_port: int, scripted: bool
) -> None:
    if scripted:
        fake_backend.script("ETHUSDT", error400("nope"))
    run = run_coin_sync(BACKEND_URL=fake_backend.url, METRICS_PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port}")
    assert run.code == (1 if scripted else 0), run.stdout + run.stderr
    (warning,) = run.lines("Pushgateway")
    assert " WARNING " in warning and "No se pudieron enviar las métricas" in warning
    assert run.summary["exit_code"] == run.code and run.summary["reason"] == ("symbols_failed" if scripted else "ok")
    assert "Traceback" not in run.stdout + run.stderr


@pytest.fixture
def silent_gateway() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


SUMMARY: dict[str, Any] = {
    "exit_code": 0,
    "reason": "ok",
    "finished_at": "2026-01-01T00:00:00+00:00",
    "shard": {"index": 0, "count": 1},
    "totals": {
        "symbols": 0,
        "ok": 0,
        "failed": 0,
        "skipped": 0,
        "interrupted": 0,
        "new_records": 0,
        "duration": 0.1,
        "retries": 0,
        "stale": 0,
        "freshness_unknown": 0,
        "max_lag_seconds": None,
        "backfills": 0,
        "left_to_backend": 0,
    },
    "symbols": [],
}


def test_a_push_that_hangs_ends_within_its_timeout_with_one_warning(silent_gateway: str, caplog: Any) -> None:
    settings = MetricsSettings(pushgateway_url=silent_gateway)
    with pytest.raises(TimeoutError):
        push(SUMMARY, settings, {"shard": "0"}, timeout=0.3)
    log = logging.getLogger("coin_sync.test.push")
    with caplog.at_level(logging.INFO, logger=log.name):
        publish_metrics(SUMMARY, settings, log, {})
    assert [r.levelname for r in caplog.records] == ["WARNING"]


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Recorder.seen.append((self.command, self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_basic_auth_is_sent_and_never_logged(fake_backend: FakeBackend, run_coin_sync: RunPass, tmp_path: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "password"
    secret.write_text("s3cr3t-pw\n")
    try:
        run = run_coin_sync(
            BACKEND_URL=fake_backend.url,
            METRICS_PUSHGATEWAY_URL=f"http://127.0.0.1:{server.server_address[1]}",
            METRICS_PUSHGATEWAY_USERNAME="coin",
            METRICS_PUSHGATEWAY_PASSWORD_FILE=str(secret),
            POD_NAMESPACE="prod",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert run.code == 0
    ((method, path, auth),) = _Recorder.seen
    assert method == "POST" and path == "/metrics/job/coin-sync/namespace/prod/shard/0"
    assert auth == "Basic Y29pbjpzM2NyM3QtcHc="  # coin:s3cr3t-pw
    assert "s3cr3t" not in run.stdout + run.stderr
    assert run.lines("METRICS_PUSHGATEWAY_PASSWORD: ****")


def test_a_stale_pass_under_fail_on_stale(run_coin_sync: RunPass, pushgateway: Server) -> None:
    with FakeBackend(["BTCUSDT", "ETHUSDT", "BNBUSDT"], frozen={"ETHUSDT"}, lags={"ETHUSDT": 900}) as backend:
        backend.bad_timestamp("BNBUSDT", "garbage")
        run = run_coin_sync(
            BACKEND_URL=backend.url,
            METRICS_PUSHGATEWAY_URL=pushgateway.url,
            FAIL_ON_STALE="true",
            POD_NAMESPACE="prod",
            CRONJOB_NAME="coin-sync",
        )
    assert run.code == 1 and run.summary["reason"] == "stale", run.stdout
    assert len(run.lines("⚠ ETHUSDT desactualizado")) == 1 and len(run.lines("⚠ BNBUSDT: frescura desconocida")) == 1
    assert _ours(pushgateway, "coin_sync_last_exit_code") == {"": 1}
    assert _ours(pushgateway, "coin_sync_last_pass_stale_symbols") == {"": 1}
    assert (
        _ours(pushgateway, "coin_sync_last_pass_max_lag_seconds")[""] == run.summary["totals"]["max_lag_seconds"] > 900
    )
    assert _ours(pushgateway, "coin_sync_last_pass_symbols")["ok"] == 3
    assert pushgateway.samples("coin_sync_last_success_timestamp_seconds") == []  # never succeeded
    per_symbol = _ours(pushgateway, "coin_sync_symbol_last_record_timestamp_seconds")
    assert set(per_symbol) == {"BTCUSDT", "ETHUSDT"}  # BNBUSDT's freshness is unknown
    assert per_symbol["BTCUSDT"] - per_symbol["ETHUSDT"] >= 900
