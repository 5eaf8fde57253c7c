"""run_loop(): its time policy on virtual time with fake children, then a few real ones.

The fake children (FakeChild) run on a VirtualClock: each exits when its plan says, in
virtual seconds, and "signals" reach the loop through a SignalStop at exact virtual
times, so every start, forward and kill is asserted to the exact virtual second in no
real time at all. What needs the OS (Popen, real signals through Stop.listen(), SIGKILL,
the loop outside the main thread) is in test_loop_processes.py and test_loop_e2e.py;
/metrics served over HTTP by the real loop, in tests/metrics/test_loop_metrics.py.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from container_support import ListHandler

from coin_sync.config.table import settings_from
from coin_sync.loop.wrapper import KILL_MARGIN_SECONDS, run_loop
from coin_sync.observe.loop_metrics import LoopMetrics
from coin_sync.outcome import PassReport
from coin_sync.stop import Stop
from prom_tools import samples
from virtual_clock import VirtualClock

TERM, INT, KILL = signal.SIGTERM, signal.SIGINT, signal.SIGKILL
LoopLog = tuple[logging.Logger, ListHandler]


@dataclass(frozen=True)
class Plan:
    """One fake pass: it runs `runs` virtual seconds and exits `code`. On the first signal
    forwarded to it, it exits 128+N `linger` seconds later (None: it ignores signals)."""

    runs: float = 0.2
    code: int = 0
    linger: float | None = 0.0
    signals: tuple[tuple[float, int], ...] = ()  # (seconds after its start, signal) sent to the loop
    cannot_start: bool = False


class FakeChild:
    """A pass as the loop sees it (the Popen subset in coin_sync.loop.wrapper.Child), on virtual time."""

    def __init__(self, clock: VirtualClock, env: dict[str, str], plan: Plan) -> None:
        self.clock, self.env, self.plan = clock, env, plan
        self.number = int(env["SYNC_PASS_NUMBER"])
        self.pid = 10_000 + self.number
        self.returncode: int | None = None
        self.started = clock.now()
        self.received: list[tuple[float, int]] = []  # (virtual time, signal), SIGKILL included
        summary_file = env.get("SUMMARY_FILE")
        self.summary_file = Path(summary_file) if summary_file else None
        self.found_a_summary = self.summary_file is not None and self.summary_file.exists()
        self._cond = threading.Condition()
        clock.after(plan.runs, lambda: self._exit(plan.code))

    def _exit(self, code: int) -> None:
        with self._cond:
            if self.returncode is None:
                if self.summary_file is not None and code >= 0:  # SIGKILL leaves none, as a real pass
                    self._write_summary(self.summary_file, code)
                self.returncode = code
                self._cond.notify_all()

    def _write_summary(self, path: Path, code: int) -> None:
        """What a real pass writes to its SUMMARY_FILE (no symbols), its times virtual."""
        report = PassReport(
            self.number, started_at="2026-01-01T00:00:00+00:00", duration=self.clock.now() - self.started
        )
        summary: dict[str, Any] = {
            **report.to_dict(),
            "exit_code": code,
            "finished_at": f"2026-01-01T00:00:0{self.number}+00:00",
        }
        path.write_text(json.dumps(summary), encoding="utf-8")

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: self.returncode is not None, timeout):
                raise subprocess.TimeoutExpired(f"pass {self.number}", timeout or 0)
            assert self.returncode is not None
            return self.returncode

    def send_signal(self, sig: int) -> None:
        assert self.returncode is None, f"signal {sig} sent to pass {self.number}, which had ended"
        self.received.append((self.clock.now(), sig))
        linger = self.plan.linger
        if linger is not None and len(self.received) == 1:
            self.clock.after(linger, lambda: self._exit(128 + sig))

    def kill(self) -> None:
        self.received.append((self.clock.now(), KILL))
        self._exit(-KILL)


class SignalStop(Stop):
    """A Stop the test signals synchronously, as Stop.listen()'s watcher thread would."""

    def __init__(self) -> None:
        super().__init__()
        self._given: list[int] = []

    def deliver(self, signum: int) -> None:
        self._given.append(signum)
        if self.signum is None:
            self.signum = signum
        self.request()

    def take_signals(self) -> list[int]:
        taken, self._given = self._given, []
        return taken


