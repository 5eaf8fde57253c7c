"""The worker pool of a pass: syncs dispatched in two lanes, retries re-queued, the halt
policy.

Catch-ups are dispatched first, under the (adaptive) limiter; backfills run beside them
in their own lane, a fixed number of slots (BACKFILL_CONCURRENCY), so a backfill can never
take a catch-up's slot. Every job passes the gate (the exchange budget, sync/exchange_gate.py)
before it leaves: one it holds back stays first in its lane until the gate lets it go.

The coordinator (the caller's thread, where signals land) owns the queue and decides:
it hands a symbol to a worker when the symbol's time has come and the limiter has room,
takes each verdict back, and re-queues a symbol that must run again with the time it
may run. Workers never sleep on a retry: they only run one attempt each and take the
next. A symbol is either queued or in flight, never both, so it is never in flight twice.

Everyone waits on the pass's Stop: a deadline, the budget, a lost backend, the exchange's
quota or a signal sets it, and then nothing more is dispatched. After a signal, what is
in flight may finish within the shutdown grace; what is still running then is abandoned
as interrupted. At the pass budget the backfills in flight go to `leave` at once (the
backend finishes them: nothing is cancelled or re-sent) and the queued ones are deferred.
What is still queued at the end is handed to `abandon`.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading

from coin_sync.clock import Clock
from coin_sync.outcome import EndReason, SymbolResult, SymbolStatus, signal_name
from coin_sync.stop import Stop
from coin_sync.sync.attempt import Job
from coin_sync.sync.lanes import Lane
from coin_sync.sync.limiter import Limiter, Signal, Ticket
from coin_sync.sync.pool_api import (
    AbandonFn,
    AttemptFn,
    Gate,
    LeaveFn,
    Limit,
    PoolProgress,
    ProgressFn,
    Verdict,
)

SHOWN_SYMBOLS = 20  # a log line names this many symbols at most, then how many more


def shown_symbols(symbols: list[str]) -> str:
    """`A, B, C` or, past SHOWN_SYMBOLS, `A, B, ... y 180 más`."""
    shown = ", ".join(symbols[:SHOWN_SYMBOLS])
    more = len(symbols) - SHOWN_SYMBOLS
    return f"{shown} y {more} más" if more > 0 else shown


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
        backfill_lane: Limiter,
        gate: Gate,
        leave: LeaveFn,
        progress: ProgressFn,
        limits: tuple[Limit, ...] = (),
        grace_seconds: float = 20.0,
    ) -> None:
        self._attempt = attempt
        self._abandon = abandon
        self.limiter = limiter
        self._lanes = {Lane.CATCH_UP: limiter, Lane.BACKFILL: backfill_lane}
        self._gate = gate
        self._leave = leave
        self._clock = clock
        self._stop = stop
        self._log = log
        self._limits = limits
        self._grace = grace_seconds
        self._progress = progress
        self._total = 0
        self._failed = 0
        self._ready: dict[Lane, list[tuple[int, Job]]] = {lane: [] for lane in Lane}  # heaps by rank
        self._waiting: list[tuple[float, int, Job]] = []  # heap by the time it may run
        self._in_flight: dict[str, Job] = {}
        self.peak = 0  # the most in flight at once, both lanes
        self._results: dict[str, SymbolResult] = {}
        self._left: set[str] = set()  # left to the backend: their late verdicts are ignored
        self._budget_hit = False  # the pass budget ran out (backfills left or deferred)
        self._halted: str | None = None
        self._work: queue.SimpleQueue[tuple[Job, Ticket] | None] = queue.SimpleQueue()
        self._done_lock = threading.Lock()
        self._done: list[tuple[Job, Verdict]] = []

    def run(self, jobs: list[Job]) -> tuple[list[SymbolResult], EndReason]:
        """Sync every job; (results in completion order, then interrupted and abandoned
        ones; why the pass ended). Within a lane, lower ranks leave first."""
        for job in jobs:
            self._ready[job.lane].append((job.rank, job))
        for heap in self._ready.values():
            heapq.heapify(heap)
        self._total = len(jobs)
        # The health wait may already have used the whole deadline: check before any
        # worker takes a symbol.
        self._check_limits()
        lanes = {id(limiter): limiter.maximum for limiter in self._lanes.values()}
        workers = min(sum(lanes.values()), len(jobs))
        for i in range(workers):
            threading.Thread(target=self._worker, name=f"sync-{i}", daemon=True).start()
        try:
            self._coordinate()
        finally:
            for _ in range(workers):
                self._work.put(None)
        left = self._queued(backfills=not self._budget_hit)
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
            if not self._in_flight and (self._stop.is_set() or not self._queued()):
                return
            gate = None if self._stop.is_set() else self._gate.wake_at()
            if not self._in_flight and not self._waiting and gate is None:
                return  # what is queued is held by the gate until the next pass
            times = [grace_until, self._report(), *self._active_limits(), self.limiter.next_check(), gate]
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

    def _queued(self, backfills: bool = True) -> bool:
        """Is anything still to send (backfills aside: at the pass budget they are deferred)?"""
        ready = any(heap for lane, heap in self._ready.items() if backfills or lane is not Lane.BACKFILL)
        return ready or any(backfills or job.lane is not Lane.BACKFILL for _, _, job in self._waiting)

    def _dispatch(self, now: float) -> None:
        while self._waiting and self._waiting[0][0] <= now:
            _, rank, job = heapq.heappop(self._waiting)
            heapq.heappush(self._ready[job.lane], (rank, job))
        for lane in Lane:  # catch-ups first
            ready, limiter = self._ready[lane], self._lanes[lane]
            while ready and not self._stop.is_set():
                job = ready[0][1]
                if not self._gate.admit(job):
                    break  # first in its lane until the gate lets it go
                ticket = limiter.acquire()
                if ticket is None:
                    break
                heapq.heappop(ready)
                self._in_flight[job.symbol] = job
                self.peak = max(self.peak, len(self._in_flight))
                self._work.put((job, ticket))

    def _collect(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
        for job, verdict in done:
            if job.symbol in self._left:
                continue  # its result was given when it was left; this is only the backend's word
            del self._in_flight[job.symbol]
            if verdict.halt is not None and self._halted is None:
                self._halted = verdict.halt
                self._log.error(
                    "Pasada detenida: %s; no se despachan más sincronizaciones: %d símbolos omitidos, %d en curso",
                    verdict.halt,
                    sum(map(len, self._ready.values())) + len(self._waiting) + 1,
                    len(self._in_flight),
                )
            if verdict.result is not None:
                self._results[job.symbol] = verdict.result
                self._failed += int(verdict.result.status is SymbolStatus.FAILED)
            else:
                heapq.heappush(self._waiting, (self._clock.now() + verdict.again_in, job.rank, job))

    def _report(self) -> float | None:
        where = PoolProgress(len(self._results), self._total, len(self._in_flight), self._failed, len(self._waiting))
        return self._progress(where)

    def _active_limits(self) -> list[float]:
        """The limits still to wake for: after a stop, only one that will leave backfills."""
        now, stopped = self._clock.now(), self._stop.is_set()
        return [limit.at for limit in self._limits if not stopped or (limit.leave_backfills and limit.at > now)]

    def _check_limits(self) -> None:
        now = self._clock.now()
        for limit in self._limits:
            if now < limit.at:
                continue
            if not self._stop.is_set():
                self._stop.request(EndReason.DEADLINE)
                self._log.warning("%s: no se despachan más símbolos; %d en curso", limit.message, len(self._in_flight))
            if limit.leave_backfills and self._stop.signum is None:
                self._budget_hit = True
                self._leave_backfills()

    def _leave_backfills(self) -> None:
        """The backfills in flight finish in the backend; the pass does not wait for them.
        The ones that had not left yet are deferred to the next pass."""
        for _, job in self._ready[Lane.BACKFILL]:
            job.deferred = True
        for symbol, job in list(self._in_flight.items()):
            if job.lane is Lane.BACKFILL:
                job.left = True
                del self._in_flight[symbol]
                self._left.add(symbol)
                self._results[symbol] = self._leave(job)

    def _end_reason(self, results: list[SymbolResult], left: bool) -> EndReason:
        if self._stop.signum is not None:
            return EndReason.INTERRUPTED
        reason = self._stop.reason
        if reason is not None and (reason is not EndReason.DEADLINE or left):
            return reason
        # A backfill left to the backend is still running there, a deferred one waits for
        # the next pass: neither is a failure.
        failed = any(r.failed for r in results)
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
            self._lanes[job.lane].release(ticket, verdict.signal)
            with self._done_lock:
                self._done.append((job, verdict))
            self._stop.notify()

    def _ordered_results(self) -> list[SymbolResult]:
        self._collect()  # whatever finished meanwhile
        interrupted = [
            SymbolResult(sym, SymbolStatus.INTERRUPTED, error="en curso al agotarse la espera")
            for sym in sorted(self._in_flight)
        ]
        ready = [job for heap in self._ready.values() for _, job in heap]
        queued = sorted(ready + [job for _, _, job in self._waiting], key=lambda j: j.rank)
        abandoned = [self._abandon(job, self._halted) for job in queued]
        return list(self._results.values()) + interrupted + abandoned
