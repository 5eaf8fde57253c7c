"""One sync pass: wait for a healthy backend, resolve the symbols, sync them with
bounded concurrency, and report.

Threads: the main thread only coordinates (it is where signals land); each worker is
a daemon thread that takes the next symbol, syncs it with retries, and records the
result. Nothing but the coordinator decides to stop; workers just look at `halt`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from coin_sync.client import BackendClient
from coin_sync.config import Settings, redact_url
from coin_sync.retry import BackendError, RetriesExhausted, call_with_retries
from coin_sync.signals import Interrupted, SignalStop, exit_code_for_signal, signal_name
from coin_sync.summary import (
    BACKEND_REASONS,
    REASON_BACKEND_DOWN,
    REASON_BACKEND_LOST,
    REASON_DEADLINE,
    REASON_FAILED,
    REASON_INTERRUPTED,
    REASON_NOTHING,
    REASON_OK,
    REASON_SYMBOLS_UNUSABLE,
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_OK,
    STATUS_SKIPPED,
    ExitCode,
    PassReport,
    SymbolResult,
)
from coin_sync.symbols import normalise_symbols, select_shard

POLL_SECONDS = 0.05
HEALTH_FIRST_WAIT = 0.5
HEALTH_MAX_WAIT = 5.0


def exit_code_for(reason: str, results: list[SymbolResult], signum: int | None) -> ExitCode:
    """Pure: the documented exit code for how a pass ended."""
    if reason == REASON_INTERRUPTED and signum is not None:
        return exit_code_for_signal(signum)
    if reason in BACKEND_REASONS:
        return ExitCode.BACKEND_UNAVAILABLE
    if any(r.status != STATUS_OK for r in results):
        return ExitCode.SYMBOLS_FAILED
    return ExitCode.OK


class PassRunner:
    def __init__(
        self,
        settings: Settings,
        client: BackendClient,
        log: logging.Logger,
        stop: SignalStop,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.client = client
        self.log = log
        self.stop = stop
        self.clock = clock
        self.halt = threading.Event()  # stop dispatching and retrying
        self.halt_reason: str | None = None
        self._lock = threading.Lock()
        self._health_lock = threading.Lock()
        self._pending: deque[str] = deque()
        self._in_flight: set[str] = set()
        self._results: dict[str, SymbolResult] = {}
        self._finished: queue.SimpleQueue[str] = queue.SimpleQueue()

    # --- phases --------------------------------------------------------------------

    def run(self) -> PassReport:
        s = self.settings
        started = self.clock()
        report = PassReport(
            pass_number=s.sync_pass_number,
            started_at=_now_iso(),
            shard_index=s.shard_index,
            shard_count=s.shard_count,
        )
        self.log.info("=" * 60)
        self.log.info("INICIO DE SINCRONIZACIÓN #%d", s.sync_pass_number)
        self.log.info("=" * 60)
        try:
            with self.stop.abort_on_signal():
                reason = self._prepare()
            if reason is None:
                reason = self._sync_all(started)
        except Interrupted:
            reason = REASON_INTERRUPTED
        report.results = self._ordered_results()
        report.reason = reason
        report.exit_code = exit_code_for(reason, report.results, self.stop.signum)
        report.duration = self.clock() - started
        report.finished_at = _now_iso()
        self._log_end(report)
        return report

    def _prepare(self) -> str | None:
        """Health and symbols; a reason when the pass ends here, else None."""
        healthy, why = self.wait_until_healthy()
        if not healthy:
            self.log.error("El backend no está disponible tras %.0f s: %s", self.settings.backend_wait_seconds, why)
            return REASON_BACKEND_DOWN
        symbols = self.resolve_symbols()
        if symbols is None:
            return REASON_SYMBOLS_UNUSABLE
        if not symbols:
            self.log.warning("No hay símbolos que sincronizar")
            return REASON_NOTHING
        self._pending.extend(symbols)
        return None

    def wait_until_healthy(self) -> tuple[bool, str]:
        budget = self.settings.backend_wait_seconds
        deadline = self.clock() + budget
        wait = HEALTH_FIRST_WAIT
        while True:
            remaining = deadline - self.clock()
            healthy, why = self.client.health(timeout=max(0.5, min(HEALTH_MAX_WAIT, remaining)))
            if healthy:
                self.log.info("Backend disponible: %s", redact_url(self.client.base_url))
                return True, ""
            remaining = deadline - self.clock()
            if remaining <= 0:
                return False, why
            pause = min(wait, remaining)
            self.log.warning("Backend no disponible (%s); nuevo intento en %.1f s", why, pause)
            time.sleep(pause)
            wait = min(wait * 2, HEALTH_MAX_WAIT)

    def resolve_symbols(self) -> list[str] | None:
        s = self.settings
        if s.symbols_to_sync:
            raw = list(s.symbols_to_sync)
            self.log.info("Símbolos de SYMBOLS_TO_SYNC: %d", len(raw))
        else:
            try:
                raw = call_with_retries(
                    self.client.list_symbols,
                    max_retries=s.max_retries,
                    first_delay=s.retry_delay_seconds,
                    max_delay=s.retry_max_delay_seconds,
                    halt=self.halt,
                    on_retry=lambda n, e, d: self._log_retry("/api/symbols", n, e, d),
                ).value
            except RetriesExhausted as exc:
                self.log.error("No se pudo obtener la lista de símbolos tras %d intentos: %s", exc.attempts, exc.error)
                return None
            self.log.info("Símbolos en el backend: %d", len(raw))
        symbols, rejected = normalise_symbols(raw)
        for bad in rejected:
            self.log.warning("Símbolo inválido ignorado: %s (%s)", bad.shown, bad.reason)
        mine = select_shard(symbols, s.shard_index, s.shard_count)
        if s.shard_count > 1:
            self.log.info(
                "Fragmento %d de %d: %d de %d símbolos", s.shard_index, s.shard_count, len(mine), len(symbols)
            )
        return mine

    def _sync_all(self, started: float) -> str:
        s = self.settings
        total = len(self._pending)
        deadline = started + s.pass_deadline_seconds if s.pass_deadline_seconds > 0 else None
        # The health wait may already have used the whole deadline: check before
        # any worker takes a symbol.
        self._check_deadline(deadline)
        self.log.info("Sincronizando %d símbolos (concurrencia %d)", total, s.sync_concurrency)
        for i in range(min(s.sync_concurrency, total)):
            threading.Thread(target=self._work, name=f"sync-{i}", daemon=True).start()
        grace_until: float | None = None
        while not self._all_done():
            if self.stop.signum is not None and grace_until is None:
                grace_until = self.clock() + s.shutdown_grace_seconds
                # A signal outranks a deadline or a lost backend: the exit code must
                # say the pass was interrupted.
                self._halt(REASON_INTERRUPTED, override=True)
                self.log.warning(
                    "Señal %s recibida: no se despachan más símbolos; %d en curso (espera máxima %.0f s)",
                    signal_name(self.stop.signum),
                    len(self._in_flight),
                    s.shutdown_grace_seconds,
                )
            self._check_deadline(deadline)
            if grace_until is not None and self.clock() >= grace_until:
                self.log.error("Tiempo de gracia agotado con %d sincronizaciones en curso", len(self._in_flight))
                break
            with contextlib.suppress(queue.Empty):
                self._finished.get(timeout=POLL_SECONDS)
        skipped = bool(self._pending)
        if self.halt_reason is not None and (self.halt_reason != REASON_DEADLINE or skipped):
            return self.halt_reason
        return REASON_FAILED if any(r.status != STATUS_OK for r in self._results.values()) else REASON_OK

    def _check_deadline(self, deadline: float | None) -> None:
        if deadline is None or self.halt.is_set() or self.clock() < deadline:
            return
        self._halt(REASON_DEADLINE)
        self.log.warning(
            "Límite de la pasada (%.0f s) alcanzado: no se despachan más símbolos; %d en curso",
            self.settings.pass_deadline_seconds,
            len(self._in_flight),
        )

    # --- workers -------------------------------------------------------------------

    def _all_done(self) -> bool:
        with self._lock:
            return not self._in_flight and (self.halt.is_set() or not self._pending)

    def _take(self) -> str | None:
        with self._lock:
            if self.halt.is_set() or not self._pending:
                return None
            symbol = self._pending.popleft()
            self._in_flight.add(symbol)
            return symbol

    def _work(self) -> None:
        while (symbol := self._take()) is not None:
            try:
                result = self._sync_one(symbol)
            except Exception as exc:  # a bug must cost one symbol, not hang the pass
                self.log.exception("✗ %s falló por un error interno: %s", symbol, exc)
                result = SymbolResult(symbol, STATUS_FAILED, error=f"error interno: {exc!r}")
            with self._lock:
                self._in_flight.discard(symbol)
                self._results[symbol] = result
            self._finished.put(symbol)

    def _sync_one(self, symbol: str) -> SymbolResult:
        s = self.settings
        began = self.clock()
        try:
            outcome = call_with_retries(
                lambda: self.client.sync(symbol),
                max_retries=s.max_retries,
                first_delay=s.retry_delay_seconds,
                max_delay=s.retry_max_delay_seconds,
                halt=self.halt,
                on_retry=lambda n, e, d: self._log_retry(symbol, n, e, d),
            )
        except RetriesExhausted as exc:
            took = self.clock() - began
            note = " (reintentos cancelados)" if exc.cancelled else ""
            self.log.error("✗ %s falló tras %d intento(s)%s: %s", symbol, exc.attempts, note, exc.error)
            if exc.error.means_backend_down and not exc.cancelled:
                self._check_backend_still_there()
            return SymbolResult(symbol, STATUS_FAILED, 0, exc.attempts, took, exc.error.message)
        took = self.clock() - began
        self.log.info("✓ %s sincronizado: %d nuevos registros", symbol, outcome.value)
        return SymbolResult(symbol, STATUS_OK, outcome.value, outcome.attempts, took)

    def _log_retry(self, what: str, attempt: int, error: BackendError, delay: float) -> None:
        self.log.warning(
            "↻ %s: intento %d de %d falló (%s); reintento en %.1f s",
            what,
            attempt,
            self.settings.max_retries + 1,
            error,
            delay,
        )

    def _check_backend_still_there(self) -> None:
        """One /health probe after a symbol exhausted its retries on a backend-side
        failure, so a dead backend costs one symbol's retries, not every symbol's."""
        with self._health_lock:
            if self.halt.is_set():
                return
            healthy, why = self.client.health()
            if not healthy:
                self._halt(REASON_BACKEND_LOST)
                self.log.error("El backend dejó de responder (%s): se detiene la pasada", why)

    def _halt(self, reason: str, override: bool = False) -> None:
        with self._lock:
            if self.halt_reason is None or override:
                self.halt_reason = reason
            self.halt.set()

    # --- reporting -----------------------------------------------------------------

    def _ordered_results(self) -> list[SymbolResult]:
        with self._lock:
            done = list(self._results.values())
            interrupted = [
                SymbolResult(sym, STATUS_INTERRUPTED, error="en curso al agotarse la espera")
                for sym in sorted(self._in_flight)
            ]
            skipped = [SymbolResult(sym, STATUS_SKIPPED) for sym in self._pending]
        return done + interrupted + skipped

    def _log_end(self, report: PassReport) -> None:
        t = report.totals()
        mark = ""
        if report.reason == REASON_INTERRUPTED and self.stop.signum is not None:
            mark = f" (INTERRUMPIDA por {signal_name(self.stop.signum)})"
        level = logging.INFO if report.exit_code == ExitCode.OK else logging.WARNING
        if report.exit_code == ExitCode.BACKEND_UNAVAILABLE:
            level = logging.ERROR
        self.log.info("=" * 60)
        self.log.log(
            level,
            "FIN DE SINCRONIZACIÓN #%d%s - correctos: %d, fallidos: %d, omitidos: %d, interrumpidos: %d, "
            "nuevos registros: %d, duración: %.2f s, código de salida: %d (%s)",
            report.pass_number,
            mark,
            t["ok"],
            t["failed"],
            t["skipped"],
            t["interrupted"],
            t["new_records"],
            report.duration,
            int(report.exit_code),
            report.reason,
        )
        self.log.info("=" * 60)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
