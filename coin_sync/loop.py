"""`coin-sync loop`: a pass every SYNC_INTERVAL_SECONDS, each in a fresh child process.

This is the docker compose way of running what a Kubernetes CronJob runs: the child is
the same `coin-sync run` a CronJob pod executes, so no state, leak or open log file
carries over from one pass to the next. The loop only schedules, numbers, forwards
signals and logs exit codes.

Waiting never polls: SIGTERM/SIGINT and SIGCHLD (a pass ended) reach a wakeup socket
through `signal.set_wakeup_fd`, so one `select()` sleeps until the next start, a
signal, the end of the pass or the kill deadline, whichever comes first. The Python
handlers only append to a list (no locks, nothing that can deadlock); the main flow
does the rest, knowing exactly which child is alive, so a signal is never sent to a
pass that has already been reaped.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType
from typing import Any

from coin_sync.config import Settings
from coin_sync.signals import signal_name
from coin_sync.summary import ExitCode

Handler = Callable[[int, FrameType | None], Any] | int | None

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The loop must be gone within SHUTDOWN_GRACE_SECONDS + 1 s of the signal; killing a
# pass that overruns a little before that leaves time to reap it and log.
KILL_MARGIN_SECONDS = 0.25
# Only when handlers cannot be installed (run_loop called outside the main thread):
# then nothing wakes the select, so it has to look at the child now and then.
FALLBACK_POLL_SECONDS = 0.1


def run_loop(
    settings: Settings,
    child_argv: list[str],
    log: logging.Logger,
    *,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run `child_argv` as pass 1, 2, 3... until a signal (exit 0) or a pass exits 2 (exit 2).

    Each child gets `environ` (default: os.environ) plus SYNC_PASS_NUMBER. Passes start
    SYNC_INTERVAL_SECONDS apart, start to start; one that overruns is followed at once,
    and the ticks it missed are dropped, never run in a burst.
    """
    with _Loop(settings, child_argv, log, os.environ if environ is None else environ) as loop:
        return loop.run()


