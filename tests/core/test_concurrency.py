"""The pool against the fake backend (in-process, virtual clock): adaptive concurrency,
overload re-queued without counting, the budget, the exchange's quota."""

from __future__ import annotations

from coin_sync.sync.limiter import INITIAL_LIMIT
from fake_backend import FakeBackend, Load, bad_json, error500, ok


def test_the_limiter_grows_on_a_fast_backend(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=300, latency=0.01) as backend:
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="auto", SYNC_CONCURRENCY_MAX="24")
        assert run.code == 0 and len(backend.sync_calls()) == 300
        assert INITIAL_LIMIT < backend.peak_in_flight <= 24
    assert run.summary["concurrency"]["max"] >= backend.peak_in_flight
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN #1")
    assert "código de salida: 0 (ok), desactualizados: 0" in fin
    assert fin.endswith(
        f", concurrencia: en vuelo máx {run.report.concurrency_max}, límite final 24"
        ", con huecos: 0 símbolos (0 minutos)"
    )


def test_the_limiter_shrinks_on_rejections_and_they_are_not_failed_attempts(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=300, latency=0.01, load=Load(capacity=6)) as backend:
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY_MAX="32")
        rejected = backend.pressure.rejected
        calls = len(backend.sync_calls())
        assert set(backend.in_flight_by_symbol_peak.values()) == {1}  # re-queued, never doubled
    symbols = run.summary["symbols"]
    assert run.code == 0 and run.summary["totals"]["ok"] == 300
    assert rejected > 0 and calls == 300 + rejected
    assert sum(s["requeued"] for s in symbols) == rejected
    assert sum(s["attempts"] for s in symbols) == 300  # one counted attempt each
    assert not run.lines("↻ ")
    assert run.report.concurrency_final < 12  # about the cap (6), far from the maximum (32)
    assert rejected < calls * 0.2


def test_a_fixed_concurrency_never_exceeds_n_nor_adapts(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=80, latency=0.02, load=Load(capacity=3)) as backend:
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="4")
        assert backend.peak_in_flight == 4
        assert set(backend.in_flight_by_symbol_peak.values()) == {1}
    assert run.code == 0 and (run.report.concurrency_max, run.report.concurrency_final) == (4, 4)


def test_a_retry_wait_does_not_hold_a_worker(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=10) as backend:
        backend.script("BTCUSDT", bad_json(), bad_json(), bad_json(), ok())
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="1", RETRY_DELAY_SECONDS="30", MAX_RETRIES="3")
        order = [c.symbol for c in backend.sync_calls()]
    assert run.code == 0
    # With one worker, the other nine all ran while BTCUSDT waited for its retry.
    assert order[0] == "BTCUSDT" and order[1:10] == backend.symbols[1:] and order[10:] == ["BTCUSDT"] * 3


def test_no_retry_is_scheduled_past_the_budget(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=3) as backend:
        backend.script("BTCUSDT", bad_json())
        run = run_pass(
            BACKEND_URL=backend.url,
            RETRY_DELAY_SECONDS="10",
            RETRY_MAX_DELAY_SECONDS="60",
            MAX_RETRIES="5",
            PASS_BUDGET_SECONDS="20",
        )
        btc = backend.sync_calls("BTCUSDT")
    # 0 s: fails, retry in 7.5-12.5 s; then fails again, and the next wait (15-25 s)
    # would end past 20 s: it fails now instead.
    assert len(btc) == 2
    assert len(run.lines("↻ BTCUSDT: intento 1 de 6 falló")) == 1
    (line,) = run.lines("✗ BTCUSDT falló tras 2 intento(s)")
    assert " ERROR " in line and "se reintentará en la próxima pasada" in line
    assert run.code == 1 and run.summary["reason"] == "symbols_failed" and run.summary["totals"]["ok"] == 2
    assert run.report.duration < 20  # virtual seconds: it did not wait for the budget


def test_dispatch_stops_at_the_budget(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=30) as backend:
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="2", PASS_BUDGET_SECONDS="0.5", sync_cost=0.2)
        synced = len(backend.sync_calls())
    assert run.code == 1 and run.summary["reason"] == "deadline"
    assert run.summary["totals"]["skipped"] == 30 - synced and synced < 30
    assert run.lines("Presupuesto de la pasada (0.5 s) agotado: no se despachan más símbolos")


def test_the_exchange_quota_stops_dispatch_and_exits_4(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=200, latency=0.01, load=Load(quota=(20, 60))) as backend:
        run = run_pass(BACKEND_URL=backend.url, SYNC_CONCURRENCY="8")
        first = backend.pressure.quota_answers[0]
        further = [c for c in backend.sync_calls() if c.started > first]
    assert run.code == 4 and run.summary["reason"] == "exchange_limited"
    assert len(further) <= 8  # at most what was in flight: nothing new after the first answer
    totals = run.summary["totals"]
    assert totals["failed"] == 0 and totals["ok"] == 20 and totals["skipped"] == 180
    (line,) = run.lines("Pasada detenida: el exchange limitó al backend (429 Too Many Requests)")
    assert " ERROR " in line and "símbolos omitidos" in line
    assert not run.lines("↻ ") and not run.lines("✗ ")
    assert run.lines("FIN DE SINCRONIZACIÓN #1 (DETENIDA: cuota del exchange agotada)")


def test_a_ban_is_not_retried_either(fake_backend: FakeBackend, run_pass) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", error500("418, message=\"I'm a Teapot\", url=URL('https://api.binance.com')"))
    run = run_pass(BACKEND_URL=fake_backend.url, SYNC_CONCURRENCY="1")
    assert run.code == 4 and len(fake_backend.sync_calls("BTCUSDT")) == 1
    assert len(fake_backend.sync_calls()) == 1  # BTCUSDT goes first: nothing after it
    statuses = {s["symbol"]: (s["status"], s["error"]) for s in run.summary["symbols"]}
    assert all(status == "skipped" and "418" in (error or "") for status, error in statuses.values())
