"""Quick checks of the fake backend itself: the other suites trust it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from fake_backend import (
    BAD_TIMESTAMPS,
    FakeBackend,
    bad_json,
    error400,
    error500,
    exchange_error,
    generate_symbols,
    hang,
    ok,
    rate_limited,
    status,
    wrong_json,
)

SCRIPT = str(Path(__file__).resolve().parent / "fake_backend.py")


def sync(
    backend: FakeBackend, symbol: str, session: requests.Session | None = None, timeout: float = 5
) -> requests.Response:
    return (session or requests).post(f"{backend.url}/api/sync", json={"symbol": symbol}, timeout=timeout)


def test_health_down_for_a_while_then_up(fake_backend: FakeBackend) -> None:
    fake_backend.unhealthy_for(0.3)
    down = requests.get(f"{fake_backend.url}/health", timeout=5)
    assert down.status_code == 503 and down.json()["status"] == "unhealthy"
    time.sleep(0.35)
    up = requests.get(f"{fake_backend.url}/health", timeout=5)
    assert up.status_code == 200 and up.json()["status"] == "healthy"
    fake_backend.set_healthy(False)
    assert requests.get(f"{fake_backend.url}/health", timeout=5).status_code == 503
    fake_backend.health_answers(wrong_json(), ok())
    bodies = [requests.get(f"{fake_backend.url}/health", timeout=5).json() for _ in range(3)]
    assert bodies[0] == {"unexpected": 1} and bodies[2]["status"] == "healthy"


def test_symbols_both_shapes(fake_backend: FakeBackend) -> None:
    body = requests.get(f"{fake_backend.url}/api/symbols", timeout=5).json()
    assert body["success"] is True and body["count"] == 3
    assert [s["symbol"] for s in body["symbols"]] == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    assert {"total_records", "first_record", "last_record", "last_price"} <= set(body["symbols"][0])
    fake_backend.symbols_shape = "strings"
    assert requests.get(f"{fake_backend.url}/api/symbols", timeout=5).json() == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    fake_backend.symbols = []
    fake_backend.symbols_shape = "objects"
    assert requests.get(f"{fake_backend.url}/api/symbols", timeout=5).json() == {
        "success": True,
        "count": 0,
        "symbols": [],
    }
    names = generate_symbols(5000)
    assert len(set(names)) == 5000 and names[-1] == "C4999USDT"


def test_first_sync_backlog_then_zero_or_one(fake_backend: FakeBackend) -> None:
    first = sync(fake_backend, "NEWCOINUSDT").json()  # not listed: backfilled anyway
    assert first["success"] is True and first["symbol"] == "NEWCOINUSDT"
    assert 1 <= first["new_records"] <= 500
    assert first["statistics"]["symbol"] == "NEWCOINUSDT"
    assert {sync(fake_backend, "NEWCOINUSDT").json()["new_records"] for _ in range(4)} <= {0, 1}
    with FakeBackend() as other:  # deterministic across instances
        assert sync(other, "NEWCOINUSDT").json()["new_records"] == first["new_records"]


def test_scripted_sequence_and_last_repeats(fake_backend: FakeBackend) -> None:
    fake_backend.script("BTCUSDT", error500(), status(502), bad_json(), ok(5))
    with requests.Session() as s:
        answers = [sync(fake_backend, "BTCUSDT", s) for _ in range(6)]
    assert [a.status_code for a in answers] == [500, 502, 200, 200, 200, 200]
    assert answers[0].json() == {"error": True, "message": "Binance rate limit"}
    assert answers[1].text == "<html>Bad Gateway</html>"
    with pytest.raises(ValueError):
        answers[2].json()
    assert [a.json()["new_records"] for a in answers[3:]] == [5, 5, 5]
    assert sync(fake_backend, "ETHUSDT").status_code == 200  # scripts are per symbol
    assert len(fake_backend.sync_calls("BTCUSDT")) == 6


def test_exchange_errors_in_the_real_backends_shape(fake_backend: FakeBackend) -> None:
    fake_backend.script("BTCUSTD", exchange_error("invalid_symbol", "BTCUSTD"))
    answer = sync(fake_backend, "BTCUSTD")
    assert answer.status_code == 500
    body = answer.json()
    assert body["error"] is True
    assert body["message"].startswith("400, message='Bad Request', url=URL('https://api.binance.com/api/v3/klines?")
    assert "symbol=BTCUSTD&" in body["message"]
    fake_backend.script("BTCUSDT", exchange_error("banned"), exchange_error("rate_limited"))
    assert sync(fake_backend, "BTCUSDT").json()["message"].startswith('418, message="I\'m a Teapot", url=URL(')
    assert sync(fake_backend, "BTCUSDT").json()["message"].startswith("429, message='Too Many Requests'")
    with pytest.raises(ValueError):
        exchange_error("nope")


def test_a_new_symbol_is_listed_only_once_its_first_backfill_finished(fake_backend: FakeBackend) -> None:
    def listed() -> list[str]:
        return [r["symbol"] for r in requests.get(f"{fake_backend.url}/api/symbols", timeout=5).json()["symbols"]]

    fake_backend.add_new_symbol("NEWUSDT", backfill=0.5)
    assert "NEWUSDT" not in listed()
    with pytest.raises(requests.ReadTimeout):
        sync(fake_backend, "NEWUSDT", timeout=0.1)
    assert "NEWUSDT" not in listed()  # still backfilling
    (call,) = fake_backend.sync_calls("NEWUSDT")
    end = time.monotonic() + 10
    while call.finished is None and time.monotonic() < end:
        time.sleep(0.02)
    assert "NEWUSDT" in listed()
    assert sync(fake_backend, "NEWUSDT").status_code == 200
    assert listed().count("NEWUSDT") == 1


def test_paused_syncs_wait_for_resume(fake_backend: FakeBackend) -> None:
    fake_backend.pause_syncs()
    with pytest.raises(requests.ReadTimeout):
        sync(fake_backend, "BTCUSDT", timeout=0.2)
    fake_backend.resume_syncs()
    assert sync(fake_backend, "ETHUSDT").status_code == 200


def test_rate_limited_sends_retry_after(fake_backend: FakeBackend) -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    fake_backend.script("BTCUSDT", rate_limited("2"), rate_limited(date))
    first, second = sync(fake_backend, "BTCUSDT"), sync(fake_backend, "BTCUSDT")
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert second.headers["Retry-After"] == date


def test_400_shapes(fake_backend: FakeBackend) -> None:
    url = f"{fake_backend.url}/api/sync"
    missing = requests.post(url, json={}, timeout=5)
    garbage = requests.post(url, data=b"not json", timeout=5)
    for answer in (missing, garbage):
        assert answer.status_code == 400
        assert answer.json() == {"error": True, "message": "El parámetro 'symbol' es requerido"}
    fake_backend.script("BTCUSDT", error400(shape="docs"))
    assert sync(fake_backend, "BTCUSDT").json() == {"success": False, "error": "Symbol is required"}
    assert requests.get(f"{fake_backend.url}/nope", timeout=5).status_code == 404


def test_records_headers_body_and_timing(fake_backend: FakeBackend) -> None:
    fake_backend.latency = 0.05
    requests.post(
        f"{fake_backend.url}/api/sync",
        json={"symbol": "BTCUSDT"},
        headers={"Authorization": "Bearer s3cret"},
        timeout=5,
    )
    (call,) = fake_backend.sync_calls()
    assert call.symbol == "BTCUSDT" and call.status == 200 and b"BTCUSDT" in call.body
    assert call.header("authorization") == "Bearer s3cret"
    assert call.finished is not None and call.finished - call.started >= 0.05
    fake_backend.reset_records()
    assert fake_backend.calls == [] and fake_backend.peak_in_flight == 0


def test_hang_triggers_client_read_timeout(fake_backend: FakeBackend) -> None:
    fake_backend.script("BTCUSDT", hang(1.0))
    with pytest.raises(requests.ReadTimeout):
        sync(fake_backend, "BTCUSDT", timeout=0.2)


def test_die_after_syncs_refuses_further_requests(fake_backend: FakeBackend) -> None:
    fake_backend.die_after_syncs(2)
    with requests.Session() as s:
        assert sync(fake_backend, "BTCUSDT", s).status_code == 200
        assert sync(fake_backend, "ETHUSDT", s).status_code == 200
        with pytest.raises(requests.ConnectionError):
            sync(fake_backend, "BNBUSDT", s)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fake_backend.url}/health", timeout=5)


def test_refuse_then_accept_on_same_port(fake_backend: FakeBackend) -> None:
    port = fake_backend.port
    fake_backend.refuse_connections()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fake_backend.url}/health", timeout=5)
    fake_backend.accept_connections()
    assert fake_backend.port == port
    assert requests.get(f"{fake_backend.url}/health", timeout=5).status_code == 200


def test_peak_in_flight_counts_concurrency(fake_backend: FakeBackend) -> None:
    fake_backend.latency = 0.3
    symbols = [f"S{i}USDT" for i in range(8)] + ["S0USDT"]  # S0USDT twice at once
    threads = [threading.Thread(target=sync, args=(fake_backend, s)) for s in symbols]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake_backend.peak_in_flight == 9
    assert fake_backend.in_flight_by_symbol_peak["S0USDT"] == 2
    assert fake_backend.in_flight_by_symbol_peak["S7USDT"] == 1


def test_tcp_nodelay_keeps_keepalive_round_trips_fast(fake_backend: FakeBackend) -> None:
    with requests.Session() as s:
        sync(fake_backend, "BTCUSDT", s)  # open the connection first
        start = time.perf_counter()
        for _ in range(20):
            sync(fake_backend, "BTCUSDT", s)
        average = (time.perf_counter() - start) / 20
        # Single-send answers hide Nagle from this client, so also check the option itself.
        server = fake_backend._server
        assert server is not None and server.live
        assert all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in server.live)
    assert average < 0.020, f"{average * 1000:.1f} ms per request: Nagle is back?"


def test_cli_runs_command_and_returns_its_exit_code() -> None:
    child = (
        "import os, sys; sys.exit(7 if os.environ['BACKEND_URL']"
        ".startswith('http://127.0.0.1:') and os.environ['LOG_DIR'] else 1)"
    )
    env = {k: v for k, v in os.environ.items() if k != "LOG_DIR"}
    done = subprocess.run(
        [sys.executable, SCRIPT, "--symbols", "5", "--", sys.executable, "-c", child],
        check=False,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 7, done.stderr


def test_cli_standalone_stops_cleanly_on_sigterm(free_port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--port", str(free_port), "--symbols", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert f"http://127.0.0.1:{free_port}" in line
    body = requests.get(f"http://127.0.0.1:{free_port}/api/symbols", timeout=5).json()
    assert body["count"] == 50
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err


def test_cli_forwards_sigterm_to_the_command() -> None:
    child = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(43)); "
        "print('listo', flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--", sys.executable, "-c", child],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listo"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 43 and "Traceback" not in err


def _last_records(backend: FakeBackend) -> dict[str, str | None]:
    body = requests.get(f"{backend.url}/api/symbols", timeout=5).json()
    return {row["symbol"]: row.get("last_record") for row in body["symbols"]}


def test_live_clock_lags_and_frozen_symbols() -> None:
    now = [datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)]
    with FakeBackend(
        ["BTCUSDT", "ETHUSDT", "BNBUSDT"], clock=lambda: now[0], frozen={"ETHUSDT"}, lags={"BNBUSDT": 600}
    ) as backend:
        assert _last_records(backend) == {
            "BTCUSDT": "2026-01-01T11:59:00+00:00",
            "ETHUSDT": "2026-01-01T11:59:00+00:00",
            "BNBUSDT": "2026-01-01T11:49:00+00:00",
        }
        now[0] += timedelta(minutes=5)
        btc, eth = sync(backend, "BTCUSDT").json(), sync(backend, "ETHUSDT").json()
        assert btc["statistics"]["last_record"] == "2026-01-01T12:04:00+00:00"
        assert eth["success"] is True and eth["new_records"] == 0
        assert eth["statistics"]["last_record"] == "2026-01-01T11:59:00+00:00"  # stuck
        backend.thaw("ETHUSDT")
        assert sync(backend, "ETHUSDT").json()["statistics"]["last_record"] == "2026-01-01T12:04:00+00:00"


def test_a_backlog_stays_put_until_a_sync_stores_it() -> None:
    """Its last_record is the newest stored kline: time alone does not move it (a pass
    judging an ambiguous sync finished compares it across passes)."""
    now = [datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)]
    with FakeBackend(["BTCUSDT"], clock=lambda: now[0], behind={"BTCUSDT": 3600}) as backend:
        assert _last_records(backend) == {"BTCUSDT": "2026-01-01T10:59:00+00:00"}
        now[0] += timedelta(minutes=3)
        assert _last_records(backend) == {"BTCUSDT": "2026-01-01T10:59:00+00:00"}
        assert sync(backend, "BTCUSDT").json()["statistics"]["last_record"] == "2026-01-01T12:02:00+00:00"
        now[0] += timedelta(minutes=1)
        assert _last_records(backend) == {"BTCUSDT": "2026-01-01T12:03:00+00:00"}  # caught up: live


def test_bad_timestamps_on_request() -> None:
    # A clock that stands still: "future" is the next day's whole hour, and the listing
    # and the sync answer are read at two moments that an hour boundary could split.
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    with FakeBackend(symbols=3, clock=lambda: now) as fake_backend:
        for kind in BAD_TIMESTAMPS:
            fake_backend.bad_timestamp("BTCUSDT", kind)
            listed = requests.get(f"{fake_backend.url}/api/symbols", timeout=5).json()["symbols"][0]
            stats = sync(fake_backend, "BTCUSDT").json()["statistics"]
            assert ("last_record" in listed) == ("last_record" in stats) == (kind != "missing")
            assert listed.get("last_record") == stats.get("last_record")
        fake_backend.bad_timestamp("BTCUSDT", None)
        assert datetime.fromisoformat(_last_records(fake_backend)["BTCUSDT"] or "") <= now
        with pytest.raises(ValueError, match="unknown bad timestamp"):
            fake_backend.bad_timestamp("BTCUSDT", "tomorrow")


def test_total_records_is_one_a_minute_less_the_holes() -> None:
    now = [datetime(2025, 6, 1, 1, 0, 30, tzinfo=UTC)]  # last_record 00:59, first 00:00: 60 minutes
    with FakeBackend(["BTCUSDT", "ETHUSDT"], clock=lambda: now[0], holes={"ETHUSDT": 7}) as backend:

        def totals() -> dict[str, int]:
            rows = requests.get(f"{backend.url}/api/symbols", timeout=5).json()["symbols"]
            return {r["symbol"]: r["total_records"] for r in rows}

        assert totals() == {"BTCUSDT": 60, "ETHUSDT": 53}
        now[0] += timedelta(minutes=2)
        assert sync(backend, "ETHUSDT").json()["statistics"]["total_records"] == 55  # the hole stays
        backend.punch_hole("BTCUSDT", 1)
        backend.punch_hole("ETHUSDT", 0)
        assert totals() == {"BTCUSDT": 61, "ETHUSDT": 62}


def test_cli_frozen_lag_and_bad_timestamp_flags(free_port: int) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            SCRIPT,
            "--port",
            str(free_port),
            "--symbols",
            "3",
            "--frozen",
            "ETHUSDT",
            "--lag",
            "ETHUSDT=900",
            "--bad-timestamp",
            "BNBUSDT=garbage",
            "--hole",
            "BTCUSDT=7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and "escuchando" in proc.stdout.readline()
        url = f"http://127.0.0.1:{free_port}"
        rows = {r["symbol"]: r["last_record"] for r in requests.get(f"{url}/api/symbols", timeout=5).json()["symbols"]}
        behind = datetime.now(UTC) - datetime.fromisoformat(rows["ETHUSDT"])
        assert timedelta(seconds=900) < behind < timedelta(seconds=3600)
        assert rows["BNBUSDT"] == BAD_TIMESTAMPS["garbage"](datetime.now(UTC))
        btc = requests.get(f"{url}/api/stats/BTCUSDT", timeout=5).json()["statistics"]
        span = datetime.fromisoformat(btc["last_record"]) - datetime.fromisoformat(btc["first_record"])
        assert btc["total_records"] == span // timedelta(minutes=1) + 1 - 7
        answer = requests.post(f"{url}/api/sync", json={"symbol": "ETHUSDT"}, timeout=5).json()
        assert answer["new_records"] == 0 and answer["statistics"]["last_record"] == rows["ETHUSDT"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_the_exchange_costs_weight_per_request_then_429_then_418() -> None:
    from fake_exchange import ExchangeLimit
    from virtual_clock import VirtualClock

    clock = VirtualClock()  # 2026-01-01 00:00:00: a fresh minute
    limit = ExchangeLimit(weight_per_minute=10, grace=1.0, ban_seconds=120)
    with FakeBackend(symbols=3, behind={"ETHUSDT": 2500 * 60}, clock=clock.wall, exchange=limit) as backend:
        exchange = backend.exchange
        assert exchange is not None
        # A current symbol: 1 request; again within the same minute: 0; a backlog of
        # 2,500 minutes: ceil(2500 / 1000) = 3 requests; weight 2 each.
        assert sync(backend, "BTCUSDT").status_code == 200
        assert backend.exchange_requests("BTCUSDT") == 0
        assert backend.exchange_requests("ETHUSDT") == 3
        assert sync(backend, "ETHUSDT").status_code == 200
        assert exchange.served_by_minute == {int(clock.wall().timestamp() // 60): 8}
        refused = sync(backend, "BNBUSDT")  # 8 + 2 = 10 fits
        assert refused.status_code == 200
        clock.advance(0.5)
        backend.lags["SOLUSDT"] = 0
        backend.symbols.append("SOLUSDT")
        limited = sync(backend, "SOLUSDT")  # 12 > 10: the exchange's 429, relayed as a 500
        assert limited.status_code == 500
        assert limited.json() == {
            "error": True,
            "message": "429, message='Too Many Requests', url=URL('https://api.binance.com/api/v3/klines?"
            "symbol=SOLUSDT&interval=1m&startTime=1748736000000&limit=1000')",
        }
        assert sync(backend, "SOLUSDT").status_code == 500 and exchange.limited == 2  # within the grace: in flight
        clock.advance(1.5)
        banned = sync(backend, "SOLUSDT")  # still calling during the limit: banned
        assert banned.json()["message"].startswith('418, message="I\'m a Teapot"')
        clock.advance(60)  # a new minute, but the ban lasts 120 s
        assert sync(backend, "SOLUSDT").json()["message"].startswith("418")
        clock.advance(60)
        assert sync(backend, "SOLUSDT").status_code == 200
        assert (exchange.episodes, exchange.limited, exchange.bans) == (1, 2, 2)
