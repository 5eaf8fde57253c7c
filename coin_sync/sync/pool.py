"""The worker pool of a pass: syncs dispatched under a limiter, retries re-queued, the
halt policy.

The coordinator (the caller's thread, where signals land) owns the queue and decides:
it hands a symbol to a worker when the symbol's time has come and the limiter has room,
takes each verdict back, and re-queues a symbol that must run again with the time it
may run. Workers never sleep on a retry: they only run one attempt each and take the
next. A symbol is either queued or in flight, never both, so it is never in flight twice.

Everyone waits on the pass's Stop: a deadline, the budget, a lost backend, the exchange's
quota or a signal sets it, and then nothing more is dispatched. After a signal, what is
in flight may finish within the shutdown grace; what is still running then is abandoned
as interrupted. What is still queued at the end is handed to `abandon`.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from coin_sync.clock import Clock
from coin_sync.outcome import EndReason, SymbolResult, SymbolStatus, signal_name
from coin_sync.stop import Stop
from coin_sync.sync.attempt import Job
from coin_sync.sync.limiter import Limiter, Signal, Ticket


@dataclass(frozen=True)
class Verdict:
    """One attempt's end: done (result), again after `again_in` s, or halt the pass."""

    signal: Signal
    result: SymbolResult | None = None
    again_in: float = 0.0
    halt: str | None = None  # why the exchange will not serve: the result says skipped


AttemptFn = Callable[[Job], Verdict]
AbandonFn = Callable[[Job, "str | None"], SymbolResult]  # a job still queued at the end


SHOWN_SYMBOLS = 20  # a log line names this many symbols at most, then how many more


def shown_symbols(symbols: list[str]) -> str:
    """`A, B, C` or, past SHOWN_SYMBOLS, `A, B, ... y 180 más`."""
    shown = ", ".join(symbols[:SHOWN_SYMBOLS])
    more = len(symbols) - SHOWN_SYMBOLS
    return f"{shown} y {more} más" if more > 0 else shown


@dataclass(frozen=True)
class PoolProgress:
    """Where the pool stands, for a progress reporter (coin_sync.sync.progress)."""

    done: int
    total: int
    in_flight: int
    failed: int
    deferred: int  # waiting for their retry (or re-queue) time


# Told where the pool stands after every change; returns when it wants to be told again.
ProgressFn = Callable[[PoolProgress], "float | None"]


@dataclass(frozen=True)
class Limit:
    """A time after which nothing more is dispatched (deadline, budget)."""

    at: float
    message: str