class Loop:
    """run_loop on a VirtualClock with FakeChild passes; plans by pass number."""

    def __init__(
        self, plans: Mapping[int, Plan] | None = None, *, interval: float = 1.0, grace: float = 2.0, **settings: Any
    ) -> None:
        self.plans = dict(plans or {})
        self.settings = settings_from({"SYNC_INTERVAL_SECONDS": interval, "SHUTDOWN_GRACE_SECONDS": grace, **settings})
        self.clock = VirtualClock()
        self.stop = SignalStop()
        self.children: list[FakeChild] = []

    def spawn(self, argv: list[str], env: dict[str, str]) -> FakeChild:
        assert argv == ["coin-sync", "run"]
        plan = self.plans.get(int(env["SYNC_PASS_NUMBER"]), Plan())
        if plan.cannot_start:
            raise FileNotFoundError(2, "No such file or directory")
        assert len(self.children) < 50, "the loop never stopped"
        child = FakeChild(self.clock, env, plan)
        for delay, signum in plan.signals:
            self.signal_at(self.clock.now() + delay, signum)
        self.children.append(child)
        return child

    def signal_at(self, when: float, signum: int) -> None:
        self.clock.at(when, lambda: self.stop.deliver(signum))

    def run(self, log: logging.Logger, metrics: LoopMetrics | None = None) -> int:
        env = {"MARK": "given"}
        return run_loop(
            self.settings,
            ["coin-sync", "run"],
            log,
            environ=env,
            clock=self.clock,
            stop=self.stop,
            spawn=self.spawn,
            metrics=metrics,
        )

    @property
    def starts(self) -> list[float]:
        return [c.started for c in self.children]


# --- the schedule ------------------------------------------------------------------------


def test_passes_start_an_interval_apart_start_to_start_and_are_numbered(loop_log: LoopLog) -> None:
    log, records = loop_log
    # Passes of 0.3 s every 1 s: start to start is 1 s (end to start would make it 1.3 s).
    loop = Loop({n: Plan(runs=0.3) for n in (1, 2, 3)} | {4: Plan(runs=30, signals=((0.5, TERM),))})

    assert loop.run(log) == 0
    assert loop.starts == [0.0, 1.0, 2.0, 3.0]
    # Each pass gets exactly the given environment plus its number and, with no
    # PASS_BUDGET_SECONDS set, a budget of 5/6 of the interval.
    assert [c.env for c in loop.children] == [
        {"MARK": "given", "PASS_BUDGET_SECONDS": "0.833", "SYNC_PASS_NUMBER": str(n)} for n in (1, 2, 3, 4)
    ]
    assert loop.children[3].received == [(3.5, TERM)]
    assert loop.clock.now() == 3.5  # it exited at once, so the loop ended at once
    assert records.messages()[0] == (
        "Bucle de sincronización: una pasada cada 1 s (de inicio a inicio), cada una en un proceso nuevo"
    )
    info = records.messages(logging.INFO)
    for n in (1, 2, 3):
        assert f"Pasada #{n} terminada con código 0 en 0.3 s" in info
    assert (
        "SIGTERM recibida: se reenvía a la pasada #4, que tiene 2 s para terminar; no se iniciarán más pasadas" in info
    )
    assert "Pasada #4 terminada con código 143 en 0.5 s" in info  # a signal we forwarded: INFO
    assert info[-1] == "Bucle detenido tras 4 pasada(s)"
    assert "Pasada #1 iniciada (pid 10001)" in records.messages(logging.DEBUG)


def test_a_budget_set_in_the_settings_is_left_to_them(loop_log: LoopLog) -> None:
    log, _ = loop_log
    loop = Loop({1: Plan(runs=30, signals=((0.5, TERM),))})
    loop.settings = settings_from({"SYNC_INTERVAL_SECONDS": 1.0, "PASS_BUDGET_SECONDS": 30.0})
    assert loop.run(log) == 0
    assert "PASS_BUDGET_SECONDS" not in loop.children[0].env  # the pass reads it where the loop did


def test_an_explicit_zero_budget_is_left_alone(loop_log: LoopLog) -> None:
    log, _ = loop_log
    loop = Loop({1: Plan(runs=30, signals=((0.5, TERM),))})
    loop.settings = settings_from({"SYNC_INTERVAL_SECONDS": 1.0, "PASS_BUDGET_SECONDS": 0.0})
    assert loop.run(log) == 0
    assert "PASS_BUDGET_SECONDS" not in loop.children[0].env  # 0 = no budget, not "unset"


def test_an_overrun_is_followed_at_once_and_missed_ticks_are_dropped(loop_log: LoopLog) -> None:
    log, records = loop_log
    # Pass 1 takes 2.5 s against a 1 s interval: the ticks at 1 and 2 are missed. Pass 3
    # takes exactly the interval: also followed at once.
    plans = {1: Plan(runs=2.5), 3: Plan(runs=1.0), 5: Plan(runs=30, signals=((0.1, TERM),))}
    loop = Loop(plans)

    assert loop.run(log) == 0
    # 2 at once after 1; then the interval again from 2's start, no catching up (a burst
    # would start 3 at 2.7, as soon as 2 ended).
    assert loop.starts == [0.0, 2.5, 3.5, 4.5, 5.5]
    warnings = records.messages(logging.WARNING)
    assert warnings == [
        "La pasada #1 duró 2.5 s, más que el intervalo de 1 s: la siguiente empieza ya",
        "La pasada #3 duró 1.0 s, más que el intervalo de 1 s: la siguiente empieza ya",
    ]


