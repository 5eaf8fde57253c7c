"""run_loop() with real child processes, for what fakes cannot show: Popen and its
environment, real SIGTERM/SIGINT through Stop.listen(), a real SIGKILL, and the loop
outside the main thread (no handlers there; a child's exit must still wake it).

The stand-in pass (CHILD) records its start and the signals it gets, and follows a
per-pass plan; it can signal the loop (its parent), which is how a real signal reaches
the loop at a known moment. Timing is asserted only as lower bounds: the policy's exact
times are proved on virtual time in test_loop.py.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from container_support import ListHandler

from coin_sync.config.settings import Settings
from coin_sync.config.table import settings_from
from coin_sync.loop.wrapper import KILL_MARGIN_SECONDS, run_loop

LoopLog = tuple[logging.Logger, ListHandler]

CHILD = r"""
import json, os, signal, sys, time

n = os.environ["SYNC_PASS_NUMBER"]
plan = json.loads(os.environ["PLAN"]).get(n, {})

def note(*words):
    with open(os.environ["RECORD"], "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")

note("start", n, os.environ.get("MARK", "-"), os.environ.get("PYTEST_CURRENT_TEST", "-")[:1])
got = []
need = plan.get("exit_on_signal", 1)  # signals it takes to make it exit; 0: it ignores them

def on_signal(signum, frame):  # only records: a second signal may interrupt a handler
    note("signal", n, signal.Signals(signum).name)
    got.append(signum)

signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
for name in plan.get("signal_loop", []):
    os.kill(os.getppid(), getattr(signal, name))
deadline = time.monotonic() + plan.get("sleep", 0)
while time.monotonic() < deadline and not (need and len(got) >= need):
    time.sleep(0.01)
sys.exit(128 + got[-1] if need and len(got) >= need else plan.get("exit", 0))
"""


def run(tmp_path: Path, log: logging.Logger, plan: dict[str, dict[str, Any]], **kw: Any) -> tuple[int, list[str]]:
    """run_loop with the stand-in; (exit code, the lines it recorded)."""
    record = tmp_path / "record.txt"
    env = {"PATH": os.environ.get("PATH", ""), "PLAN": json.dumps(plan), "RECORD": str(record), "MARK": "given"}
    code = run_loop(settings(**kw), [sys.executable, "-c", CHILD], log, environ=env)
    return code, record.read_text().splitlines() if record.exists() else []


def settings(interval: float = 0.1, grace: float = 2.0) -> Settings:
    return settings_from({"SYNC_INTERVAL_SECONDS": interval, "SHUTDOWN_GRACE_SECONDS": grace})


def test_each_pass_gets_exactly_the_given_environment_and_its_number(tmp_path: Path, loop_log: LoopLog) -> None:
    log, records = loop_log
    code, lines = run(tmp_path, log, {"3": {"exit": 2}})

    assert code == 2
    # Nothing of pytest's environment (PYTEST_CURRENT_TEST) reaches the pass.
    assert lines == ["start 1 given -", "start 2 given -", "start 3 given -"]
    assert "Pasada #3 terminada con código 2 en" in " ".join(records.messages(logging.ERROR))


def test_without_environ_the_passes_inherit_os_environ(
    tmp_path: Path, loop_log: LoopLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.txt"
    monkeypatch.setenv("PLAN", json.dumps({"1": {"exit": 2}}))
    monkeypatch.setenv("RECORD", str(record))
    monkeypatch.setenv("MARK", "inherited")
    monkeypatch.setenv("SYNC_PASS_NUMBER", "99")  # the loop's own number wins

    assert run_loop(settings(), [sys.executable, "-c", CHILD], loop_log[0]) == 2
    assert record.read_text().split()[:3] == ["start", "1", "inherited"]


def test_real_signals_are_all_forwarded_and_the_handlers_put_back(tmp_path: Path, loop_log: LoopLog) -> None:
    log, records = loop_log
    before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    # Pass 2 sends the loop SIGINT then SIGTERM, and ends on the second one it gets back.
    plan = {"2": {"signal_loop": ["SIGINT", "SIGTERM"], "exit_on_signal": 2, "sleep": 30}}
    code, lines = run(tmp_path, log, plan)

    assert code == 0
    assert lines[:2] == ["start 1 given -", "start 2 given -"]
    # Both, in either order: the loop's threads may take two signals at once, and order
    # is only proved on virtual time (test_loop.py).
    assert sorted(lines[2:]) == ["signal 2 SIGINT", "signal 2 SIGTERM"]
    info = records.messages(logging.INFO)
    assert any(re.match(r"Pasada #2 terminada con código (130|143) ", m) for m in info), info
    assert info[-1] == "Bucle detenido tras 2 pasada(s)"
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)] == before


def test_a_pass_that_ignores_the_signal_is_killed_after_the_grace(tmp_path: Path, loop_log: LoopLog) -> None:
    log, records = loop_log
    plan = {"1": {"signal_loop": ["SIGTERM"], "exit_on_signal": 0, "sleep": 30}}
    started = time.monotonic()
    code, lines = run(tmp_path, log, plan, grace=0.0)

    assert code == 0
    assert time.monotonic() - started >= 1 - KILL_MARGIN_SECONDS  # it did wait the grace + 1 - margin
    assert lines == ["start 1 given -", "signal 1 SIGTERM"]
    assert any(m.startswith("Pasada #1 terminada con código 137 (señal SIGKILL)") for m in records.messages())


def test_a_command_that_cannot_start_stops_the_loop_with_one_error(loop_log: LoopLog) -> None:
    log, records = loop_log
    code = run_loop(settings(), ["/nonexistent/python", "-m", "coin_sync", "run"], log)

    assert code == 2
    assert records.messages(logging.ERROR) == [
        "No se pudo iniciar la pasada #1 (/nonexistent/python): No such file or directory"
    ]


def test_outside_the_main_thread_the_end_of_a_pass_still_wakes_the_loop(tmp_path: Path, loop_log: LoopLog) -> None:
    # No signal handlers can be installed there, and the loop never polls: only the
    # thread waiting on each child can tell it that the pass ended.
    log, records = loop_log
    result: list[tuple[int, list[str]]] = []
    worker = threading.Thread(target=lambda: result.append(run(tmp_path, log, {"1": {"sleep": 0.2}, "3": {"exit": 2}})))
    worker.start()
    worker.join(60)

    assert not worker.is_alive(), records.messages()
    code, lines = result[0]
    assert code == 2
    assert [line.split()[1] for line in lines] == ["1", "2", "3"]