class _Loop:
    def __init__(
        self,
        settings: Settings,
        child_argv: list[str],
        log: logging.Logger,
        environ: Mapping[str, str],
    ) -> None:
        self.interval = settings.sync_interval_seconds
        self.grace = settings.shutdown_grace_seconds
        self.child_argv = list(child_argv)
        self.log = log
        self.environ = dict(environ)
        self.child: subprocess.Popen[bytes] | None = None
        self.number = 0
        self.stop_deadline: float | None = None  # set by the first stop signal
        self._signals: list[int] = []  # appended by the handlers, consumed by the main flow
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._installed = False
        self._old_handlers: dict[int, Handler] = {}
        self._old_wakeup_fd = -1

    # -- signal plumbing ------------------------------------------------------------
    def __enter__(self) -> _Loop:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal.signal() would raise; fall back to short polls
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._old_handlers[signum] = signal.signal(signum, self._on_stop_signal)
        # A Python-level handler is what makes the wakeup fd fire when a pass ends; the
        # default disposition for SIGCHLD is "ignore" and would leave select() asleep.
        self._old_handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _on_child_exit)
        self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            for signum, old in self._old_handlers.items():
                # None: the previous handler was not set from Python and cannot be put back.
                if old is not None:
                    signal.signal(signum, old)
            signal.set_wakeup_fd(self._old_wakeup_fd)
        self._wake_r.close()
        self._wake_w.close()
        if self.child is not None and self.child.poll() is None:
            # Only reached on an unexpected exception: never leave a pass running unowned.
            self.child.kill()
            self.child.wait()

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _sleep(self, timeout: float | None) -> None:
        """Until a signal, the end of the running pass, or timeout (None: no limit)."""
        if not self._installed:
            timeout = FALLBACK_POLL_SECONDS if timeout is None else min(timeout, FALLBACK_POLL_SECONDS)
        if timeout is None or timeout > 0:
            select.select([self._wake_r], [], [], timeout)
        try:
            while self._wake_r.recv(512):
                pass
        except BlockingIOError:
            pass
        self._handle_signals()

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            name = signal_name(signum)
            child = self.child if self.child is not None and self.child.poll() is None else None
            if self.stop_deadline is None:
                self.stop_deadline = time.monotonic() + self.grace + 1.0 - KILL_MARGIN_SECONDS
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
                # Every signal is forwarded, not just the first: a second Ctrl+C means
                # what the pass says it means.
                child.send_signal(signum)

    # -- the loop ------------------------------------------------------------------
    def run(self) -> int:
        self.log.info(
            "Bucle de sincronización: una pasada cada %s s (de inicio a inicio), cada una en un proceso nuevo",
            _seconds(self.interval),
        )
        while True:
            self._handle_signals()
            if self.stop_deadline is not None:
                break
            self.number += 1
            started = time.monotonic()
            code = self._run_pass()
            if code is None:
                return int(ExitCode.BAD_CONFIG)
            if self.stop_deadline is not None:
                break
            if code == ExitCode.BAD_CONFIG:
                self.log.error(
                    "La pasada #%d terminó con código 2 (configuración inválida): el bucle se detiene, "
                    "todas las pasadas siguientes fallarían igual",
                    self.number,
                )
                return int(ExitCode.BAD_CONFIG)
            next_start = started + self.interval
            elapsed = time.monotonic() - started
            if elapsed >= self.interval:
                self.log.warning(
                    "La pasada #%d duró %.1f s, más que el intervalo de %s s: la siguiente empieza ya",
                    self.number,
                    elapsed,
                    _seconds(self.interval),
                )
                continue
            while self.stop_deadline is None and (left := next_start - time.monotonic()) > 0:
                self._sleep(left)
        self.log.info("Bucle detenido tras %d pasada(s)", self.number)
        return int(ExitCode.OK)

    def _run_pass(self) -> int | None:
        """The pass's exit code (128+N when killed by signal N); None if it could not start."""
        env = {**self.environ, "SYNC_PASS_NUMBER": str(self.number)}
        started = time.monotonic()
        try:
            # Own process group: a terminal's Ctrl+C reaches the pass once, forwarded by
            # the loop, instead of twice (once from the terminal, once from us).
            child = subprocess.Popen(self.child_argv, env=env, stdin=subprocess.DEVNULL, process_group=0)
        except OSError as exc:
            # The command itself is wrong (missing interpreter, no permission): every
            # later pass would fail the same way.
            self.log.error(
                "No se pudo iniciar la pasada #%d (%s): %s", self.number, self.child_argv[0], exc.strerror or exc
            )
            return None
        self.child = child
        self.log.debug("Pasada #%d iniciada (pid %d)", self.number, child.pid)
        # A signal that came while the child was being started found nobody to forward
        # to; _handle_signals() runs right after and forwards it now.
        self._handle_signals()
        while (returncode := child.poll()) is None:
            if self.stop_deadline is None:
                self._sleep(None)
                continue
            left = self.stop_deadline - time.monotonic()
            if left <= 0:
                self.log.warning(
                    "La pasada #%d no terminó en %s s tras la señal: se mata (SIGKILL)",
                    self.number,
                    _seconds(self.grace + 1.0 - KILL_MARGIN_SECONDS),
                )
                child.kill()
                returncode = child.wait()
                break
            self._sleep(left)
        self.child = None
        code = 128 - returncode if returncode < 0 else returncode
        self._log_exit(code, returncode, time.monotonic() - started)
        return code

    def _log_exit(self, code: int, returncode: int, duration: float) -> None:
        how = f"código {code}"
        if returncode < 0:
            how += f" (señal {signal_name(-returncode)})"
        if code == ExitCode.OK or (self.stop_deadline is not None and code in (ExitCode.SIGINT, ExitCode.SIGTERM)):
            level = logging.INFO
        elif code == ExitCode.BAD_CONFIG:
            level = logging.ERROR
        else:
            level = logging.WARNING
        self.log.log(level, "Pasada #%d terminada con %s en %.1f s", self.number, how, duration)


def _on_child_exit(signum: int, frame: FrameType | None) -> None:
    """Nothing to do: the wakeup fd already woke the loop, which reaps the child itself."""


def _seconds(value: float) -> str:
    return f"{value:g}"