def test_a_signal_between_passes_ends_the_loop_at_once(loop_log: LoopLog) -> None:
    log, records = loop_log
    loop = Loop(interval=60)
    loop.signal_at(5.0, INT)  # 4.8 s into the 60 s sleep after pass 1

    assert loop.run(log) == 0
    assert loop.starts == [0.0]
    assert loop.clock.now() == 5.0
    assert loop.children[0].received == []  # nobody to forward to
    assert records.messages(logging.INFO)[-2:] == [
        "SIGINT recibida entre pasadas: el bucle termina",
        "Bucle detenido tras 1 pasada(s)",
    ]


def test_a_stop_without_a_signal_counts_as_sigterm(loop_log: LoopLog) -> None:
    log, _ = loop_log
    loop = Loop({1: Plan(runs=30)})
    loop.clock.at(1.0, loop.stop.request)

    assert loop.run(log) == 0
    assert loop.children[0].received == [(1.0, TERM)]


# --- signals during a pass -------------------------------------------------------------


def test_the_pass_has_the_grace_to_finish_then_no_pass_follows(loop_log: LoopLog) -> None:
    log, records = loop_log
    # Finishing its in-flight work takes it 1.5 s, within the 2 s grace.
    loop = Loop({1: Plan(runs=30, linger=1.5, signals=((0.5, TERM),))}, interval=0.1)

    assert loop.run(log) == 0
    assert loop.starts == [0.0]
    assert loop.children[0].received == [(0.5, TERM)]
    assert loop.clock.now() == 2.0
    assert "Pasada #1 terminada con código 143 en 2.0 s" in records.messages(logging.INFO)


def test_a_pass_that_overruns_the_grace_is_killed_at_the_deadline(loop_log: LoopLog) -> None:
    log, records = loop_log
    grace = 2.0
    loop = Loop({1: Plan(runs=30, linger=None, signals=((0.5, TERM),))}, grace=grace)

    assert loop.run(log) == 0
    deadline = 0.5 + grace + 1 - KILL_MARGIN_SECONDS
    assert loop.children[0].received == [(0.5, TERM), (deadline, KILL)]
    assert loop.clock.now() == deadline  # within SHUTDOWN_GRACE_SECONDS + 1 s of the signal
    assert records.messages(logging.WARNING) == [
        "La pasada #1 no terminó en 2.75 s tras la señal: se mata (SIGKILL)",
        "Pasada #1 terminada con código 137 (señal SIGKILL) en 3.2 s",  # 3.25 s
    ]


def test_every_signal_is_forwarded_not_just_the_first(loop_log: LoopLog) -> None:
    log, records = loop_log
    signals = ((0.5, INT), (1.0, INT), (1.5, TERM))
    loop = Loop({1: Plan(runs=30, linger=2.0, signals=signals)})

    assert loop.run(log) == 0
    assert loop.children[0].received == [(0.5, INT), (1.0, INT), (1.5, TERM)]
    assert loop.clock.now() == 2.5  # the first signal and the linger decide the end
    info = records.messages(logging.INFO)
    assert sum("recibida" in m for m in info) == 1  # said once, at the first
    assert (
        "SIGINT recibida: se reenvía a la pasada #1, que tiene 2 s para terminar; no se iniciarán más pasadas" in info
    )
    assert "Pasada #1 terminada con código 130 en 2.5 s" in info


def test_a_signal_while_a_pass_is_being_started_is_forwarded_to_it(loop_log: LoopLog) -> None:
    log, _ = loop_log
    loop = Loop()
    spawn = loop.spawn

    def spawn_and_signal(argv: list[str], env: dict[str, str]) -> FakeChild:
        child = spawn(argv, env)
        if child.number == 2:
            loop.stop.deliver(TERM)  # after fork, before the loop looks
        return child

    loop.spawn = spawn_and_signal  # type: ignore[method-assign]
    assert loop.run(log) == 0
    assert loop.starts == [0.0, 1.0]
    assert loop.children[1].received == [(1.0, TERM)]


# --- exit codes ----------------------------------------------------------------------------


def test_failing_passes_never_stop_the_loop_and_are_logged_by_code(loop_log: LoopLog) -> None:
    log, records = loop_log
    plans = {1: Plan(code=1), 2: Plan(code=3), 3: Plan(code=137), 4: Plan(code=-TERM), 5: Plan(code=143)}
    loop = Loop(plans | {6: Plan(runs=30, signals=((0.1, TERM),))}, interval=1)

    assert loop.run(log) == 0
    assert len(loop.children) == 6
    # 3 is ERROR as the pass's own FIN line has it; a 143 the loop did not cause, WARNING.
    assert records.messages(logging.ERROR) == ["Pasada #2 terminada con código 3 en 0.2 s"]
    assert records.messages(logging.WARNING) == [
        "Pasada #1 terminada con código 1 en 0.2 s",
        "Pasada #3 terminada con código 137 en 0.2 s",
        "Pasada #4 terminada con código 143 (señal SIGTERM) en 0.2 s",
        "Pasada #5 terminada con código 143 en 0.2 s",
    ]


