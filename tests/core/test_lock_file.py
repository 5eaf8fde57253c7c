"""The run lock outside Kubernetes (LOCK_FILE): two passes started together with the same
LOG_DIR sync each symbol once; the one that finds the lock taken ends like the Lease's
held case (exit 0, lock_held); LOCK_FILE=off disables it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from coin_sync.config.table import describe
from fake_backend import FakeBackend
from harness import REPO

LIMIT = 30.0  # bounded polling: seconds before a test gives up


def _start(env: dict[str, str], summary: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "coin_sync", "run"],
        env={**env, "SUMMARY_FILE": str(summary)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )


def _poll(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + LIMIT
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_two_passes_started_together_sync_each_symbol_once(base_env: dict[str, str], tmp_path: Path) -> None:
    with FakeBackend(symbols=6) as backend:
        backend.pause_syncs()  # the winner keeps the lock until the loser has given up
        env = {**base_env, "BACKEND_URL": backend.url}
        procs = [_start(env, tmp_path / f"summary-{i}.json") for i in range(2)]
        try:
            _poll(lambda: any(p.poll() is not None for p in procs), "the pass that finds the lock taken")
        finally:
            backend.resume_syncs()
        outputs = [p.communicate(timeout=LIMIT)[0] for p in procs]
        synced = sorted(c.symbol or "" for c in backend.sync_calls())
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert synced == sorted(backend.symbols)  # each exactly once
    summaries = [json.loads((tmp_path / f"summary-{i}.json").read_text()) for i in range(2)]
    assert sorted(s["reason"] for s in summaries) == ["lock_held", "ok"]
    loser = outputs[[s["reason"] for s in summaries].index("lock_held")]
    (held,) = [line for line in loser.splitlines() if "Otra pasada está en curso" in line]
    assert " WARNING " in held and "pid " in held and ".coin-sync.lock" in held
    (fin,) = [line for line in loser.splitlines() if "FIN DE SINCRONIZACIÓN" in line]
    assert "(OMITIDA: otra pasada en curso)" in fin and "código de salida: 0 (lock_held)" in fin
    assert (Path(base_env["LOG_DIR"]) / ".coin-sync.lock").exists()


def test_lock_file_off_disables_the_lock(base_env: dict[str, str], tmp_path: Path) -> None:
    with FakeBackend(symbols=1) as backend:
        backend.pause_syncs()
        env = {**base_env, "BACKEND_URL": backend.url, "LOCK_FILE": "off"}
        procs = [_start(env, tmp_path / f"summary-{i}.json") for i in range(2)]
        try:
            _poll(lambda: len(backend.sync_calls()) == 2, "both passes syncing at once")
        finally:
            backend.resume_syncs()
        outputs = [p.communicate(timeout=LIMIT)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert backend.in_flight_by_symbol_peak["BTCUSDT"] == 2
    assert not (Path(base_env["LOG_DIR"]) / ".coin-sync.lock").exists()
    assert all("LOCK_FILE: off" in out for out in outputs)


def test_an_unusable_lock_file_warns_and_the_pass_runs(fake_backend: FakeBackend, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    run = run_cli(BACKEND_URL=fake_backend.url, LOCK_FILE=str(blocker / "lock"), K8S_LOCK_REQUIRED="true")
    assert run.code == 0 and len(fake_backend.sync_calls()) == 3
    (warning,) = run.lines("No se puede usar el cerrojo LOCK_FILE")
    assert " WARNING " in warning and "la pasada sigue sin cerrojo" in warning


def test_the_lock_is_released_for_the_next_pass(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        assert run_cli(BACKEND_URL=fake_backend.url).code == 0
    assert len(fake_backend.sync_calls()) == 6


def test_shards_take_one_lock_each(base_env: dict[str, str]) -> None:
    from coin_sync.config.load import load_settings

    settings = load_settings({}, {"LOG_DIR": "/x", "SHARD_COUNT": "3", "SHARD_INDEX": "2"})
    assert settings.log.lock_file == Path("/x/.coin-sync-2.lock")
    assert settings.log.state_file == Path("/x/.coin-sync-state-2.json")
    plain = load_settings({}, {"LOG_DIR": "/x"})
    assert (plain.log.lock_file, plain.log.state_file) == (
        Path("/x/.coin-sync.lock"),
        Path("/x/.coin-sync-state.json"),
    )


def test_lock_file_off_and_bad_hold_values() -> None:
    import pytest

    from coin_sync.config.load import load_settings
    from coin_sync.config.parsing import OFF
    from coin_sync.config.sources import ConfigError

    assert load_settings({}, {"LOCK_FILE": "OFF", "SHARD_COUNT": "2"}).log.lock_file == OFF
    assert dict(describe(load_settings({}, {"LOCK_FILE": "off"})))["LOCK_FILE"] == "off"
    assert load_settings({}, {"LOCK_FILE": "/run/x.lock"}).log.lock_file == Path("/run/x.lock")
    with pytest.raises(ConfigError, match=r"^AMBIGUOUS_HOLD_SECONDS:"):
        load_settings({}, {"AMBIGUOUS_HOLD_SECONDS": "-1"})
