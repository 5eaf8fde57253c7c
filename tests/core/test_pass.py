"""A whole pass against the fake backend: in-process on a virtual clock for the policy
(run_pass), as `python -m coin_sync` for what needs the real process (run_cli)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from coin_sync.outcome import SymbolStatus
from fake_backend import FakeBackend, bad_json, error400, error500, hang, ok, rate_limited, status, wrong_json


def test_happy_pass_syncs_every_symbol_once(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    run = run_cli(BACKEND_URL=fake_backend.url)
    assert run.code == 0, run.stdout + run.stderr
    assert sorted(c.symbol for c in fake_backend.sync_calls()) == sorted(fake_backend.symbols)
    for symbol in fake_backend.symbols:
        assert len(run.lines(f"✓ {symbol} sincronizado: ")) == 1
    assert run.lines("INICIO DE SINCRONIZACIÓN #1") and run.lines("FIN DE SINCRONIZACIÓN #1")
    assert run.lines("Cliente del backend inicializado: " + fake_backend.url)
    assert run.lines("SERVICIO DE SINCRONIZACIÓN AUTOMÁTICA")
    assert "Traceback" not in run.stdout + run.stderr


def test_concurrency_is_bounded_and_a_symbol_is_never_in_flight_twice(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=40, latency=0.05) as backend:
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="5")
        assert run.code == 0
        assert backend.peak_in_flight == 5
        assert set(backend.in_flight_by_symbol_peak.values()) == {1}
        assert len(backend.sync_calls()) == 40


def test_concurrency_one_is_sequential(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=6, latency=0.02) as backend:
        assert run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="1").code == 0
        assert backend.peak_in_flight == 1
        calls = backend.sync_calls()
        assert all(a.finished is not None and a.finished <= b.started for a, b in itertools.pairwise(calls))


def test_connections_are_kept_alive(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=30, latency=0.01) as backend:
        assert run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="3").code == 0
        # health + symbols + 30 syncs over at most a few pooled connections, not 32.
        assert backend.connections_opened <= 5


def test_transient_errors_are_retried_then_succeed(fake_backend: FakeBackend, run_pass, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script(
        "BTCUSDT", error500("Binance rate limit"), status(502), status(503, "busy", "text/plain"), ok(4)
    )
    fake_backend.script("ETHUSDT", bad_json(), wrong_json(), ok(1))
    run = run_pass(BACKEND_URL=fake_backend.url)
    assert run.code == 0, run.log_lines
    assert len(fake_backend.sync_calls("BTCUSDT")) == 4
    assert len(fake_backend.sync_calls("ETHUSDT")) == 3
    assert run.lines("HTTP 500: Binance rate limit")
    assert run.lines("✓ BTCUSDT sincronizado: 4 nuevos registros")
    assert run.lines("✓ ETHUSDT sincronizado: 1 nuevo registro") and not run.lines("1 nuevos registros")
    # Issue 18 changed this on purpose: only 503 (and 429) are overload, re-queued without
    # counting; a plain 500 and a 502 are failed attempts, as bad bodies are.
    counts = {s["symbol"]: (s["attempts"], s["requeued"]) for s in run.summary["symbols"]}
    assert counts["BTCUSDT"] == (3, 1) and counts["ETHUSDT"] == (3, 0)
    assert len(run.lines("BTCUSDT: el backend no admite más carga")) == 1
    assert len(run.lines("↻ BTCUSDT")) == 2


def test_retries_stop_at_max_retries(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", error500("down"))
    run = run_pass(BACKEND_URL=fake_backend.url, MAX_RETRIES="2")
    assert run.code == 1
    # MAX_RETRIES means what it says (issue 18; it was OVERLOAD_REQUEUES + 3 = 8 calls, a
    # 500 taken for overload): a plain 500 forever is called MAX_RETRIES + 1 times.
    assert len(fake_backend.sync_calls("BTCUSDT")) == 3
    assert len(run.lines("↻ BTCUSDT: intento")) == 2
    (line,) = run.lines("✗ BTCUSDT")
    assert " ERROR " in line and "3 intento" in line and "HTTP 500: down" in line
    assert len(run_pass(BACKEND_URL=fake_backend.url, MAX_RETRIES="0").lines("✗ BTCUSDT falló tras 1 intento")) == 1


def test_client_errors_are_not_retried_and_both_shapes_show_the_message(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", error400("El parámetro 'symbol' es requerido"))
    fake_backend.script("ETHUSDT", error400(shape="docs"))
    fake_backend.script("BNBUSDT", status(404, '{"error": true, "message": "no existe"}', "application/json"))
    run = run_pass(BACKEND_URL=fake_backend.url)
    assert run.code == 1
    for symbol in ("BTCUSDT", "ETHUSDT", "BNBUSDT"):
        assert len(fake_backend.sync_calls(symbol)) == 1
    assert run.lines("HTTP 400: El parámetro 'symbol' es requerido")
    assert run.lines("HTTP 400: Symbol is required")
    assert run.lines("HTTP 404: no existe")


def test_retry_after_seconds_is_a_minimum_wait(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", rate_limited("1"), ok())
    run = run_pass(BACKEND_URL=fake_backend.url)
    assert run.code == 0
    assert len(fake_backend.sync_calls("BTCUSDT")) == 2
    assert run.clock.sleeps == [1.0]  # RETRY_DELAY_SECONDS alone would be ~0.01 s


def test_retry_after_http_date(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    fake_backend.script("BTCUSDT", rate_limited(when), ok())
    run = run_pass(BACKEND_URL=fake_backend.url)
    assert run.code == 0
    assert len(fake_backend.sync_calls("BTCUSDT")) == 2
    # The date has 1 s resolution and is read a moment later: ~59-60 s on the virtual
    # clock (free), where RETRY_DELAY_SECONDS alone would be 0.01 s. One wait, cut in
    # pieces by the progress line's wake-ups.
    wait = sum(run.clock.sleeps)
    assert 45 <= wait <= 60


def test_read_timeout_is_not_resent_while_the_backend_may_still_sync(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    # The contract: two syncs of the same symbol at once can insert duplicates.
    fake_backend.script("BTCUSDT", hang(1.5), ok(2))
    run = run_pass(BACKEND_URL=fake_backend.url, HTTP_TIMEOUT="0.3")
    assert run.code == 1
    assert run.clock.sleeps == []  # no retry wait either
    assert len(fake_backend.sync_calls("BTCUSDT")) == 1
    assert fake_backend.in_flight_by_symbol_peak["BTCUSDT"] == 1
    assert run.lines("✗ BTCUSDT falló tras 1 intento(s): timeout de lectura (0.3 s) (el backend puede seguir")


def test_gateway_504_on_sync_is_not_resent_but_on_the_symbol_list_it_is(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", status(504, "<html>Gateway Timeout</html>"), ok())
    fake_backend.script_symbols(status(504), ok())
    run = run_pass(BACKEND_URL=fake_backend.url)
    assert run.code == 1
    assert len(fake_backend.sync_calls("BTCUSDT")) == 1
    assert len([c for c in fake_backend.calls if c.path == "/api/symbols"]) == 2


def test_success_false_fails_at_once(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", wrong_json({"success": False, "error": "símbolo desconocido"}))
    run = run_pass(BACKEND_URL=fake_backend.url)
    assert run.code == 1
    assert len(fake_backend.sync_calls("BTCUSDT")) == 1
    assert run.lines("success=false: símbolo desconocido")


def test_absurd_retry_after_cannot_hang_the_pass(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", rate_limited("99999999999999999999"))
    run = run_pass(BACKEND_URL=fake_backend.url, PASS_DEADLINE_SECONDS="1")
    assert run.code == 1
    assert run.lines("vuelve a la cola en 3600.00 s")  # one wait is clamped to an hour


def test_backend_never_healthy_exits_3(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.set_healthy(False)
    run = run_pass(BACKEND_URL=fake_backend.url, BACKEND_WAIT_SECONDS="1")
    assert run.code == 3
    assert sum(run.clock.sleeps) == pytest.approx(1.0)  # waited out the budget, no more
    assert not fake_backend.sync_calls()
    assert run.lines("FIN DE SINCRONIZACIÓN #1") and "backend_unavailable" in run.lines("FIN DE")[0]


def test_refused_connection_exits_3(free_port: int, run_cli) -> None:  # type: ignore[no-untyped-def]
    run = run_cli(BACKEND_URL=f"http://127.0.0.1:{free_port}", BACKEND_WAIT_SECONDS="0.5")
    assert run.code == 3
    assert run.lines("Connection refused")
    assert "Traceback" not in run.stdout + run.stderr


def test_health_wait_rides_out_a_short_outage(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    down = status(503, json.dumps({"status": "unhealthy"}), "application/json")
    fake_backend.health_answers(down, down, down, down, down, ok())
    run = run_pass(BACKEND_URL=fake_backend.url, BACKEND_WAIT_SECONDS="10")
    assert run.code == 0
    assert run.lines("Backend no disponible (HTTP 503")
    assert len([c for c in fake_backend.calls if c.path == "/health"]) == 6
    assert run.clock.sleeps == [0.5, 1.0, 2.0, 4.0, 2.5]  # waits grow, the last one fits the budget


def test_health_200_with_wrong_body_is_not_healthy(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.health_answers(wrong_json({"status": "starting"}))
    assert run_pass(BACKEND_URL=fake_backend.url, BACKEND_WAIT_SECONDS="0.5").code == 3


def test_unusable_symbol_list_exits_3_after_retries(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script_symbols(error500("Mongo caído"))
    run = run_pass(BACKEND_URL=fake_backend.url, MAX_RETRIES="2")
    assert run.code == 3
    assert len([c for c in fake_backend.calls if c.path == "/api/symbols"]) == 3
    assert run.lines("Mongo caído")


def test_symbol_list_retried_then_used(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script_symbols(status(502), ok())
    assert run_pass(BACKEND_URL=fake_backend.url).code == 0
    assert len(fake_backend.sync_calls()) == 3


def test_bare_list_shape(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=4, symbols_shape="strings") as backend:
        assert run_pass(BACKEND_URL=backend.url).code == 0
        assert len(backend.sync_calls()) == 4


def test_empty_backend_is_a_warning_and_exit_0(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=[]) as backend:
        run = run_pass(BACKEND_URL=backend.url)
        assert run.code == 0
        assert [line for line in run.lines("No hay símbolos que sincronizar") if " WARNING " in line]


def test_symbols_to_sync_is_used_as_given_and_normalised(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    run = run_pass(BACKEND_URL=fake_backend.url, SYMBOLS_TO_SYNC=" newcoinusdt,BTCUSDT,btcusdt,BAD COIN,币安人生usdt")
    assert run.code == 0
    assert [c.symbol for c in sorted(fake_backend.sync_calls(), key=lambda c: c.symbol or "")] == sorted(
        ["NEWCOINUSDT", "BTCUSDT", "币安人生USDT"]
    )
    assert not [c for c in fake_backend.calls if c.path == "/api/symbols"]
    (warning,) = run.lines("Símbolo inválido ignorado")
    assert "'BAD COIN'" in warning and " WARNING " in warning


def test_bad_symbol_from_backend_is_escaped_in_the_log(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=["BTCUSDT", "EVIL\n2026-01-01 00:00:00 - coin_sync - INFO - forged"]) as backend:
        run = run_pass(BACKEND_URL=backend.url)
        assert run.code == 0
        assert not any("\n" in line for line in run.log_lines)
        assert run.lines("'EVIL\\n2026-01-01")


def test_backend_gone_mid_pass_stops_early_with_exit_3(run_pass, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=60, latency=0.01) as backend:
        backend.die_after_syncs(5)
        run = run_pass(
            BACKEND_URL=backend.url,
            SYNC_CONCURRENCY="2",
            MAX_RETRIES="3",
            RETRY_DELAY_SECONDS="0.2",
            RETRY_MAX_DELAY_SECONDS="0.2",
        )
        calls = len(backend.sync_calls())
    summary = run.summary
    assert run.code == 3
    assert summary["reason"] == "backend_lost" and summary["exit_code"] == 3
    assert summary["totals"]["skipped"] >= 50
    assert calls <= 5 + 2 * 4  # not 55 symbols x 4 attempts
    assert run.lines("El backend dejó de responder")


def test_deadline_stops_dispatching_and_reports_skipped(run_pass, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=30) as backend:
        # Each sync costs 0.2 virtual seconds: the 0.5 s deadline falls after a few.
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="2", PASS_DEADLINE_SECONDS="0.5", sync_cost=0.2)
        synced = len(backend.sync_calls())
    summary = run.summary
    assert run.code == 1
    assert summary["reason"] == "deadline"
    assert summary["totals"]["ok"] == synced and 2 <= synced <= 10
    assert summary["totals"]["skipped"] == 30 - synced
    assert run.lines("Límite de la pasada")


def test_summary_file_and_termination_message(fake_backend: FakeBackend, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("ETHUSDT", error400("nope"))
    summary_path = tmp_path / "out" / "summary.json"
    termination = tmp_path / "termination-log"
    termination.write_text("")
    run = run_cli(
        BACKEND_URL=fake_backend.url, SUMMARY_FILE=str(summary_path), TERMINATION_MESSAGE_PATH=str(termination)
    )
    assert run.code == 1
    summary = json.loads(summary_path.read_text())
    assert summary["exit_code"] == 1 and summary["reason"] == "symbols_failed"
    assert summary["totals"]["ok"] == 2 and summary["totals"]["failed"] == 1
    assert summary["totals"]["new_records"] == sum(s["new_records"] for s in summary["symbols"]) > 0
    assert {"duration", "skipped"} <= set(summary["totals"])
    eth = next(s for s in summary["symbols"] if s["symbol"] == "ETHUSDT")
    assert eth["status"] == "failed" and eth["attempts"] == 1 and "nope" in eth["error"] and "duration" in eth
    compact = json.loads(termination.read_text())
    assert compact["exit_code"] == 1 and compact["failed_symbols"][0]["symbol"] == "ETHUSDT"


def test_termination_message_fits_4kb_with_many_failures(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=200) as backend:
        for symbol in backend.symbols:
            backend.script(symbol, error400("x" * 250))
        termination = tmp_path / "termination-log"
        termination.write_text("")
        assert run_cli(BACKEND_URL=backend.url, TERMINATION_MESSAGE_PATH=str(termination)).code == 1
    text = termination.read_text()
    assert len(text.encode()) <= 4096
    assert json.loads(text)["failed"] == 200


def test_no_termination_file_outside_a_pod(fake_backend: FakeBackend, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "no-such-dir" / "termination-log"
    assert run_cli(BACKEND_URL=fake_backend.url, TERMINATION_MESSAGE_PATH=str(missing)).code == 0
    assert not missing.exists()


def test_token_is_sent_and_never_logged(fake_backend: FakeBackend, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = "tok-3f9a8b7c6d5e"
    run = run_cli(
        BACKEND_URL=fake_backend.url, BACKEND_TOKEN=secret, LOG_LEVEL="DEBUG", SUMMARY_FILE=str(tmp_path / "s.json")
    )
    assert run.code == 0
    assert {c.header("Authorization") for c in fake_backend.calls} == {f"Bearer {secret}"}
    everything = run.stdout + run.stderr + "".join(run.log_files().values()) + (tmp_path / "s.json").read_text()
    assert secret not in everything
    assert run.lines("BACKEND_TOKEN: ****")


def test_sharding_partitions_the_symbols_across_passes(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=40) as backend:
        for index in range(3):
            assert run_pass(BACKEND_URL=backend.url, SHARD_COUNT="3", JOB_COMPLETION_INDEX=str(index)).code == 0
        synced = [c.symbol for c in backend.sync_calls()]
        assert sorted(synced) == sorted(backend.symbols)  # each exactly once over the three shards


def test_deadline_after_everything_was_dispatched_is_not_a_failure(run_pass, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=2) as backend:
        run = run_pass(BACKEND_URL=backend.url, PASS_DEADLINE_SECONDS="0.3", sync_cost=0.8)
    summary = run.summary
    assert run.code == 0 and summary["reason"] == "ok" and summary["totals"]["ok"] == 2


def test_listed_names_the_exchange_cannot_have_are_warned_and_skipped(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=["BTCUSDT", "@@@", "ÑOÑO", "币安人生USDT"]) as backend:
        run = run_pass(BACKEND_URL=backend.url)
        assert run.code == 0
        assert sorted(c.symbol or "" for c in backend.sync_calls()) == ["BTCUSDT", "币安人生USDT"]
        assert len(run.lines("Símbolo inválido ignorado")) == 2 and run.lines("'ÑOÑO' (carácter no permitido 'Ñ'")


def test_empty_entries_and_a_trailing_comma_are_not_warned_about(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    run = run_pass(BACKEND_URL=fake_backend.url, SYMBOLS_TO_SYNC="BTCUSDT,,ETHUSDT,")
    assert run.code == 0 and run.report.count(SymbolStatus.OK) == 2
    assert not run.lines("Símbolo inválido")
