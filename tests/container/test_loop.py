"""run_loop() itself, with a tiny stand-in for the pass: fast and independent of the CLI.

The stand-in (CHILD below) records when each pass starts and ends and which signals it
got, and follows a per-pass plan: sleep, exit code, ignore signals, linger after one,
or signal the loop (its parent), which is how these tests deliver SIGTERM/SIGINT at an
exact moment of the loop's life.
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

from coin_sync.config import Settings
from coin_sync.loop import KILL_MARGIN_SECONDS, run_loop

CHILD = r"""
import json, os, signal, subprocess, sys, time

n = int(os.environ["SYNC_PASS_NUMBER"])
plans = json.loads(os.environ["PLAN"])
plan = plans.get(str(n), plans.get("*", {}))

def note(*words):
    with open(os.environ["RECORD"], "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")

note("start", n, time.monotonic(), os.environ.get("MARK", "-"), os.environ.get("PYTEST_CURRENT_TEST", "-")[:1])

def on_signal(signum, frame):
    note("signal", n, signal.Signals(signum).name, time.monotonic())
    if plan.get("ignore_signals"):
        return
    time.sleep(plan.get("linger", 0))
    note("end", n, time.monotonic())
    sys.exit(128 + signum)

signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
if "signal_loop" in plan:
    os.kill(os.getppid(), getattr(signal, plan["signal_loop"]))
if "signal_loop_later" in plan:
    # A grandchild that outlives this pass signals the loop while it sleeps between passes.
    delay, name = plan["signal_loop_later"]
    subprocess.Popen([sys.executable, "-c",
                      f"import os, signal, time; time.sleep({delay}); os.kill({os.getppid()}, signal.{name})"])
deadline = time.monotonic() + plan.get("sleep", 0)
while (left := deadline - time.monotonic()) > 0:
    time.sleep(left)
