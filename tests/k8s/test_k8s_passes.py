"""Whole passes (`python -m coin_sync run` in a subprocess) against the fake backend and
the Kubernetes API emulator: the lock between concurrent passes, the skip, the Event and
status record a real pass leaves, failing open, and no `kubernetes` import outside a
cluster."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_support import ROOT, pass_env, python, warning_lines
from kube_api import CONFIGMAPS, EVENTS, LEASES, NAMESPACE, ApiServer, lease_body, write_kubeconfig

from fake_backend import FakeBackend, error400

SKIP_WARNING = "Otra pasada está en curso"

K8S_FILES = tuple(f"[{path.name}:" for path in (ROOT / "coin_sync" / "k8s").glob("*.py"))

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_pass(fake_backend: FakeBackend, tmp_path: Path, kubeconfig: Path) -> Runner:
    def run(kubeconfig_path: Path | None = kubeconfig, **extra: str) -> subprocess.CompletedProcess[str]:
        env = pass_env(fake_backend, tmp_path, kubeconfig_path, **extra)
        return python("-m", "coin_sync", "run", env=env)

    return run


def events(api: ApiServer) -> list[dict[str, Any]]:
    return list(api.objects(EVENTS, NAMESPACE).values())


def _race_logs(outputs: list[str]) -> list[list[str]]:
    """What matters when the race assertion fails, not 2 x 40 log lines."""
    keys = ("Cerrojo", "Otra pasada", "INICIO DE", "FIN DE", "WARNING", "ERROR", "Traceback")
    return [[line for line in out.splitlines() if any(k in line for k in keys)] for out in outputs]


def test_two_passes_at_once_exactly_one_syncs(
    apiserver: ApiServer, fake_backend: FakeBackend, tmp_path: Path, kubeconfig: Path
) -> None:
    """Two passes started together on one Lease: one syncs, one skips.

    The syncs take 0.3 s, so the passes overlap; and the emulator holds the winner's
    release until both passes have read the Lease, so a loser that a busy CI machine
    starts late still meets a live holder (without the gate it would, correctly, run a
    pass of its own after the winner's, and the test would flake). The many-round race
    is in-process (test_k8s_lease.py); this one proves the CLI wiring."""
    apiserver.emulator.release_after_reads = 2
    fake_backend.latency = 0.3
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "coin_sync", "run"],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=pass_env(fake_backend, tmp_path / side, kubeconfig, POD_NAME=f"pod-{side}"),
        )
        for side in "ab"
    ]
    # One after the other is fine: each writes a few KB, far below a pipe's buffer.
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    logs = _race_logs(outputs)

    assert [p.returncode for p in procs] == [0, 0], logs
    did_sync = ["INICIO DE SINCRONIZACIÓN" in out for out in outputs]
    assert sorted(did_sync) == [False, True], logs
    loser = outputs[did_sync.index(False)]
    assert SKIP_WARNING in loser and "✓" not in loser, logs
    # Every symbol synced once, all by the winner: the loser sent nothing.
    assert sorted(c.symbol or "" for c in fake_backend.sync_calls()) == sorted(fake_backend.symbols), logs
    assert sorted(e["reason"] for e in events(apiserver)) == ["SyncSkipped", "SyncSucceeded"]


def test_a_pass_leaves_an_event_and_its_status_and_releases_the_lock(
    apiserver: ApiServer, fake_backend: FakeBackend, run_pass: Runner
) -> None:
    fake_backend.script("ETHUSDT", error400("Símbolo no soportado"))

    result = run_pass()

    assert result.returncode == 1, result.stdout + result.stderr
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == ("SyncPartial", "Warning")
    assert event["involvedObject"]["kind"] == "Job" and event["involvedObject"]["name"] == "coin-sync-29000000"
    assert "ok=2 failed=1" in event["message"] and "first_failed=ETHUSDT" in event["message"]
    assert "Símbolo no soportado" in event["message"]

    data = apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]["data"]
    record = json.loads(data["shard-0"])
    assert (record["exit_code"], record["reason"], record["ok"], record["failed"]) == (1, "symbols_failed", 2, 1)
    assert record["pod"] == "coin-sync-29000000-abcde" and record["finished_at"]
    assert record["failed_symbols"][0]["symbol"] == "ETHUSDT"
    assert "Símbolo no soportado" in record["failed_symbols"][0]["error"]

    spec = apiserver.objects(LEASES, NAMESPACE)["coin-sync-lock"]["spec"]
    assert "holderIdentity" not in spec  # released
    assert not [line for line in warning_lines(result.stdout) if any(name in line for name in K8S_FILES)]


def test_a_holed_symbol_reaches_the_status_record_and_the_event(
    apiserver: ApiServer, fake_backend: FakeBackend, run_pass: Runner
) -> None:
    fake_backend.punch_hole("ETHUSDT", 7)

    result = run_pass(FAIL_ON_GAPS="true")

    assert result.returncode == 1, result.stdout + result.stderr
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == ("SyncPartial", "Warning")
    assert "reason=gaps" in event["message"] and "symbols_with_gaps=1 missing_minutes=7" in event["message"]
    record = json.loads(apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]["data"]["shard-0"])
    assert (record["exit_code"], record["reason"], record["ok"]) == (1, "gaps", 3)
    assert (record["symbols_with_gaps"], record["missing_minutes"]) == (1, 7)
    assert record["gap_symbols"] == [{"symbol": "ETHUSDT", "missing_minutes": 7}]


def test_a_live_holder_makes_the_pass_skip_with_exit_0(
    apiserver: ApiServer, fake_backend: FakeBackend, run_pass: Runner
) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "manual-run_42", renewed_ago=5))

    result = run_pass()

    assert result.returncode == 0, result.stdout + result.stderr
    assert fake_backend.sync_calls() == []
    (warning,) = warning_lines(result.stdout)
    assert SKIP_WARNING in warning and "manual-run_42" in warning
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == ("SyncSkipped", "Normal")
    assert apiserver.objects(LEASES, NAMESPACE)["coin-sync-lock"]["spec"]["holderIdentity"] == "manual-run_42"
    assert apiserver.objects(CONFIGMAPS, NAMESPACE) == {}


def _published(tmp_path: Path, output: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(FIN line, SUMMARY_FILE, termination message) of a pass run by `run_pass`."""
    (fin,) = [line for line in output.splitlines() if "FIN DE SINCRONIZACIÓN #1" in line]
    summary = json.loads((tmp_path / "summary.json").read_text())
    termination = json.loads((tmp_path / "termination-log").read_text())
    return fin, summary, termination


def test_a_skipped_pass_is_published_like_any_other(
    apiserver: ApiServer, fake_backend: FakeBackend, run_pass: Runner, tmp_path: Path
) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "manual-run_42", renewed_ago=5))
    (tmp_path / "termination-log").write_text("")

    result = run_pass(SUMMARY_FILE=str(tmp_path / "summary.json"))

    assert result.returncode == 0, result.stdout + result.stderr
    fin, summary, termination = _published(tmp_path, result.stdout)
    assert "(OMITIDA: otra pasada en curso)" in fin and "código de salida: 0 (lock_held)" in fin
    assert (summary["exit_code"], summary["reason"], summary["detail"]) == (0, "lock_held", "manual-run_42")
    assert (termination["exit_code"], termination["reason"]) == (0, "lock_held")


