"""What the backend relays from the exchange: the classification table (messages as the
real backend words them) and what a pass does with each kind."""

from __future__ import annotations

import pytest

from coin_sync.backend.exchange import Verdict, classify
from fake_backend import FakeBackend, error500, exchange_error, ok

KLINES = "https://api.binance.com/api/v3/klines?symbol={}&interval=1m&startTime=1748736000000&limit=1000"


@pytest.mark.parametrize(
    ("message", "verdict", "reason"),
    [
        # Copied from the real backend's 500 bodies (backend-contract.md).
        (f"400, message='Bad Request', url=URL('{KLINES.format('BTCUSTD')}')", Verdict.REJECTED, "400 Bad Request"),
        ('{"code":-1121,"msg":"Invalid symbol."}', Verdict.REJECTED, "-1121 Invalid symbol"),
        ("APIError(code=-1121): Invalid symbol.", Verdict.REJECTED, "-1121"),
        ("Invalid symbol", Verdict.REJECTED, "Invalid symbol"),
        (f"429, message='Too Many Requests', url=URL('{KLINES.format('BTCUSDT')}')", Verdict.RATE_LIMITED, "429"),
        (
            '{"code":-1003,"msg":"Too many requests; current limit is 6000 request weight per 1 MINUTE."}',
            Verdict.RATE_LIMITED,
            "-1003 Too many requests; current limit is 6000 request weight per 1 MINUTE",
        ),
        (f"418, message=\"I'm a Teapot\", url=URL('{KLINES.format('BTCUSDT')}')", Verdict.BANNED, "418 I'm a Teapot"),
        (f"500, message='Internal Server Error', url=URL('{KLINES.format('BTCUSDT')}')", Verdict.TRANSIENT, "500"),
        (f"502, message='Bad Gateway', url=URL('{KLINES.format('BTCUSDT')}')", Verdict.TRANSIENT, "502 Bad Gateway"),
        (f"504, message='Gateway Timeout', url=URL('{KLINES.format('BTCUSDT')}')", Verdict.TRANSIENT, "504"),
        ("Cannot connect to host api.binance.com:443 ssl:default [Connection reset by peer]", Verdict.TRANSIENT, ""),
        ("localhost:27017: [Errno 111] Connection refused", Verdict.TRANSIENT, ""),
        ("Binance rate limit", Verdict.TRANSIENT, ""),
        ("", Verdict.TRANSIENT, ""),
    ],
)
def test_classification_table(message: str, verdict: Verdict, reason: str) -> None:
    got = classify(message)
    assert got.verdict is verdict
    assert got.reason.startswith(reason)
    assert got.permanent is (verdict is Verdict.REJECTED)


def test_an_invalid_symbol_costs_one_call_and_one_error_line(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=3) as backend:
        backend.script("BNBUSDT", exchange_error("invalid_symbol", "BNBUSDT"))
        run = run_pass(BACKEND_URL=backend.url, MAX_RETRIES="3", RETRY_DELAY_SECONDS="10")
        health_probes = len([c for c in backend.calls if c.path == "/health"])
    assert len(backend.sync_calls("BNBUSDT")) == 1
    assert run.clock.sleeps == []  # no retry wait
    assert health_probes == 1  # the backend answered: no "is it still there?" probe
    errors = [line for line in run.log_lines if " ERROR " in line]
    assert len(errors) == 1
    assert "BNBUSDT rechazado por el exchange (400 Bad Request)" in errors[0]
    bnb = next(s for s in run.summary["symbols"] if s["symbol"] == "BNBUSDT")
    assert (bnb["status"], bnb["rejected"], bnb["attempts"]) == ("failed", True, 1)
    totals = run.summary["totals"]
    assert (totals["failed"], totals["rejected"], totals["ok"]) == (1, 1, 2)
    assert run.code == 1  # a typo must not pass for success
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert "fallidos: 1, omitidos: 0, interrumpidos: 0, nuevos registros" in fin  # old fields in place
    assert fin.endswith(", rechazados: 1, con huecos: 0 símbolos (0 minutos)")  # new ones at the end
    assert "rejected=1" in run.report.one_line()


@pytest.mark.parametrize("kind", ["rate_limited", "banned"])
def test_the_exchange_quota_halts_the_pass_and_rejects_nothing(run_pass, kind: str) -> None:  # type: ignore[no-untyped-def]
    # Retrying would keep a ban alive: the pass stops (exit 4), nothing counts as rejected.
    with FakeBackend(symbols=1) as backend:
        backend.script("BTCUSDT", exchange_error(kind), ok(3))
        run = run_pass(BACKEND_URL=backend.url)
    assert (run.code, run.summary["reason"]) == (4, "exchange_limited")
    assert len(backend.sync_calls("BTCUSDT")) == 1
    assert run.summary["totals"]["rejected"] == 0


@pytest.mark.parametrize("kind", ["server_error", "bad_gateway", "gateway_timeout"])
def test_other_exchange_errors_stay_retryable(run_pass, kind: str) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=1) as backend:
        backend.script("BTCUSDT", exchange_error(kind), ok(3))
        run = run_pass(BACKEND_URL=backend.url)
    assert run.code == 0
    assert len(backend.sync_calls("BTCUSDT")) == 2
    assert run.summary["totals"]["rejected"] == 0


def test_a_plain_500_is_not_mistaken_for_a_rejection(run_pass) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=1) as backend:
        backend.script("BTCUSDT", error500("Bad Request from MongoDB driver"), ok())
        assert run_pass(BACKEND_URL=backend.url).code == 0
        assert len(backend.sync_calls("BTCUSDT")) == 2
