"""SIGTERM/SIGINT during a pass, run as a real subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_backend import FakeBackend, bad_json, hang

REPO = Path(__file__).resolve().parents[2]


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "coin_sync", "run"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


# Far below every wait the tests cut short (30 s, 60 s), far above a loaded machine's
# scheduling noise: a bound on a hang, not a speed assertion.
GONE_WITHIN = 15


def _signal(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Send `sig`; stdout + stderr once the process is gone (TimeoutExpired if it hangs)."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=GONE_WITHIN)
    return out + err


def _wait_for(backend: FakeBackend, count: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while len(backend.sync_calls()) < count:
        assert time.monotonic() < end, "the pass never started syncing"
        time.sleep(0.02)


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_signal_stops_dispatch_and_lets_in_flight_finish(
    base_env: dict[str, str], tmp_path: Path, sig: int, code: int, name: str
) -> None:
    with FakeBackend(symbols=20, latency=0.6) as backend:
        summary = tmp_path / "s.json"
        proc = _start({**base_env, "BACKEND_URL": backend.url, "SYNC_CONCURRENCY": "2", "SUMMARY_FILE": str(summary)})
        _wait_for(backend, 2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        calls = backend.sync_calls()
    assert proc.returncode == code, out + err
    assert "Traceback" not in out + err
    data = json.loads(summary.read_text())
    assert data["reason"] == "interrupted" and data["exit_code"] == code
    # the two in flight finished; nothing new was dispatched after the signal
    assert data["totals"]["ok"] == len(calls) == 2
    assert data["totals"]["skipped"] == 18
    assert {s["skip_reason"] for s in data["symbols"] if s["status"] == "skipped"} == {"interrupted"}
    assert f"FIN DE SINCRONIZACIÓN #1 (INTERRUMPIDA por {name})" in out


def test_grace_runs_out_on_a_hung_sync(base_env: dict[str, str], tmp_path: Path) -> None:
    with FakeBackend(symbols=3) as backend:
        backend.script("BTCUSDT", hang(30))
        summary = tmp_path / "s.json"
        proc = _start(
            {**base_env, "BACKEND_URL": backend.url, "SHUTDOWN_GRACE_SECONDS": "0.5", "SUMMARY_FILE": str(summary)}
        )
        _wait_for(backend, 3)
        time.sleep(0.2)
        out = _signal(proc)  # gone within the bound: the 0.5 s grace, not the 30 s hang
    assert proc.returncode == 143
    data = json.loads(summary.read_text())
    statuses = {s["symbol"]: s["status"] for s in data["symbols"]}
    assert statuses["BTCUSDT"] == "interrupted"
    assert "Tiempo de gracia agotado" in out


def test_signal_during_health_wait_exits_at_once(base_env: dict[str, str]) -> None:
    with FakeBackend(symbols=3) as backend:
        backend.set_healthy(False)
        proc = _start({**base_env, "BACKEND_URL": backend.url, "BACKEND_WAIT_SECONDS": "60"})
        end = time.monotonic() + 10
        while not [c for c in backend.calls if c.path == "/health"]:
            assert time.monotonic() < end
            time.sleep(0.02)
        out = _signal(proc)  # gone within the bound, not after BACKEND_WAIT_SECONDS=60
    assert proc.returncode == 143, out
    assert "Traceback" not in out
    assert "FIN DE SINCRONIZACIÓN #1 (INTERRUMPIDA por SIGTERM)" in out


def test_signal_cuts_a_retry_wait_short(base_env: dict[str, str]) -> None:
    with FakeBackend(symbols=1) as backend:
        backend.script("BTCUSDT", bad_json())  # a counted failure: overload would re-queue at once
        proc = _start(
            {**base_env, "BACKEND_URL": backend.url, "RETRY_DELAY_SECONDS": "30", "RETRY_MAX_DELAY_SECONDS": "30"}
        )
        _wait_for(backend, 1)
        time.sleep(0.3)
        out = _signal(proc)  # gone within the bound, not after the 30 s wait
        assert len(backend.sync_calls()) == 1
    assert proc.returncode == 143
    assert "reintentos cancelados" in out


def test_signal_after_the_deadline_still_exits_143(base_env: dict[str, str], tmp_path: Path) -> None:
    with FakeBackend(symbols=10, latency=1.0) as backend:
        summary = tmp_path / "s.json"
        proc = _start(
            {
                **base_env,
                "BACKEND_URL": backend.url,
                "SYNC_CONCURRENCY": "1",
                "PASS_DEADLINE_SECONDS": "0.2",
                "SUMMARY_FILE": str(summary),
            }
        )
        _wait_for(backend, 1)
        time.sleep(0.4)  # past the deadline, the first sync still in flight
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 143
    assert json.loads(summary.read_text())["reason"] == "interrupted"
    assert "INTERRUMPIDA por SIGTERM" in out