def test_a_refused_pass_is_published_with_exit_3(
    fake_backend: FakeBackend, run_pass: Runner, tmp_path: Path, free_port: int
) -> None:
    down = write_kubeconfig(tmp_path / "down.kubeconfig", f"http://127.0.0.1:{free_port}")
    (tmp_path / "termination-log").write_text("")

    result = run_pass(down, K8S_LOCK_REQUIRED="true", SUMMARY_FILE=str(tmp_path / "summary.json"))

    assert result.returncode == 3, result.stdout + result.stderr
    assert fake_backend.sync_calls() == []
    fin, summary, termination = _published(tmp_path, result.stdout)
    assert "(NO EJECUTADA: sin cerrojo)" in fin and "código de salida: 3 (lock_unavailable)" in fin
    assert (summary["exit_code"], summary["reason"]) == (3, "lock_unavailable")
    assert "inalcanzable" in summary["detail"]
    assert (termination["exit_code"], termination["reason"]) == (3, "lock_unavailable")


def test_sigterm_while_the_lock_is_taken_exits_143_even_when_it_is_held(
    apiserver: ApiServer, fake_backend: FakeBackend, tmp_path: Path, kubeconfig: Path
) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "manual-run_42", renewed_ago=5))
    apiserver.emulator.lease_read_delay = 1.0
    env = pass_env(fake_backend, tmp_path, kubeconfig, SUMMARY_FILE=str(tmp_path / "summary.json"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "coin_sync", "run"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE
    )
    end = time.monotonic() + 30
    while not [r for r in apiserver.requests() if r[0] == "GET" and r[1] == "leases"]:
        assert time.monotonic() < end and proc.poll() is None, "the pass never asked for the Lease"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode == 143, out
    assert fake_backend.sync_calls() == []
    (fin,) = [line for line in out.splitlines() if "FIN DE SINCRONIZACIÓN #1" in line]
    assert "(INTERRUMPIDA por SIGTERM)" in fin
    assert json.loads((tmp_path / "summary.json").read_text())["reason"] == "interrupted"
    assert apiserver.objects(CONFIGMAPS, NAMESPACE) == {}  # the live holder's record is not ours to write
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == ("SyncSkipped", "Warning")


def test_an_expired_holder_is_taken_over(apiserver: ApiServer, fake_backend: FakeBackend, run_pass: Runner) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "oom-killed_1", renewed_ago=90))

    result = run_pass()

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(fake_backend.sync_calls()) == 3
    assert "oom-killed_1" in result.stdout
    assert apiserver.objects(LEASES, NAMESPACE)["coin-sync-lock"]["spec"]["leaseTransitions"] == 1


