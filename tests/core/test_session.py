"""The guarded session (coin_sync/session.py) picks the run lock: outside a cluster the file
lock, without ever loading the k8s package; with the integration on, the Kubernetes guard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fake_backend import FakeBackend
from harness import REPO, pass_env

MAIN_AND_LOADED = (
    "import json, sys\n"
    "from coin_sync.cli import main\n"
    "code = main(['run'])\n"
    "loaded = sorted(m for m in sys.modules if m == 'coin_sync.k8s' or m.startswith('coin_sync.k8s.'))\n"
    "print(json.dumps({'exit': code, 'loaded': loaded}))\n"
)


def _main(env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-c", MAIN_AND_LOADED]
    proc = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_a_pass_outside_a_cluster_takes_the_file_lock_and_never_loads_the_k8s_package(
    fake_backend: FakeBackend, tmp_path: Path
) -> None:
    env = pass_env(tmp_path, BACKEND_URL=fake_backend.url, K8S_LOCK_REQUIRED="true") | {"K8S_INTEGRATION": "auto"}
    assert "KUBERNETES_SERVICE_HOST" not in env

    result = _main(env)

    assert result == {"exit": 0, "loaded": []}
    assert len(fake_backend.sync_calls()) == 3
    assert (tmp_path / "logs" / ".coin-sync.lock").exists()  # the file lock was the one taken


def test_the_k8s_check_can_fail(fake_backend: FakeBackend, tmp_path: Path) -> None:
    """With the integration on (a kubeconfig that cannot load: the pass fails open), the
    session opens the Kubernetes guard: the package loads, and the file lock is not taken."""
    env = pass_env(tmp_path, BACKEND_URL=fake_backend.url, KUBECONFIG=str(tmp_path / "missing"))
    env["K8S_INTEGRATION"] = "on"

    result = _main(env)

    assert result["exit"] == 0 and "coin_sync.k8s" in result["loaded"]
    assert not (tmp_path / "logs" / ".coin-sync.lock").exists()