class Pool:
    def __init__(
        self,
        attempt: AttemptFn,
        abandon: AbandonFn,
        *,
        limiter: Limiter,
        clock: Clock,
        stop: Stop,
        log: logging.Logger,
        limits: tuple[Limit, ...] = (),
        grace_seconds: float = 20.0,
        progress: ProgressFn | None = None,
    ) -> None:
        self._attempt = attempt
        self._abandon = abandon
        self.limiter = limiter
        self._clock = clock
        self._stop = stop
        self._log = log
        self._limits = limits
        self._grace = grace_seconds
        self._progress = progress
        self._total = 0
        self._failed = 0
        self._ready: list[tuple[int, Job]] = []  # heap by rank
        self._waiting: list[tuple[float, int, Job]] = []  # heap by the time it may run
        self._in_flight: dict[str, Job] = {}
        self._results: dict[str, SymbolResult] = {}
        self._halted: str | None = None
        self._work: queue.SimpleQueue[tuple[Job, Ticket] | None] = queue.SimpleQueue()
        self._done_lock = threading.Lock()
        self._done: list[tuple[Job, Verdict]] = []

    def run(self, symbols: list[str]) -> tuple[list[SymbolResult], EndReason]:
        """Sync every symbol; (results in completion order, then interrupted and
        abandoned ones; why the pass ended). `symbols` in dispatch order."""
        self._ready = [(rank, Job(symbol, rank)) for rank, symbol in enumerate(symbols)]
        self._total = len(symbols)
        # The health wait may already have used the whole deadline: check before any
        # worker takes a symbol.
        self._check_limits()
        workers = min(self.limiter.maximum, len(symbols))
        for i in range(workers):
            threading.Thread(target=self._worker, name=f"sync-{i}", daemon=True).start()
        try:
            self._coordinate()
        finally:
            for _ in range(workers):
                self._work.put(None)
        left = bool(self._ready or self._waiting)
        results = self._ordered_results()
        return results, self._end_reason(results, left)

    # -- the coordinator ----------------------------------------------------------------
    def _coordinate(self) -> None:
        grace_until: float | None = None
        while True:
            self._collect()
            signum = self._stop.signum
            if signum is not None and grace_until is None:
                grace_until = self._clock.now() + self._grace
                # A signal outranks every other end: the exit code must say the pass
                # was interrupted.
                self._stop.request(EndReason.INTERRUPTED, override=True)
                self._log.warning(
                    "Señal %s recibida: no se despachan más símbolos; %d en curso (espera máxima %.0f s)",
                    signal_name(signum),
                    len(self._in_flight),
                    self._grace,
                )
            self._check_limits()
            now = self._clock.now()
            if grace_until is not None and now >= grace_until:
                self._log.error(
                    "Tiempo de gracia agotado con %d sincronizaciones en curso: %s",
                    len(self._in_flight),
                    shown_symbols(sorted(self._in_flight)),
                )
                return
            self._dispatch(now)
            if not self._in_flight and (self._stop.is_set() or not (self._ready or self._waiting)):
                return
            times = [grace_until, self._report(), *self._active_limits()]
            if self._waiting and not self._stop.is_set():
                times.append(self._waiting[0][0])
            due = [t - now for t in times if t is not None]
            self._wait(min(due) if due else None)

    def _wait(self, timeout: float | None) -> None:
        if not self._in_flight:
            # Only queued retries: nothing but time (or a stop) can change anything.
            self._clock.sleep(self._stop, timeout if timeout is not None else 0.0)
            return
        was = self._stop.is_set(), self._stop.signum
        self._clock.wait_for(
            self._stop, lambda: bool(self._done) or (self._stop.is_set(), self._stop.signum) != was, timeout
        )

    def _dispatch(self, now: float) -> None:
        while self._waiting and self._waiting[0][0] <= now:
            _, rank, job = heapq.heappop(self._waiting)
            heapq.heappush(self._ready, (rank, job))
        while self._ready and not self._stop.is_set():
            ticket = self.limiter.acquire()
            if ticket is None:
                return
            _, job = heapq.heappop(self._ready)
            self._in_flight[job.symbol] = job
            self._work.put((job, ticket))

    def _collect(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
        for job, verdict in done:
            del self._in_flight[job.symbol]
            if verdict.halt is not None and self._halted is None:
                self._halted = verdict.halt
                self._log.error(
                    "Pasada detenida: %s; no se despachan más sincronizaciones: %d símbolos omitidos, %d en curso",
                    verdict.halt,
                    len(self._ready) + len(self._waiting) + 1,
                    len(self._in_flight),
                )
            if verdict.result is not None:
                self._results[job.symbol] = verdict.result
                self._failed += int(verdict.result.status is SymbolStatus.FAILED)
            else:
                heapq.heappush(self._waiting, (self._clock.now() + verdict.again_in, job.rank, job))

    def _report(self) -> float | None:
        if self._progress is None:
            return None
        where = PoolProgress(len(self._results), self._total, len(self._in_flight), self._failed, len(self._waiting))
        return self._progress(where)

    def _active_limits(self) -> list[float]:
        return [] if self._stop.is_set() else [limit.at for limit in self._limits]

    def _check_limits(self) -> None:
        now = self._clock.now()
        for limit in self._limits:
            if self._stop.is_set():
                return
            if now >= limit.at:
                self._stop.request(EndReason.DEADLINE)
                self._log.warning("%s: no se despachan más símbolos; %d en curso", limit.message, len(self._in_flight))

    def _end_reason(self, results: list[SymbolResult], left: bool) -> EndReason:
        if self._stop.signum is not None:
            return EndReason.INTERRUPTED
        reason = self._stop.reason
        if reason is not None and (reason is not EndReason.DEADLINE or left):
            return reason
        failed = any(r.status is not SymbolStatus.OK for r in results)
        return EndReason.SYMBOLS_FAILED if failed else EndReason.OK

    # -- workers ----------------------------------------------------------------------
    def _worker(self) -> None:
        while (item := self._work.get()) is not None:
            job, ticket = item
            try:
                verdict = self._attempt(job)
            except Exception as exc:  # a bug must cost one symbol, not hang the pass
                self._log.error("✗ %s falló por un error interno: %r", job.symbol, exc)
                failed = SymbolResult(job.symbol, SymbolStatus.FAILED, error=f"error interno: {exc!r}")
                verdict = Verdict(Signal.NEUTRAL, failed)
            if verdict.halt is not None:
                # At once, from here: not one more sync may leave while the coordinator wakes.
                self._stop.request(EndReason.EXCHANGE_LIMITED)
            self.limiter.release(ticket, verdict.signal)
            with self._done_lock:
                self._done.append((job, verdict))
            self._stop.notify()

    def _ordered_results(self) -> list[SymbolResult]:
        self._collect()  # whatever finished meanwhile
        interrupted = [
            SymbolResult(sym, SymbolStatus.INTERRUPTED, error="en curso al agotarse la espera")
            for sym in sorted(self._in_flight)
        ]
        queued = sorted([job for _, job in self._ready] + [job for _, _, job in self._waiting], key=lambda j: j.rank)
        abandoned = [self._abandon(job, self._halted) for job in queued]
        return list(self._results.values()) + interrupted + abandoned