@pytest.mark.parametrize("required", [False, True])
def test_api_down(fake_backend: FakeBackend, run_pass: Runner, tmp_path: Path, free_port: int, required: bool) -> None:
    down = write_kubeconfig(tmp_path / "down.kubeconfig", f"http://127.0.0.1:{free_port}")

    result = run_pass(down, K8S_LOCK_REQUIRED=str(required).lower())

    assert result.returncode == (3 if required else 0), result.stdout + result.stderr
    assert len(fake_backend.sync_calls()) == (0 if required else 3)
    (warning,) = warning_lines(result.stdout)
    assert "inalcanzable" in warning


@pytest.mark.parametrize("required", [False, True])
def test_forbidden(apiserver: ApiServer, fake_backend: FakeBackend, run_pass: Runner, required: bool) -> None:
    apiserver.emulator.forbidden = {("get", "leases")}

    result = run_pass(K8S_LOCK_REQUIRED=str(required).lower())

    assert result.returncode == (3 if required else 0), result.stdout + result.stderr
    assert len(fake_backend.sync_calls()) == (0 if required else 3)
    (warning,) = warning_lines(result.stdout)
    assert 'falta el verbo "get" sobre leases.coordination.k8s.io "coin-sync-lock"' in warning
    # Events are allowed: the pass still reports how it ended.
    (event,) = events(apiserver)
    assert event["reason"] == ("SyncFailed" if required else "SyncSucceeded")


MAIN_AND_REPORT_IMPORTS = (
    "import json, sys\n"
    "from coin_sync.cli import main\n"
    "code = main(['run'])\n"
    "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'urllib3'})\n"
    "print(json.dumps({'exit': code, 'loaded': loaded}))\n"
)


def _main_in_subprocess(env: dict[str, str]) -> dict[str, Any]:
    result = python("-c", MAIN_AND_REPORT_IMPORTS, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_outside_a_cluster_auto_never_imports_kubernetes(fake_backend: FakeBackend, tmp_path: Path) -> None:
    env = pass_env(fake_backend, tmp_path, None)
    assert "K8S_INTEGRATION" not in env and "KUBERNETES_SERVICE_HOST" not in env  # auto, not in a cluster

    report = _main_in_subprocess(env)

    assert report["exit"] == 0 and len(fake_backend.sync_calls()) == 3
    assert "kubernetes" not in report["loaded"]


def test_the_import_check_can_fail(
    apiserver: ApiServer, fake_backend: FakeBackend, tmp_path: Path, kubeconfig: Path
) -> None:
    """Control for the test above: an active pass does import it."""
    report = _main_in_subprocess(pass_env(fake_backend, tmp_path, kubeconfig))
    assert report["exit"] == 0
    assert "kubernetes" in report["loaded"]
