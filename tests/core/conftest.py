"""Run the real program as a subprocess, with a clean environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - coin_sync - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - "
    r"\[[\w.]+\.py:\d+\] - .*$"
)


def clean_env(**overrides: str) -> dict[str, str]:
    """The parent's environment minus anything that configures coin-sync or Kubernetes."""
    from coin_sync.config import FIELDS

    drop = {f.env for f in FIELDS} | {"CONFIG_FILE", "JOB_COMPLETION_INDEX", "KUBERNETES_SERVICE_HOST", "KUBECONFIG"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(REPO)
    env.update(overrides)
    return env


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    log_dir: Path

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if needle in line]

    def log_files(self) -> dict[str, str]:
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(self.log_dir.glob("*.txt"))}


RunCli = Callable[..., Run]


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        LOG_DIR=str(tmp_path / "logs"),
        BACKEND_WAIT_SECONDS="2",
        RETRY_DELAY_SECONDS="0.01",
        RETRY_MAX_DELAY_SECONDS="0.05",
        K8S_INTEGRATION="off",
        TERMINATION_MESSAGE_PATH=str(tmp_path / "termination-log"),
    )


@pytest.fixture
def run_cli(base_env: dict[str, str]) -> RunCli:
    """run_cli(*args, timeout=30, **ENV) -> Run: `python -m coin_sync ARGS` to completion."""

    def run(*args: str, timeout: float = 30, **env: str) -> Run:
        full_env = {**base_env, **env}
        proc = subprocess.run(
            [sys.executable, "-m", "coin_sync", *args],
            env=full_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr, Path(full_env["LOG_DIR"]))

    return run