def test_a_pass_exiting_2_stops_the_loop_with_2(loop_log: LoopLog) -> None:
    log, records = loop_log
    loop = Loop({2: Plan(code=2)})

    assert loop.run(log) == 2
    assert loop.starts == [0.0, 1.0]
    assert loop.clock.now() == 1.2
    assert records.messages(logging.ERROR) == [
        "Pasada #2 terminada con código 2 en 0.2 s",
        "La pasada #2 terminó con código 2 (configuración inválida): el bucle se detiene, "
        "todas las pasadas siguientes fallarían igual",
    ]


def test_a_pass_that_cannot_start_stops_the_loop_with_2(loop_log: LoopLog) -> None:
    log, records = loop_log
    loop = Loop({3: Plan(cannot_start=True)})

    assert loop.run(log) == 2
    assert len(loop.children) == 2
    assert records.messages(logging.ERROR) == ["No se pudo iniciar la pasada #3 (coin-sync): No such file or directory"]


def test_an_unexpected_error_never_leaves_a_pass_running(loop_log: LoopLog) -> None:
    log, _ = loop_log
    loop = Loop({1: Plan(runs=30)})

    def crash() -> None:
        raise RuntimeError("a bug in the loop")

    loop.clock.at(1.0, crash)  # runs inside the loop's wait, as if the loop itself raised
    with pytest.raises(RuntimeError):
        loop.run(log)
    assert loop.children[0].received == [(1.0, KILL)]


# --- metrics ---------------------------------------------------------------------------------


def _value(metrics: LoopMetrics, name: str, **labels: str) -> float:
    text = metrics.render().decode()
    (sample,) = [s for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items())]
    return sample.value


def test_each_pass_is_recorded_from_a_summary_file_removed_before_it_starts(loop_log: LoopLog) -> None:
    log, _ = loop_log
    # 1 succeeds, 2 fails, 3 ignores the SIGTERM and is killed: it leaves no summary.
    plans = {1: Plan(runs=0.3), 2: Plan(runs=0.5, code=1), 3: Plan(runs=30, linger=None, signals=((0.5, TERM),))}
    loop = Loop(plans)
    metrics = LoopMetrics()

    assert loop.run(log, metrics) == 0
    # One file the loop owns for all passes, in a temporary folder it removes at the end;
    # never there when a pass starts, so a pass that writes none is not taken for the last.
    (path,) = {c.summary_file for c in loop.children}
    assert path is not None and path.name == "summary.json"
    assert [c.found_a_summary for c in loop.children] == [False, False, False]
    assert not path.parent.exists()
    assert [_value(metrics, "coin_sync_passes_total", exit_code=code) for code in ("0", "1", "137")] == [1, 1, 1]
    # Durations as the loop measured them, start to reap, in virtual seconds.
    assert _value(metrics, "coin_sync_pass_duration_seconds_count") == 3
    killed = 0.5 + 2.0 + 1 - KILL_MARGIN_SECONDS
    assert _value(metrics, "coin_sync_pass_duration_seconds_sum") == pytest.approx(0.3 + 0.5 + killed)
    # The latest pass that left a summary: 2, which failed; the last success is 1's.
    assert _value(metrics, "coin_sync_last_exit_code") == 1
    assert _value(metrics, "coin_sync_last_pass_duration_seconds") == pytest.approx(0.5)
    last_run, last_success = (
        _value(metrics, f"coin_sync_last_{name}_timestamp_seconds") for name in ("run", "success")
    )
    assert last_run - last_success == 1


def test_the_users_summary_file_is_the_one_each_pass_writes(loop_log: LoopLog, tmp_path: Path) -> None:
    log, _ = loop_log
    mine = tmp_path / "summary.json"
    mine.write_text("left by someone else", encoding="utf-8")
    loop = Loop({2: Plan(runs=30, signals=((0.5, TERM),))}, SUMMARY_FILE=mine)
    metrics = LoopMetrics()

    assert loop.run(log, metrics) == 0
    assert [(c.summary_file, c.found_a_summary) for c in loop.children] == [(mine, False), (mine, False)]
    # Kept: it is the user's, with the last pass's summary (interrupted, 143).
    assert json.loads(mine.read_text(encoding="utf-8"))["exit_code"] == 143
    assert _value(metrics, "coin_sync_last_exit_code") == 143
