"""Helpers shared by the k8s tests: reports to finish a pass with, what the emulator holds
afterwards, and the environment and interpreter of a whole pass in a subprocess."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kube_api import CONFIGMAPS, EVENTS, LEASES, NAMESPACE, ApiServer

from coin_sync.clock import RealClock
from coin_sync.config.settings import Settings
from coin_sync.config.table import setting_names, settings_from
from coin_sync.locks.guard import PassGuard
from coin_sync.outcome import EndReason, PassReport, SymbolResult, SymbolStatus
from coin_sync.stop import Stop
from fake_backend import FakeBackend

ROOT = Path(__file__).resolve().parents[2]

POD = "coin-sync-29000000-abcde"
JOB = "coin-sync-29000000"

# What the chart sets: settings, and the downward-API identity (environment only).
CHART_SETTINGS: dict[str, Any] = {
    "K8S_INTEGRATION": "on",
    "LEASE_NAME": "coin-sync-lock",
    "LEASE_DURATION_SECONDS": 60,
    "STATUS_CONFIGMAP": "coin-sync-status",
}
CHART_IDENTITY = {"POD_NAME": POD, "POD_NAMESPACE": NAMESPACE, "JOB_NAME": JOB}

OpenGuard = Callable[..., PassGuard]


def settings_and_env(names: dict[str, Any]) -> tuple[Settings, dict[str, str]]:
    """Split NAME=value overrides: settings by their ENV name, the rest (POD_NAME,
    JOB_UID, ...) into the environment, both over what the chart sets."""
    known = set(setting_names())
    settings = settings_from(CHART_SETTINGS | {k: v for k, v in names.items() if k in known})
    env = CHART_IDENTITY | {k: str(v) for k, v in names.items() if k not in known}
    return settings, env


OK, FAILED, SKIPPED = SymbolStatus.OK, SymbolStatus.FAILED, SymbolStatus.SKIPPED
OK_REPORT = (("BTCUSDT", OK), ("ETHUSDT", OK), ("BNBUSDT", OK))


def make_report(
    *results: tuple[str, SymbolStatus],
    reason: EndReason = EndReason.OK,
    signum: int | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
) -> PassReport:
    """results: (symbol, status); failed ones get an error, ok ones 7 new records."""
    return PassReport(
        pass_number=1,
        started_at="2025-06-01T10:00:00+00:00",
        finished_at="2025-06-01T10:00:02+00:00",
        duration=2.345,
        reason=reason,
        signum=signum,
        shard_index=shard_index,
        shard_count=shard_count,
        results=[
            SymbolResult(
                symbol,
                status,
                new_records=7 if status == OK else 0,
                attempts=1,
                duration=0.1,
                error=f"HTTP 400: símbolo {symbol} desconocido" if status == FAILED else None,
            )
            for symbol, status in results
        ],
    )


def leases(api: ApiServer) -> dict[str, dict[str, Any]]:
    return api.objects(LEASES, NAMESPACE)


def events(api: ApiServer) -> list[dict[str, Any]]:
    return list(api.objects(EVENTS, NAMESPACE).values())


def status_data(api: ApiServer, name: str = "coin-sync-status") -> dict[str, Any]:
    configmap = api.objects(CONFIGMAPS, NAMESPACE).get(name)
    assert configmap is not None, "no status ConfigMap"
    return {key: json.loads(value) for key, value in configmap["data"].items()}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether condition() became true within timeout (a generous bound, never a measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class RenewClock(RealClock):
    """Real wall time; the renewer's waits last `every` seconds instead of a third of the
    Lease, `ticks` times, then block until it is stopped. `waits` records what it asked for."""

    def __init__(self, ticks: int, every: float = 0.0) -> None:
        self.ticks = ticks
        self.every = every
        self.waits: list[float] = []
        self.parked = threading.Event()  # set once the ticks are spent

    def sleep(self, stop: Stop, seconds: float) -> bool:
        self.waits.append(seconds)
        if len(self.waits) <= self.ticks:
            return stop.wait(self.every)
        self.parked.set()
        return stop.wait(None)


IDENTITY = ("POD_NAME", "POD_NAMESPACE", "JOB_NAME", "JOB_UID", "POD_UID")  # downward API, not settings


def pass_env(backend: FakeBackend, tmp_path: Path, kubeconfig: Path | None, **extra: str) -> dict[str, str]:
    """The environment the chart gives a pass, and nothing inherited that could change it."""
    dropped = set(setting_names()) | {"CONFIG_FILE", "JOB_COMPLETION_INDEX", "KUBECONFIG", *IDENTITY}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("KUBERNETES_")}
    env |= {
        "BACKEND_URL": backend.url,
        "LOG_DIR": str(tmp_path / "logs"),
        "TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),  # not /dev/termination-log
        "BACKEND_WAIT_SECONDS": "5",
        "RETRY_DELAY_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }
    if kubeconfig is not None:
        env |= {
            "K8S_INTEGRATION": "on",
            "KUBECONFIG": str(kubeconfig),
            "POD_NAME": "coin-sync-29000000-abcde",
            "POD_NAMESPACE": NAMESPACE,
            "JOB_NAME": "coin-sync-29000000",
            "LEASE_NAME": "coin-sync-lock",
            "STATUS_CONFIGMAP": "coin-sync-status",
        }
    return env | extra


def python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """This interpreter run to completion in the repository, its output captured."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " - WARNING - " in line]
