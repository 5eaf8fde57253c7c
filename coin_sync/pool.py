"""The worker pool of a pass: at most N syncs in flight, and the halt policy.

The coordinator (the caller's thread, where signals land) only decides; each worker is
a daemon thread that takes the next symbol, runs `sync_one` and records its result.
Everyone waits on the pass's Stop: a deadline, a lost backend or a signal sets it, and
workers then take no further symbol. After a signal, what is in flight may finish
within the shutdown grace; what is still running then is abandoned as interrupted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from coin_sync.clock import Clock
from coin_sync.outcome import EndReason, SymbolResult, SymbolStatus, signal_name
from coin_sync.stop import Stop

SyncOne = Callable[[str], SymbolResult]


class Pool:
    def __init__(
        self,
        sync_one: SyncOne,
        *,
        concurrency: int,
        clock: Clock,
        stop: Stop,
        log: logging.Logger,
        started: float = 0.0,
        deadline_seconds: float = 0.0,
        grace_seconds: float = 20.0,
    ) -> None:
        self._sync_one = sync_one
        self._concurrency = concurrency
        self._clock = clock
        self._stop = stop
        self._log = log
        # PASS_DEADLINE_SECONDS counts from the start of the pass (health wait included).
        self._deadline = started + deadline_seconds if deadline_seconds > 0 else None
        self._deadline_seconds = deadline_seconds
        self._grace = grace_seconds
        self._lock = threading.Lock()
        self._pending: deque[str] = deque()
        self._in_flight: set[str] = set()
        self._results: dict[str, SymbolResult] = {}
        self._finished = 0  # bumped by every result, so the coordinator can wait for one

    def run(self, symbols: list[str]) -> tuple[list[SymbolResult], EndReason]:
        """Sync every symbol once; (results in completion order, then interrupted and
        skipped ones; why the pass ended)."""
        self._pending.extend(symbols)
        # The health wait may already have used the whole deadline: check before any
        # worker takes a symbol.
        self._check_deadline()
        for i in range(min(self._concurrency, len(symbols))):
            threading.Thread(target=self._work, name=f"sync-{i}", daemon=True).start()
        self._coordinate()
        results = self._ordered_results()
        return results, self._end_reason(results)

    def _coordinate(self) -> None:
        grace_until: float | None = None
        while not self._all_done():
            signum = self._stop.signum
            if signum is not None and grace_until is None:
                grace_until = self._clock.now() + self._grace
                # A signal outranks a deadline or a lost backend: the exit code must say
                # the pass was interrupted.
                self._stop.request(EndReason.INTERRUPTED, override=True)
                self._log.warning(
                    "Señal %s recibida: no se despachan más símbolos; %d en curso (espera máxima %.0f s)",
                    signal_name(signum),
                    len(self._in_flight),
                    self._grace,
                )
            self._check_deadline()
            now = self._clock.now()
            if grace_until is not None and now >= grace_until:
                self._log.error("Tiempo de gracia agotado con %d sincronizaciones en curso", len(self._in_flight))
                return
            limits = [t - now for t in (grace_until, self._active_deadline()) if t is not None]
            self._wait_for_change(min(limits) if limits else None)

    def _wait_for_change(self, timeout: float | None) -> None:
        seen = self._state()
        self._clock.wait_for(self._stop, lambda: self._state() != seen, timeout)

    def _state(self) -> tuple[int, bool, int | None]:
        return self._finished, self._stop.is_set(), self._stop.signum

    def _active_deadline(self) -> float | None:
        return None if self._stop.is_set() else self._deadline

    def _check_deadline(self) -> None:
        deadline = self._active_deadline()
        if deadline is None or self._clock.now() < deadline:
            return
        self._stop.request(EndReason.DEADLINE)
        self._log.warning(
            "Límite de la pasada (%.0f s) alcanzado: no se despachan más símbolos; %d en curso",
            self._deadline_seconds,
            len(self._in_flight),
        )

    def _end_reason(self, results: list[SymbolResult]) -> EndReason:
        if self._stop.signum is not None:
            return EndReason.INTERRUPTED
        reason = self._stop.reason
        if reason is not None and (reason is not EndReason.DEADLINE or self._pending):
            return reason
        failed = any(r.status is not SymbolStatus.OK for r in results)
        return EndReason.SYMBOLS_FAILED if failed else EndReason.OK

    # -- workers ----------------------------------------------------------------------
    def _all_done(self) -> bool:
        with self._lock:
            return not self._in_flight and (self._stop.is_set() or not self._pending)

    def _take(self) -> str | None:
        with self._lock:
            if self._stop.is_set() or not self._pending:
                return None
            symbol = self._pending.popleft()
            self._in_flight.add(symbol)
            return symbol

    def _work(self) -> None:
        while (symbol := self._take()) is not None:
            try:
                result = self._sync_one(symbol)
            except Exception as exc:  # a bug must cost one symbol, not hang the pass
                self._log.error("✗ %s falló por un error interno: %r", symbol, exc)
                result = SymbolResult(symbol, SymbolStatus.FAILED, error=f"error interno: {exc!r}")
            with self._lock:
                self._in_flight.discard(symbol)
                self._results[symbol] = result
                self._finished += 1
            self._stop.notify()

    def _ordered_results(self) -> list[SymbolResult]:
        with self._lock:
            done = list(self._results.values())
            interrupted = [
                SymbolResult(sym, SymbolStatus.INTERRUPTED, error="en curso al agotarse la espera")
                for sym in sorted(self._in_flight)
            ]
            skipped = [SymbolResult(sym, SymbolStatus.SKIPPED) for sym in self._pending]
        return done + interrupted + skipped
