"""Whole passes (`python -m coin_sync run` in a subprocess, each its own LOG_DIR, as pods
are) against the fake backend and the API emulator: the status record's freshness and
issue-12 fields, and the ambiguous syncs that one pass leaves in the status ConfigMap
for the next: held while the backend still runs them, released once it finished; a
corrupt value never crashes a pass; with the API down the pass falls back to STATE_FILE."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_support import pass_env, python, status_data, warning_lines
from kube_api import CONFIGMAPS, NAMESPACE, ApiServer, write_kubeconfig

from fake_backend import Call, FakeBackend, exchange_error, hang, hang_until

AMBIGUOUS = {"HTTP_TIMEOUT": "0.5", "AMBIGUOUS_HOLD_SECONDS": "600"}
STATE_FILE = ".coin-sync-state.json"

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_in_pod(tmp_path: Path, kubeconfig: Path) -> Runner:
    """run_in_pod(backend, pod, NAME=value...): a pass as a new pod, its LOG_DIR tmp_path/pod/logs."""

    def run(
        backend: FakeBackend, pod: str, api: Path | None = kubeconfig, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        env = pass_env(backend, tmp_path / pod, api, POD_NAME=f"coin-sync-{pod}", **extra)
        return python("-m", "coin_sync", "run", env=env)

    return run


def configmap(api: ApiServer) -> dict[str, str]:
    data: dict[str, str] = api.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]["data"]
    return data


def _wait_finished(call: Call, limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while call.finished is None and time.monotonic() < end:
        time.sleep(0.05)
    assert call.finished is not None, "the fake never finished the hung sync"


def test_the_status_record_of_a_real_pass_carries_freshness_and_flags(
    apiserver: ApiServer, fake_backend: FakeBackend, run_in_pod: Runner
) -> None:
    fake_backend.lags["ETHUSDT"] = 900  # 15 minutes behind: stale (STALE_AFTER_SECONDS 180)
    fake_backend.add_new_symbol("NEWUSDT")  # declared; its first backfill fails this pass
    fake_backend.script("NEWUSDT", exchange_error("server_error", "NEWUSDT"))
    fake_backend.script("BTCUSTD", exchange_error("invalid_symbol", "BTCUSTD"))  # a typo

    result = run_in_pod(fake_backend, "a", SYMBOLS_INCLUDE="NEWUSDT,BTCUSTD", MAX_RETRIES="0")

    assert result.returncode == 1, result.stdout + result.stderr
    record = status_data(apiserver)["shard-0"]
    assert (record["ok"], record["failed"], record["exit_code"]) == (3, 2, 1)  # the old fields, as before
    assert record["stale"] == 1
    assert record["max_lag_seconds"] >= 900 - 60
    assert record["freshness_unknown"] == 2  # the two that never synced and are not listed
    assert record["rejected"] == 1
    assert (record["pending_backfill"], sorted(record["pending_backfill_symbols"])) == (2, ["BTCUSTD", "NEWUSDT"])
    assert record["held"] == 0
    # Nothing ambiguous to remember; the key keeps the exchange budget's memory (issue 18).
    remembered = json.loads(configmap(apiserver)["ambiguous-0"])
    assert remembered["ambiguous"] == {} and remembered["exchange"]["spent"]


def test_an_ambiguous_sync_is_held_by_the_next_pod_until_the_backend_finished(
    apiserver: ApiServer, run_in_pod: Runner, tmp_path: Path
) -> None:
    # An hour behind: what its slow sync stores moves its last_record on.
    # The hung sync outlasts pass 1's timeout and all of pass 2: the test releases it.
    release = threading.Event()
    with FakeBackend(symbols=3, behind={"BTCUSDT": 3600}) as backend:
        backend.script("BTCUSDT", hang_until(release))
        first = run_in_pod(backend, "a", **AMBIGUOUS)
        assert first.returncode == 1, first.stdout + first.stderr
        (sent,) = backend.sync_calls("BTCUSDT")
        remembered = json.loads(configmap(apiserver)["ambiguous-0"])
        assert list(remembered["ambiguous"]) == ["BTCUSDT"]
        assert not (tmp_path / "a" / "logs" / STATE_FILE).exists()  # not in a file

        backend.script("BTCUSDT")  # from now on it answers at once
        before = len(apiserver.requests())
        second = run_in_pod(backend, "b", **AMBIGUOUS)
        assert sent.finished is None, "the test needs the first sync still running here"
        assert second.returncode == 0, second.stdout + second.stderr  # held, not failed
        assert len(backend.sync_calls("BTCUSDT")) == 1  # not re-sent while the backend runs it
        assert [line for line in second.stdout.splitlines() if "⏸ BTCUSDT no se envía" in line]
        assert status_data(apiserver)["shard-0"]["held"] == 1
        calls = [(m, n) for m, p, n in apiserver.requests()[before:] if p == "configmaps"]
        # One read at the start; the ambiguous memory did not change, but the exchange's did
        # (this pass's spend): the state key, then the status record.
        assert calls == [("GET", "coin-sync-status"), ("PATCH", "coin-sync-status"), ("PATCH", "coin-sync-status")]
        assert list(json.loads(configmap(apiserver)["ambiguous-0"])["ambiguous"]) == ["BTCUSDT"]

        release.set()
        _wait_finished(sent)  # the backend stored it: its last_record advanced
        third = run_in_pod(backend, "c", **AMBIGUOUS)
        assert third.returncode == 0, third.stdout + third.stderr
        assert len(backend.sync_calls("BTCUSDT")) == 2
        assert backend.in_flight_by_symbol_peak["BTCUSDT"] == 1
    assert "⏸" not in third.stdout
    # Resolved: no ambiguous sync left (the key stays for the exchange budget's memory).
    assert json.loads(configmap(apiserver)["ambiguous-0"])["ambiguous"] == {}
    assert status_data(apiserver)["shard-0"]["held"] == 0


def test_a_corrupt_value_is_one_warning_and_the_pass_syncs_everything(
    apiserver: ApiServer, fake_backend: FakeBackend, run_in_pod: Runner
) -> None:
    apiserver.put(CONFIGMAPS, NAMESPACE, {"metadata": {"name": "coin-sync-status"}, "data": {"ambiguous-0": "{roto"}})

    result = run_in_pod(fake_backend, "a")

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(fake_backend.sync_calls()) == 3
    (warning,) = warning_lines(result.stdout)
    assert 'clave "ambiguous-0"' in warning and "se trata como vacío" in warning
    assert "Traceback" not in result.stdout + result.stderr


def test_api_down_falls_back_to_the_state_file(
    fake_backend: FakeBackend, run_in_pod: Runner, tmp_path: Path, free_port: int
) -> None:
    """The lock is unavailable, so the memory goes to STATE_FILE; the API is not asked
    again (the lock's WARNING is the only one about Kubernetes)."""
    down = write_kubeconfig(tmp_path / "down.kubeconfig", f"http://127.0.0.1:{free_port}")
    fake_backend.script("BTCUSDT", hang(2.0))

    result = run_in_pod(fake_backend, "a", api=down, **AMBIGUOUS)

    assert result.returncode == 1, result.stdout + result.stderr
    (warning,) = [line for line in warning_lines(result.stdout) if "Kubernetes" in line or "Lease" in line]
    assert "inalcanzable" in warning
    state_file = tmp_path / "a" / "logs" / STATE_FILE
    assert list(json.loads(state_file.read_text())["ambiguous"]) == ["BTCUSDT"]
