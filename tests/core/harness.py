"""Helpers to run the real program as a subprocess with a clean environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def clean_env(**overrides: str) -> dict[str, str]:
    """The parent's environment minus anything that configures coin-sync or Kubernetes."""
    from coin_sync.config.settings import FIELDS

    drop = {f.env for f in FIELDS} | {"CONFIG_FILE", "JOB_COMPLETION_INDEX", "KUBERNETES_SERVICE_HOST", "KUBECONFIG"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(REPO)
    env.update(overrides)
    return env


def pass_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """clean_env plus what every test pass uses: logs in tmp_path, short waits, no cluster."""
    return clean_env(
        LOG_DIR=str(tmp_path / "logs"),
        BACKEND_WAIT_SECONDS="2",
        RETRY_DELAY_SECONDS="0.01",
        RETRY_MAX_DELAY_SECONDS="0.05",
        K8S_INTEGRATION="off",
        TERMINATION_MESSAGE_PATH=str(tmp_path / "termination-log"),
        **overrides,
    )


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
