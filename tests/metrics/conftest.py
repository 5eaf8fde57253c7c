"""Fixtures of the metrics tests: real Prometheus tools (tests/prom_tools.py) and real
passes, `python -m coin_sync run` as a subprocess against the fake backend."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The core helpers (harness) and the container ones (the real loop's process).
for folder in ("core", "container"):
    helpers = str(Path(__file__).resolve().parents[1] / folder)
    if helpers not in sys.path:
        sys.path.insert(0, helpers)

import prom_tools  # noqa: E402
from harness import REPO, Run, pass_env  # noqa: E402


@dataclass
class PassRun(Run):
    summary_file: Path = Path()

    @property
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.summary_file.read_text(encoding="utf-8"))
        return data


RunPass = Callable[..., PassRun]


@pytest.fixture
def run_coin_sync(tmp_path: Path) -> RunPass:
    """run_coin_sync(**ENV) -> PassRun: one real pass to completion, with a SUMMARY_FILE."""
    count = 0

    def run(**env: str) -> PassRun:
        nonlocal count
        count += 1
        summary = tmp_path / f"summary-{count}.json"
        full_env = pass_env(tmp_path, SUMMARY_FILE=str(summary), **env)
        for name in ("POD_NAMESPACE", "CRONJOB_NAME"):
            if name not in env:
                full_env.pop(name, None)
        proc = subprocess.run(
            [sys.executable, "-m", "coin_sync", "run"],
            env=full_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )
        return PassRun(proc.returncode, proc.stdout, proc.stderr, Path(full_env["LOG_DIR"]), summary)

    return run


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[prom_tools.Server]:
    yield from prom_tools.pushgateway(tmp_path)
