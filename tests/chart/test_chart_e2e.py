"""Run the pass the way the CronJob would: argv and env from the rendered Job, as a process."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import pytest

from .helm import (
    CHART_DIR,
    FAKE_FIELDS,
    REPO_ROOT,
    Doc,
    Helm,
    find_one,
    job_command_and_env,
    job_spec,
)

FULLNAME = "rel-coin-sync"


class Backend(Protocol):
    """What these tests use of tests/fake_backend.py's FakeBackend."""

    @property
    def url(self) -> str: ...

    def sync_calls(self, symbol: str | None = None) -> list[Any]: ...


# --------------------------------------------------------------------------------------
# job_command_and_env itself (no program needed)
# --------------------------------------------------------------------------------------


def test_command_and_env_of_the_defaults(default_docs: list[Doc]) -> None:
    argv, env = job_command_and_env(default_docs)
    assert argv == [sys.executable, "-m", "coin_sync", "run"]
    expected = dict(find_one(default_docs, "ConfigMap", f"{FULLNAME}-env")["data"])
    expected.update(
        POD_NAME=FAKE_FIELDS["metadata.name"],
        POD_NAMESPACE=FAKE_FIELDS["metadata.namespace"],
        JOB_NAME=FAKE_FIELDS["metadata.labels['batch.kubernetes.io/job-name']"],
        JOB_UID=FAKE_FIELDS["metadata.labels['batch.kubernetes.io/controller-uid']"],
        POD_UID=FAKE_FIELDS["metadata.uid"],
    )
    assert env == expected


def test_command_and_env_of_every_feature(helm: Helm, tmp_path: Path) -> None:
    docs = helm.render(CHART_DIR / "ci" / "full-values.yaml", kube_version="1.31.0")
    # extraVolumes mounts the user's own ConfigMap: the helper needs it to make the files.
    ca_bundle: Doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ca-bundle"},
        "data": {"ca.pem": "PEM"},
    }
    with pytest.raises(LookupError, match="ca-bundle"):
        job_command_and_env(docs, files_root=tmp_path)
    argv, env = job_command_and_env(
        [*docs, ca_bundle], entrypoint=["coin-sync"], files_root=tmp_path, completion_index=2
    )
    assert argv == ["coin-sync", "run", "--log-level", "DEBUG"]
    assert env["JOB_COMPLETION_INDEX"] == "2"
    assert env["SHARD_COUNT"] == "3"
    assert env["TZ"] == "Europe/Madrid"
    assert env["NODE_NAME"] == FAKE_FIELDS["spec.nodeName"]
    assert "BACKEND_TOKEN" not in env
    # Mounted files exist under files_root and the env points at them.
    assert env["LOG_DIR"] == str(tmp_path / "var/log/coin-sync")
    assert Path(env["LOG_DIR"]).is_dir()
    assert env["SUMMARY_FILE"] == str(tmp_path / "var/log/coin-sync/summary.json")
    assert Path(env["BACKEND_TOKEN_FILE"]).read_text() == "s3cr3t-t0ken"
    assert (env["MAX_RETRIES"], env["RETRY_MAX_DELAY_SECONDS"]) == ("6", "45")
    assert "CONFIG_FILE" not in env  # one surface: every setting is an env var
    assert (tmp_path / "tmp").is_dir()
    assert (tmp_path / "etc/ssl/custom/ca.pem").read_text() == "PEM"


def test_command_and_env_needs_the_existing_secret(helm: Helm) -> None:
    docs = helm.render(CHART_DIR / "ci" / "existing-secret-values.yaml")
    with pytest.raises(LookupError, match="backend-credentials"):
        job_command_and_env(docs)
    secret: Doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "backend-credentials"},
        "data": {"api-token": base64.b64encode(b"from-my-secret").decode()},
    }
    _, env = job_command_and_env([*docs, secret])
    assert env["BACKEND_TOKEN"] == "from-my-secret"


def test_command_and_env_expands_references(helm: Helm) -> None:
    docs = helm.render(
        set_json=['extraEnv=[{"name":"WHERE","value":"$(BACKEND_URL)/x $$(LIT)"}]'],
        set_values=["extraArgs={--backend-url,$(BACKEND_URL)}"],
    )
    argv, env = job_command_and_env(docs)
    assert env["WHERE"] == "http://backend:8888/x $(LIT)"
    assert argv[-2:] == ["--backend-url", "http://backend:8888"]


# --------------------------------------------------------------------------------------
# The real pass against the fake backend
# --------------------------------------------------------------------------------------


def run_container(argv: list[str], env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **env,
        # No cluster here: the Kubernetes integration stays off.
        "K8S_INTEGRATION": "off",
    }
    return subprocess.run(
        argv,
        env=full_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cronjob_pass_against_fake_backend(helm: Helm, fake_backend: Backend, tmp_path: Path) -> None:
    docs = helm.render(set_values=[f"backend.url={fake_backend.url}"])
    argv, env = job_command_and_env(docs, files_root=tmp_path / "pod")
    assert argv == [sys.executable, "-m", "coin_sync", "run"]
    assert env["BACKEND_URL"] == fake_backend.url
    assert env["LOG_DIR"] == str(tmp_path / "pod" / "logs")

    proc = run_container(argv, env, tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(fake_backend.sync_calls()) == 3
    assert list(Path(env["LOG_DIR"]).glob("coin_sync_*.txt")), "sin ficheros de log en LOG_DIR"


def test_sharded_cronjob_passes_with_token_and_config(helm: Helm, fake_backend: Backend, tmp_path: Path) -> None:
    docs = helm.render(
        set_values=[
            f"backend.url={fake_backend.url}",
            "backend.token=e2e-token",
            "backend.tokenAsFile=true",
            "config.SYNC_CONCURRENCY=2",
            "config.SUMMARY_FILE=/logs/summary.json",
            "shards=2",
        ],
        kube_version="1.31.0",
    )
    assert job_spec(docs)["completionMode"] == "Indexed"
    for index in range(2):
        root = tmp_path / f"pod-{index}"
        argv, env = job_command_and_env(docs, files_root=root, completion_index=index)
        assert env["SYNC_CONCURRENCY"] == "2"
        proc = run_container(argv, env, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        summary = json.loads((root / "logs" / "summary.json").read_text(encoding="utf-8"))
        assert summary["exit_code"] == 0
    calls = fake_backend.sync_calls()
    assert len(calls) == 3  # the two shards split the 3 symbols, none twice
    assert {call.header("Authorization") for call in calls} == {"Bearer e2e-token"}
