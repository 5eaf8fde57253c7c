"""Fixtures for the Kubernetes integration tests: the API emulator, its kubeconfig, and
guards opened against it with the settings and pod identity the chart gives a pass."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_support import OpenGuard, settings_and_env
from kube_api import NAMESPACE, ApiServer, write_kubeconfig

from coin_sync.k8s import open_guard
from coin_sync.k8s.guard import KubeGuard
from coin_sync.locks.guard import PassGuard


@pytest.fixture
def apiserver() -> Iterator[ApiServer]:
    server = ApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubeconfig(apiserver: ApiServer, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", apiserver.url, NAMESPACE)


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("coin_sync.tests.k8s")


@pytest.fixture
def opened(log: logging.Logger) -> Iterator[list[PassGuard]]:
    """Guards a test opened: their renewers are stopped at teardown, so none outlives it."""
    guards: list[PassGuard] = []
    yield guards
    for guard in guards:
        if isinstance(guard, KubeGuard):
            guard.lease.stop_renewing()


@pytest.fixture
def guard_for(kubeconfig: Path, log: logging.Logger, opened: list[PassGuard]) -> OpenGuard:
    """guard_for(NAME=value..., **open_guard keywords): open_guard against the emulator."""

    def open_one(*, environ: dict[str, str] | None = None, **names: Any) -> PassGuard:
        keywords = {k: names.pop(k) for k in ("files", "timeouts", "clock") if k in names}
        settings, env = settings_and_env(names)
        env = {"KUBECONFIG": str(kubeconfig)} | env if environ is None else environ
        guard = open_guard(settings, log, env, required=settings.kubernetes.lock_required, **keywords)
        opened.append(guard)
        return guard

    return open_one
