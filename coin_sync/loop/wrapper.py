"""`coin-sync loop`: a pass every SYNC_INTERVAL_SECONDS, each in a fresh child process.

This is the docker compose way of running what a Kubernetes CronJob runs: the child is
the same `coin-sync run` a CronJob pod executes, so no state, leak or open log file
carries over from one pass to the next. The loop only schedules, numbers, forwards
signals and logs exit codes.

Waiting never polls. Every wait is one `Clock.wait_for`/`Clock.sleep` on the loop's Stop:
SIGTERM/SIGINT set it (`Stop.listen()`), and the end of a pass notifies it from a small
thread that does nothing but wait on that child. So the loop sleeps until the next
start, a signal, the end of the pass or the kill deadline, whichever comes first, with or
without signal handlers (outside the main thread there are none: only the signals are
missing, not the wake-up on a child's exit). Time and process start are injected (a
Clock, a Spawner), so the policy runs in tests on virtual time with fake children.

With METRICS_PORT the loop serves /metrics (prometheus_client, imported only then): each
pass writes its SUMMARY_FILE, which the loop reads back once it has reaped the pass.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from coin_sync.clock import Clock, RealClock
from coin_sync.config.schedule import pass_budget
from coin_sync.config.settings import Settings
from coin_sync.loop.child import Child, Spawner, notify_on_exit, spawn_process
from coin_sync.loop.reports import PassReports
from coin_sync.outcome import ExitCode, signal_name
from coin_sync.stop import Stop

if TYPE_CHECKING:
    from coin_sync.observe.loop_metrics import LoopMetrics

# The loop must be gone within SHUTDOWN_GRACE_SECONDS + 1 s of the signal; killing a
# pass that overruns a little before that leaves time to reap it and log.
KILL_MARGIN_SECONDS = 0.25


def run_loop(
    settings: Settings,
    child_argv: list[str],
    log: logging.Logger,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    stop: Stop | None = None,
    spawn: Spawner = spawn_process,
    metrics: LoopMetrics | None = None,
) -> int:
    """Run `child_argv` as pass 1, 2, 3... until a signal (exit 0) or a pass exits 2 (exit 2).

    Each child gets `environ` (default: os.environ) plus SYNC_PASS_NUMBER, and
    PASS_BUDGET_SECONDS from the interval unless the settings set one. Passes start
    SYNC_INTERVAL_SECONDS apart, start to start; one that overruns is followed at once,
    and the ticks it missed are dropped, never run in a burst.

    `stop`: the caller's Stop (its signals are the caller's business); by default a new
    one that listens for SIGTERM/SIGINT while the loop runs. A stop requested without a
    signal counts as SIGTERM.

    With METRICS_PORT, or a caller's `metrics` (then served only with METRICS_PORT), each
    child also gets SUMMARY_FILE and each pass is recorded once reaped. Exit 2 at once,
    with one ERROR line, if /metrics cannot be served (a port in use).
    """
    reports = None
    if settings.metrics.port is not None or metrics is not None:
        reports = PassReports.start(settings, log, metrics)
        if reports is None:
            return int(ExitCode.BAD_CONFIG)
    loop = _Loop(
        settings,
        child_argv,
        log,
        environ=os.environ if environ is None else environ,
        clock=RealClock() if clock is None else clock,
        stop=Stop() if stop is None else stop,
        spawn=spawn,
        reports=reports,
    )
    restore = loop.stop.listen() if stop is None else (lambda: None)
    try:
        return loop.run()
    finally:
        restore()
        loop.abandon()
        if reports is not None:
            reports.close()


class _Loop:
    def __init__(
        self,
        settings: Settings,
        child_argv: list[str],
        log: logging.Logger,
        *,
        environ: Mapping[str, str],
        clock: Clock,
        stop: Stop,
        spawn: Spawner,
        reports: PassReports | None = None,
    ) -> None:
        self.reports = reports
        self.interval = settings.sync.interval_seconds
        # A pass should end before the next one is due: unless PASS_BUDGET_SECONDS was
        # set (environment, file or flag, all in `settings`), each pass gets 5/6 of the
        # interval (50 s of a minute), the rest a margin for start-up and the summary.
        unset = settings.sync.budget_seconds is None  # an explicit 0 means "no budget"
        self.budget = {"PASS_BUDGET_SECONDS": f"{pass_budget(self.interval):g}"} if unset else {}
        self.grace = settings.sync.shutdown_grace_seconds
        self.child_argv = list(child_argv)
        self.log = log
        self.environ = dict(environ)
        self.clock = clock
        self.stop = stop
        self.spawn = spawn
        self.child: Child | None = None
        self.number = 0
        self.kill_at: float | None = None  # set when the loop first sees the stop
        self._signals: list[int] = []  # taken from the Stop, not yet forwarded

    # -- the schedule ---------------------------------------------------------------
    def run(self) -> int:
        self.log.info(
            "Bucle de sincronización: una pasada cada %s s (de inicio a inicio), cada una en un proceso nuevo",
            _seconds(self.interval),
        )
        while not self.stop.is_set():
            self.number += 1
            started = self.clock.now()
            code = self._run_pass()
            if code is None:
                return int(ExitCode.BAD_CONFIG)
            if self.kill_at is not None:
                break
            if code == ExitCode.BAD_CONFIG:
                self.log.error(
                    "La pasada #%d terminó con código 2 (configuración inválida): el bucle se detiene, "
                    "todas las pasadas siguientes fallarían igual",
                    self.number,
                )
                return int(ExitCode.BAD_CONFIG)
            elapsed = self.clock.now() - started
            if elapsed >= self.interval:
                self.log.warning(
                    "La pasada #%d duró %.1f s, más que el intervalo de %s s: la siguiente empieza ya",
                    self.number,
                    elapsed,
                    _seconds(self.interval),
                )
                continue
            next_start = started + self.interval
            while not self.stop.is_set() and (left := next_start - self.clock.now()) > 0:
                self.clock.sleep(self.stop, left)
        self._on_stop(None)  # says "between passes" when the stop came there
        self.log.info("Bucle detenido tras %d pasada(s)", self.number)
        return int(ExitCode.OK)

    # -- one pass -------------------------------------------------------------------
    def _run_pass(self) -> int | None:
        """The pass's exit code (128+N when killed by signal N); None if it could not start."""
        env = {**self.environ, **self.budget, "SYNC_PASS_NUMBER": str(self.number)}
        if self.reports is not None:
            env.update(self.reports.before_pass())
        started = self.clock.now()
        try:
            child = self.spawn(self.child_argv, env)
        except OSError as exc:
            # The command itself is wrong (missing interpreter, no permission): every
            # later pass would fail the same way.
            self.log.error(
                "No se pudo iniciar la pasada #%d (%s): %s", self.number, self.child_argv[0], exc.strerror or exc
            )
            return None
        self.child = child
        self.log.debug("Pasada #%d iniciada (pid %d)", self.number, child.pid)
        threading.Thread(
            target=notify_on_exit, args=(child, self.stop), name=f"pass-{self.number}", daemon=True
        ).start()

        def woken() -> bool:
            return child.poll() is not None or self._news()

        while (returncode := child.poll()) is None:
            # First thing too: a signal that came while the child was being started
            # found nobody to forward to.
            self._on_stop(child)
            timeout = None if self.kill_at is None else self.kill_at - self.clock.now()
            if timeout is not None and timeout <= 0:
                self.log.warning(
                    "La pasada #%d no terminó en %s s tras la señal: se mata (SIGKILL)",
                    self.number,
                    _seconds(self.grace + 1.0 - KILL_MARGIN_SECONDS),
                )
                child.kill()
                returncode = child.wait()
                break
            self.clock.wait_for(self.stop, woken, timeout)
        self.child = None
        code = 128 - returncode if returncode < 0 else returncode
        duration = self.clock.now() - started
        self._log_exit(code, returncode, duration)
        if self.reports is not None:
            self.reports.after_pass(code, duration)
        return code

    def _log_exit(self, code: int, returncode: int, duration: float) -> None:
        how = f"código {code}"
        if returncode < 0:
            how += f" (señal {signal_name(-returncode)})"
        self.log.log(self._level(code), "Pasada #%d terminada con %s en %.1f s", self.number, how, duration)

    def _level(self, code: int) -> int:
        if self.kill_at is not None and code in (ExitCode.SIGINT, ExitCode.SIGTERM):
            return logging.INFO  # it obeyed the signal we forwarded
        try:
            return ExitCode(code).log_level
        except ValueError:
            return logging.WARNING

    # -- the stop -------------------------------------------------------------------
    def _news(self) -> bool:
        """Whether the stop has something the loop has not acted on: a stop it has not
        seen yet, or signals not yet forwarded. Used as a wait predicate."""
        if not self.stop.is_set():
            return False
        self._signals += self.stop.take_signals()
        return self.kill_at is None or bool(self._signals)

    def _on_stop(self, child: Child | None) -> None:
        """Act on the stop, if set: the first time, start the kill deadline and say so;
        every time, forward each signal received since to the running child."""
        if not self._news():
            return
        signals, self._signals = self._signals, []
        if child is not None and child.poll() is not None:
            child = None  # it has just ended: nobody to forward to
        if self.kill_at is None:
            self.kill_at = self.clock.now() + self.grace + 1.0 - KILL_MARGIN_SECONDS
            signals = signals or [self.stop.signum or signal.SIGTERM]
            name = signal_name(signals[0])
            if child is not None:
                self.log.info(
                    "%s recibida: se reenvía a la pasada #%d, que tiene %s s para terminar; "
                    "no se iniciarán más pasadas",
                    name,
                    self.number,
                    _seconds(self.grace),
                )
            else:
                self.log.info("%s recibida entre pasadas: el bucle termina", name)
        if child is not None:
            # Every signal, not just the first: a second Ctrl+C means what the pass
            # says it means.
            for signum in signals:
                child.send_signal(signum)

    def abandon(self) -> None:
        """Only on an unexpected exception: never leave a pass running unowned."""
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()


def _seconds(value: float) -> str:
    return f"{value:g}"
