"""`coin-sync loop` serves /metrics: the real loop (`python -m coin_sync loop`, a pass a
second) against the fake backend, scraped over HTTP while it runs.

Every wait is bounded polling: until the scrape or the log shows what is awaited, or a
generous timeout, then the assertion. Nothing asserts how fast it happened. The exact
recording (durations, which summary counts) is proved on virtual time in
tests/container/test_loop.py.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from container_support import LineProcess, loop_env, start_loop
from prometheus_client.samples import Sample

from fake_backend import FakeBackend, error400, hang, ok
from harness import REPO
from prom_tools import free_port, promtool_check, samples

TIMEOUT = 60.0


def metrics_env(backend: FakeBackend, tmp_path: Path, port: int, **settings: str) -> dict[str, str]:
    return loop_env(backend, tmp_path, METRICS_PORT=str(port), METRICS_ADDRESS="127.0.0.1", **settings)


def scrape_until(port: int, proc: LineProcess, done: Callable[[str], bool]) -> str:
    """The loop's /metrics once `done(text)`; fails after TIMEOUT or if the loop exits."""
    deadline = time.monotonic() + TIMEOUT
    text = ""
    while time.monotonic() < deadline and proc.proc.poll() is None:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            text = ""  # not listening yet
        if text and done(text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"/metrics nunca cumplió la condición (código {proc.proc.poll()}):\n{text}\n{proc.output}")


def only(text: str, name: str, **labels: str) -> Sample:
    (sample,) = [s for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items())]
    return sample


def passes(text: str, exit_code: str) -> float:
    found = [s.value for s in samples(text, "coin_sync_passes_total") if s.labels == {"exit_code": exit_code}]
    return found[0] if found else 0


def stop(proc: LineProcess) -> int:
    proc.send_signal()
    return proc.wait(timeout=TIMEOUT)


def test_after_two_passes_metrics_has_both_and_the_latest_pass(fake_backend: FakeBackend, tmp_path: Path) -> None:
    port, before = free_port(), time.time()
    with start_loop(metrics_env(fake_backend, tmp_path, port)) as proc:
        # The loop's own log says where it listens, before any pass.
        proc.wait_for(rf"Métricas de Prometheus en http://127\.0\.0\.1:{port}/metrics", timeout=TIMEOUT)
        text = scrape_until(port, proc, lambda text: passes(text, "0") >= 2)
        assert stop(proc) == 0, proc.output

    assert promtool_check(text) == ""
    count = only(text, "coin_sync_pass_duration_seconds_count").value
    assert count >= 2
    assert only(text, "coin_sync_pass_duration_seconds_bucket", le="+Inf").value == count
    assert only(text, "coin_sync_pass_duration_seconds_sum").value > 0
    # The latest pass's own metric set, as a Pushgateway would get it.
    assert only(text, "coin_sync_last_exit_code").value == 0
    assert only(text, "coin_sync_last_pass_symbols", status="ok").value == 3
    assert only(text, "coin_sync_last_pass_symbols", status="failed").value == 0
    assert only(text, "coin_sync_last_pass_stale_symbols").value == 0
    last_run = only(text, "coin_sync_last_run_timestamp_seconds").value
    assert only(text, "coin_sync_last_success_timestamp_seconds").value == last_run
    assert last_run >= int(before)  # a real finish time (whole seconds), not a placeholder
    per_symbol = samples(text, "coin_sync_symbol_last_record_timestamp_seconds")
    assert sorted(s.labels["symbol"] for s in per_symbol) == ["BNBUSDT", "BTCUSDT", "ETHUSDT"]
    # Each pass wrote its summary where the loop told it, a temporary folder of the
    # loop's, gone once the loop is: no pass names it at INFO.
    assert "Resumen escrito en" not in proc.output


def test_failed_and_killed_passes_are_counted_by_exit_code(fake_backend: FakeBackend, tmp_path: Path) -> None:
    # Pass 1: BTCUSDT rejected (exit 1). Pass 2: BTCUSDT hangs until the test kills the pass.
    fake_backend.script("BTCUSDT", error400("nope"), hang(30), ok())
    port = free_port()
    with start_loop(metrics_env(fake_backend, tmp_path, port, LOG_LEVEL="DEBUG")) as proc:
        text = scrape_until(port, proc, lambda text: passes(text, "1") == 1)
        assert only(text, "coin_sync_last_exit_code").value == 1
        assert only(text, "coin_sync_last_pass_symbols", status="failed").value == 1
        assert samples(text, "coin_sync_last_success_timestamp_seconds") == []  # none yet

        proc.wait_for(r"Pasada #2 iniciada \(pid \d+\)", timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while len(fake_backend.sync_calls("BTCUSDT")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(fake_backend.sync_calls("BTCUSDT")) == 2, proc.output
        pid = int(re.findall(r"Pasada #2 iniciada \(pid (\d+)\)", proc.output)[0])
        os.kill(pid, signal.SIGKILL)  # mid-pass: it writes no summary

        text = scrape_until(port, proc, lambda text: passes(text, "0") >= 1)
        assert stop(proc) == 0, proc.output

    assert promtool_check(text) == ""
    assert proc.times(r"Pasada #2 terminada con código 137 \(señal SIGKILL\)"), proc.output
    assert (passes(text, "1"), passes(text, "137")) == (1, 1)
    assert only(text, "coin_sync_pass_duration_seconds_count").value >= 3
    # The killed pass counted, but the gauges are those of a pass that left a summary.
    assert only(text, "coin_sync_last_exit_code").value == 0
    assert only(text, "coin_sync_last_success_timestamp_seconds").value > 0


def test_a_port_in_use_is_one_error_line_and_exit_2(fake_backend: FakeBackend, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with start_loop(metrics_env(fake_backend, tmp_path, port, LOG_FORMAT="text")) as proc:
            code = proc.wait(timeout=TIMEOUT)

    assert code == 2, proc.output
    errors = [line for line in proc.output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.output
    assert f"No se puede servir /metrics en 127.0.0.1:{port} (METRICS_ADDRESS/METRICS_PORT)" in errors[0]
    assert "el bucle termina con 2" in errors[0]
    assert "Traceback" not in proc.output
    assert "INICIO DE SINCRONIZACIÓN" not in proc.output and fake_backend.sync_calls() == []


def test_without_metrics_port_the_loop_never_imports_prometheus_client(
    fake_backend: FakeBackend, tmp_path: Path
) -> None:
    code = (
        "import sys; from coin_sync.cli import main; rc = main(['loop']);"
        "print('módulos:', sorted(m for m in ('prometheus_client', 'coin_sync.observe.metrics') if m in sys.modules));"
        "sys.exit(rc)"
    )
    env = loop_env(fake_backend, tmp_path)
    with LineProcess([sys.executable, "-c", code], env=env, cwd=REPO) as proc:
        proc.wait_for(r"Pasada #1 terminada con código 0\b", timeout=TIMEOUT)
        assert stop(proc) == 0, proc.output

    assert proc.output.splitlines()[-1] == "módulos: []", proc.output
    assert "Métricas de Prometheus" not in proc.output and "Resumen escrito" not in proc.output
