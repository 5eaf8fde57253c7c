"""Fixtures for the Kubernetes integration tests: the API emulator and its kubeconfig."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_api import NAMESPACE, ApiServer, write_kubeconfig

from coin_sync.config import Settings


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
def make_settings() -> Callable[..., Settings]:
    """Settings as the chart sets them; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "k8s_integration": "on",
            "pod_name": "coin-sync-29000000-abcde",
            "pod_namespace": NAMESPACE,
            "job_name": "coin-sync-29000000",
            "lease_name": "coin-sync-lock",
            "lease_duration_seconds": 60,
            "status_configmap": "coin-sync-status",
        }
        return Settings(**(values | overrides))

    return make


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("coin_sync.tests.k8s")