note("end", n, time.monotonic())
sys.exit(plan.get("exit", 0))
"""


class Record:
    """What the stand-in passes wrote: starts, ends and signals per pass number."""

    def __init__(self, path: Path) -> None:
        self.starts: dict[int, float] = {}
        self.ends: dict[int, float] = {}
        self.signals: dict[int, list[str]] = {}
        self.marks: dict[int, tuple[str, str]] = {}
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            kind, n, *rest = line.split()
            if kind == "start":
                self.starts[int(n)] = float(rest[0])
                self.marks[int(n)] = (rest[1], rest[2])
            elif kind == "end":
                self.ends[int(n)] = float(rest[0])
            else:
                self.signals.setdefault(int(n), []).append(rest[0])


def loop_times(records: ListHandler, what: str) -> dict[int, float]:
    """When the loop itself saw pass N start (what="iniciada") or end ("terminada").

    Taken in the loop's process, so a child interpreter's start-up time (which a busy
    machine stretches) does not blur the schedule being measured.
    """
    pattern = re.compile(rf"Pasada #(\d+) {what}\b")
    found = ((pattern.match(r.getMessage()), r.created) for r in records.records)
    return {int(m.group(1)): created for m, created in found if m}


def run(
    tmp_path: Path,
    log: logging.Logger,
    plan: dict[str, dict[str, Any]],
    *,
    interval: float = 0.3,
    grace: float = 2.0,
    environ: dict[str, str] | None = None,
) -> tuple[int, float, Record]:
    """run_loop with the stand-in; (exit code, seconds it took, record)."""
    record = tmp_path / "record.txt"
    env = {"PATH": os.environ.get("PATH", ""), "PLAN": json.dumps(plan), "RECORD": str(record)}
    if environ is not None:
        env.update(environ)
    settings = Settings(sync_interval_seconds=interval, shutdown_grace_seconds=grace)
    started = time.monotonic()
    code = run_loop(settings, [sys.executable, "-c", CHILD], log, environ=env)
    return code, time.monotonic() - started, Record(record)


def test_passes_are_numbered_and_start_an_interval_apart(
    tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]
) -> None:
    log, records = loop_log
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
    before = [signal.getsignal(s) for s in handled]
    # Passes of 0.3 s every 0.5 s: start to start is 0.5 s, end to start would be 0.8 s.
    plan = {"*": {"sleep": 0.3}, "4": {"signal_loop": "SIGTERM", "sleep": 5}}
    code, _, rec = run(tmp_path, log, plan, interval=0.5, environ={"MARK": "given"})

    assert code == 0
    assert sorted(rec.starts) == [1, 2, 3, 4]
    starts = loop_times(records, "iniciada")
    gaps = [starts[n + 1] - starts[n] for n in (1, 2, 3)]
    assert all(0.45 <= gap <= 0.6 for gap in gaps), gaps
    # Each pass gets exactly the given environment plus its number: nothing of pytest's.
    assert set(rec.marks.values()) == {("given", "-")}
    assert rec.signals == {4: ["SIGTERM"]}  # forwarded to the running pass
    messages = records.messages()
    for n in (1, 2, 3):
        assert any(m.startswith(f"Pasada #{n} terminada con código 0 ") for m in messages), messages
    assert any(m.startswith("Pasada #4 terminada con código 143 ") for m in messages), messages
    assert [signal.getsignal(s) for s in handled] == before  # put back as they were


def test_without_environ_the_passes_inherit_os_environ(
    tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.txt"
    monkeypatch.setenv("PLAN", json.dumps({"1": {"signal_loop": "SIGTERM"}}))
    monkeypatch.setenv("RECORD", str(record))
    monkeypatch.setenv("MARK", "inherited")
    monkeypatch.setenv("SYNC_PASS_NUMBER", "99")  # the loop's own number wins

    code = run_loop(Settings(sync_interval_seconds=0.3), [sys.executable, "-c", CHILD], loop_log[0])

    assert code == 0
    rec = Record(record)
    assert list(rec.starts) == [1]
    assert rec.marks[1][0] == "inherited"


def test_failing_passes_never_stop_the_loop(tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]) -> None:
    log, records = loop_log
    plan = {"1": {"exit": 1}, "2": {"exit": 3}, "3": {"exit": 137}, "4": {"signal_loop": "SIGTERM", "sleep": 5}}
    code, _, rec = run(tmp_path, log, plan, interval=0.1)

    assert code == 0
    assert sorted(rec.starts) == [1, 2, 3, 4]
    warnings = records.messages(logging.WARNING)
    for n, exit_code in ((1, 1), (2, 3), (3, 137)):
        assert any(m.startswith(f"Pasada #{n} terminada con código {exit_code} ") for m in warnings), warnings


def test_exit_2_stops_the_loop_with_exit_2(tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]) -> None:
    log, records = loop_log
    code, took, rec = run(tmp_path, log, {"2": {"exit": 2}}, interval=0.1)

    assert code == 2
    assert sorted(rec.starts) == [1, 2]
    assert took < 1.0
    errors = records.messages(logging.ERROR)
    assert any(m.startswith("Pasada #2 terminada con código 2 ") for m in errors), errors
    assert any("el bucle se detiene" in m for m in errors), errors


def test_overrun_is_followed_at_once_without_a_burst(
    tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]
) -> None:
    log, records = loop_log
    # Pass 1 takes 1.2 s against a 0.5 s interval: two ticks are missed.
    plan = {"1": {"sleep": 1.2}, "4": {"signal_loop": "SIGTERM", "sleep": 5}}
    code, _, rec = run(tmp_path, log, plan, interval=0.5)

    assert code == 0
    assert sorted(rec.starts) == [1, 2, 3, 4]
    starts, ends = loop_times(records, "iniciada"), loop_times(records, "terminada")
    assert starts[2] - ends[1] < 0.1  # at once
    # Then back to the interval, counted from pass 2's start: no catching up (a burst
    # would start pass 3 as soon as pass 2, which does nothing, has ended).
    assert 0.45 <= starts[3] - starts[2] <= 0.6
    assert 0.45 <= starts[4] - starts[3] <= 0.6
    assert any("más que el intervalo" in m and "#1" in m for m in records.messages(logging.WARNING))


def test_sigterm_waits_for_the_pass_to_finish_its_work(
    tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]
) -> None:
    log, _ = loop_log
    # The pass needs 0.5 s after the signal to finish (in-flight syncs), within the grace.
    plan = {"1": {"signal_loop": "SIGTERM", "linger": 0.5, "sleep": 5}}
    code, took, rec = run(tmp_path, log, plan, grace=2.0)

    assert code == 0
    assert list(rec.starts) == [1]  # no new pass
    assert rec.signals == {1: ["SIGTERM"]}
    assert 0.5 <= took < 1.5


def test_sigint_is_forwarded_as_sigint(tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]) -> None:
    log, records = loop_log
    code, _, rec = run(tmp_path, log, {"2": {"signal_loop": "SIGINT", "sleep": 5}}, interval=0.1)

    assert code == 0
    assert sorted(rec.starts) == [1, 2]
    assert rec.signals == {2: ["SIGINT"]}
    assert any(m.startswith("Pasada #2 terminada con código 130 ") for m in records.messages(logging.INFO))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_pass_that_overruns_the_grace_is_killed(
    tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]
) -> None:
    log, records = loop_log
    grace = 0.5
    plan = {"1": {"signal_loop": "SIGTERM", "ignore_signals": True, "sleep": 30}}
    code, _, rec = run(tmp_path, log, plan, grace=grace)
    returned = time.monotonic()

    assert code == 0
    signalled = rec.starts[1]  # the pass signals the loop as soon as it starts
    # Gone within SHUTDOWN_GRACE_SECONDS + 1 s of the signal, and not before the grace.
    assert grace + 1 - KILL_MARGIN_SECONDS - 0.05 <= returned - signalled <= grace + 1
    assert 1 not in rec.ends  # it never finished: killed
    assert any(m.startswith("Pasada #1 terminada con código 137 (señal SIGKILL)") for m in records.messages())
    assert any("se mata" in m for m in records.messages(logging.WARNING))


def test_a_signal_while_sleeping_ends_the_loop_at_once(
    tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]
) -> None:
    log, records = loop_log
    # Interval of a minute: the SIGINT lands 0.3 s into the sleep after pass 1.
    plan = {"1": {"signal_loop_later": [0.3, "SIGINT"]}}
    code, took, rec = run(tmp_path, log, plan, interval=60)

    assert code == 0
    assert list(rec.starts) == [1]
    assert took < 1.0
    assert any("entre pasadas" in m for m in records.messages(logging.INFO))


def test_a_command_that_cannot_start_stops_the_loop(loop_log: tuple[logging.Logger, ListHandler]) -> None:
    log, records = loop_log
    code = run_loop(Settings(sync_interval_seconds=0.1), ["/nonexistent/python", "-m", "coin_sync", "run"], log)

    assert code == 2
    assert any(m.startswith("No se pudo iniciar la pasada #1") for m in records.messages(logging.ERROR))


def test_outside_the_main_thread_it_still_runs(tmp_path: Path, loop_log: tuple[logging.Logger, ListHandler]) -> None:
    # No signal handlers can be installed there; the loop must still schedule and reap.
    log, records = loop_log
    result: list[tuple[int, float, Record]] = []
    worker = threading.Thread(
        target=lambda: result.append(run(tmp_path, log, {"1": {"sleep": 0.2}, "3": {"exit": 2}}, interval=0.1))
    )
    worker.start()
    worker.join(10)

    code, _, rec = result[0]
    assert code == 2
    assert sorted(rec.starts) == [1, 2, 3]
    # It notices the end of a pass within its polling period (0.1 s).
    assert loop_times(records, "iniciada")[2] - loop_times(records, "terminada")[1] < 0.2
