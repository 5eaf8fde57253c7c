"""Run the real program as a subprocess with a clean environment, or one pass in-process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from coin_sync.stop import Stop
from coin_sync.sync.state import StateStore
from harness import REPO, Run, pass_env
from inproc import PassRun, run_pass_inproc
from virtual_clock import VirtualClock

RunCli = Callable[..., Run]


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return pass_env(tmp_path)


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


@pytest.fixture
def run_pass() -> Callable[..., PassRun]:
    """run_pass(clock=None, stop=None, sync_cost=0, state=None, **ENV) -> PassRun: one pass
    in-process on a virtual clock (tests/core/inproc.py)."""

    def run(
        clock: VirtualClock | None = None,
        stop: Stop | None = None,
        sync_cost: float = 0.0,
        state: StateStore | None = None,
        **env: str,
    ) -> PassRun:
        return run_pass_inproc(env, clock=clock, stop=stop, sync_cost=sync_cost, state=state)

    return run
