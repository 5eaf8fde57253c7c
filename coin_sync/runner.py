"""One sync pass, composed: wait for a healthy backend, resolve the symbols, sync them
in the pool, and return the report. Publishing the report is coin_sync.publish's job."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from coin_sync.attempt import Action, Job, decide, limiter_signal
from coin_sync.client import BackendClient
from coin_sync.clock import Clock
from coin_sync.config import Settings
from coin_sync.errors import BackendError, ErrorKind
from coin_sync.health import wait_until_healthy
from coin_sync.limiter import INITIAL_LIMIT, Limiter, Signal, make_limiter
from coin_sync.ordering import longest_first
from coin_sync.outcome import EndReason, PassReport, SymbolResult, SymbolStatus
from coin_sync.pool import Limit, Pool, Verdict
from coin_sync.retry import RetriesExhausted, RetryPolicy, call_with_retries
from coin_sync.stop import Interrupted, Stop
from coin_sync.symbols import normalise_symbols, select_shard


@dataclass
class PassContext:
    """What a pass talks to and waits on; tests swap the clock."""

    settings: Settings
    client: BackendClient
    log: logging.Logger
    stop: Stop
    clock: Clock

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy.from_settings(self.settings.retry)

    def log_retry(self, what: str, attempt: int, error: BackendError, delay: float) -> None:
        self.log.warning(
            "↻ %s: intento %d de %d falló (%s); reintento en %.1f s",
            what,
            attempt,
            self.policy.max_retries + 1,
            error,
            delay,
        )


def new_report(settings: Settings, clock: Clock, reason: EndReason = EndReason.OK) -> PassReport:
    return PassReport(
        pass_number=settings.sync.pass_number,
        started_at=clock.wall().isoformat(timespec="seconds"),
        reason=reason,
        shard_index=settings.sync.shard_index,
        shard_count=settings.sync.shard_count,
    )


def run_pass(ctx: PassContext) -> PassReport:
    s, log, stop, clock = ctx.settings, ctx.log, ctx.stop, ctx.clock
    started = clock.now()
    report = new_report(s, clock)
    log.info("=" * 60)
    log.info("INICIO DE SINCRONIZACIÓN #%d", s.sync.pass_number)
    log.info("=" * 60)
    try:
        with stop.raising():
            symbols, reason = _prepare(ctx)
        if reason is None:
            pool = _pool(ctx, started)
            log.info("Sincronizando %d símbolos (concurrencia %s)", len(symbols), _shown_concurrency(s))
            report.results, reason = pool.run(symbols)
            report.concurrency_max, report.concurrency_final = pool.limiter.peak, pool.limiter.limit
    except Interrupted:
        reason = EndReason.INTERRUPTED
    report.reason = reason
    report.signum = stop.signum if reason is EndReason.INTERRUPTED else None
    report.duration = clock.now() - started
    report.finished_at = clock.wall().isoformat(timespec="seconds")
    return report


def _shown_concurrency(s: Settings) -> str:
    if isinstance(s.sync.concurrency, int):
        return str(s.sync.concurrency)
    return f"auto, de {min(INITIAL_LIMIT, s.sync.concurrency_max)} hasta {s.sync.concurrency_max}"


def _pool(ctx: PassContext, started: float) -> Pool:
    """PASS_DEADLINE_SECONDS and PASS_BUDGET_SECONDS count from the start of the pass
    (health wait included)."""
    s = ctx.settings.sync
    limits = []
    if s.deadline_seconds > 0:
        shown = f"Límite de la pasada ({s.deadline_seconds:.0f} s) alcanzado"
        limits.append(Limit(started + s.deadline_seconds, shown))
    budget_end = started + s.budget_seconds if s.budget_seconds > 0 else None
    if budget_end is not None:
        limits.append(Limit(budget_end, f"Presupuesto de la pasada ({s.budget_seconds:g} s) agotado"))
    limiter = make_limiter(s.concurrency, s.concurrency_max, ctx.clock)
    one = _SymbolSync(ctx, limiter, budget_end)
    return Pool(
        one.attempt,
        one.abandon,
        limiter=limiter,
        clock=ctx.clock,
        stop=ctx.stop,
        log=ctx.log,
        limits=tuple(limits),
        grace_seconds=s.shutdown_grace_seconds,
    )


def _prepare(ctx: PassContext) -> tuple[list[str], EndReason | None]:
    """Health and symbols; a reason when the pass ends here."""
    s = ctx.settings
    healthy, why = wait_until_healthy(ctx.client, s.backend.wait_seconds, ctx.clock, ctx.stop, ctx.log)
    if not healthy:
        ctx.log.error("El backend no está disponible tras %.0f s: %s", s.backend.wait_seconds, why)
        return [], EndReason.BACKEND_UNAVAILABLE
    symbols = resolve_symbols(ctx)
    if symbols is None:
        return [], EndReason.SYMBOLS_UNUSABLE
    if not symbols:
        ctx.log.warning("No hay símbolos que sincronizar")
        return [], EndReason.NOTHING_TO_SYNC
    return symbols, None


def resolve_symbols(ctx: PassContext) -> list[str] | None:
    """This shard's symbols, normalised; None when the backend's list is unusable."""
    s, log = ctx.settings.sync, ctx.log
    if s.symbols:
        raw = list(s.symbols)
        log.info("Símbolos de SYMBOLS_TO_SYNC: %d", len(raw))
    else:
        try:
            raw = call_with_retries(
                ctx.client.list_symbols,
                ctx.policy,
                ctx.clock,
                ctx.stop,
                on_retry=lambda n, e, d: ctx.log_retry("/api/symbols", n, e, d),
            ).value
        except RetriesExhausted as exc:
            log.error("No se pudo obtener la lista de símbolos tras %d intentos: %s", exc.attempts, exc.error)
            return None
        log.info("Símbolos en el backend: %d", len(raw))
    symbols, rejected = normalise_symbols(raw)
    for bad in rejected:
        log.warning("Símbolo inválido ignorado: %s (%s)", bad.shown, bad.reason)
    mine = select_shard(symbols, s.shard_index, s.shard_count)
    if s.shard_count > 1:
        log.info("Fragmento %d de %d: %d de %d símbolos", s.shard_index, s.shard_count, len(mine), len(symbols))
    # Longest work first, after the shard split. Issue 9 plugs in here: replace {} with
    # {name: row.last_record for each ListedSymbol row}, names normalised as `symbols`
    # are; a symbol missing from it (only in SYMBOLS_TO_SYNC) counts as a full backfill.
    last_records: dict[str, datetime | None] = {}
    return longest_first(mine, last_records, ctx.clock.wall())


class _SymbolSync:
    """One attempt at one symbol, and what follows from its answer (coin_sync.attempt);
    after a backend-side failure, one /health probe."""

    def __init__(self, ctx: PassContext, limiter: Limiter, budget_end: float | None) -> None:
        self._ctx = ctx
        self._limiter = limiter
        self._budget_end = budget_end
        self._policy = ctx.policy
        self._health_lock = threading.Lock()

    def attempt(self, job: Job) -> Verdict:
        ctx = self._ctx
        if job.began is None:
            job.began = ctx.clock.now()
        job.calls += 1
        try:
            new_records = ctx.client.sync(job.symbol)
        except BackendError as error:
            job.error = error
            return self._failed(job, error)
        ctx.log.info("✓ %s sincronizado: %d nuevos registros", job.symbol, new_records)
        return Verdict(Signal.OK, self._result(job, SymbolStatus.OK, new_records))

    def _failed(self, job: Job, error: BackendError) -> Verdict:
        ctx, signal = self._ctx, limiter_signal(error)
        decision = decide(
            error,
            job,
            self._policy,
            now=ctx.clock.now(),
            budget_end=self._budget_end,
            latency=self._limiter.latency(),
        )
        if decision.action is Action.HALT:
            return Verdict(signal, self._result(job, SymbolStatus.SKIPPED, error=decision.reason), halt=decision.reason)
        if decision.action is Action.REQUEUE:
            job.requeues += 1
            ctx.log.info(
                "⇄ %s: el backend no admite más carga (%s); vuelve a la cola en %.2f s (no cuenta como intento)",
                job.symbol,
                error,
                decision.wait,
            )
            return Verdict(signal, again_in=decision.wait)
        # Unreachable: ask /health now, or every queued symbol would fail the same way
        # in turn. A backend that answered (5xx) is asked once its symbol is out of tries.
        if error.means_backend_down and (error.kind is ErrorKind.CONNECTION or decision.action is Action.FAIL):
            self._check_backend_still_there()
        if decision.action is Action.RETRY and not ctx.stop.is_set():
            ctx.log_retry(job.symbol, job.attempts, error, decision.wait)
            return Verdict(signal, again_in=decision.wait)
        note = decision.note or (" (reintentos cancelados)" if decision.action is Action.RETRY else "")
        return Verdict(signal, self._fail(job, error, note))

    def abandon(self, job: Job, halted: str | None) -> SymbolResult:
        """Still queued when the pass stopped: skipped, or failed if it had failed."""
        if job.error is not None and job.failed_attempts:
            return self._fail(job, job.error, " (reintentos cancelados)")
        return self._result(job, SymbolStatus.SKIPPED, error=halted)

    def _fail(self, job: Job, error: BackendError, note: str) -> SymbolResult:
        self._ctx.log.error("✗ %s falló tras %d intento(s)%s: %s", job.symbol, job.attempts, note, error)
        return self._result(job, SymbolStatus.FAILED, error=str(error) + note)

    def _result(self, job: Job, status: SymbolStatus, new_records: int = 0, error: str | None = None) -> SymbolResult:
        took = 0.0 if job.began is None else self._ctx.clock.now() - job.began
        return SymbolResult(job.symbol, status, new_records, job.attempts, took, error, job.requeues)

    def _check_backend_still_there(self) -> None:
        """A dead backend costs one symbol's attempt, not every symbol's retries."""
        with self._health_lock:
            if self._ctx.stop.is_set():
                return
            healthy, why = self._ctx.client.health()
            if not healthy:
                self._ctx.stop.request(EndReason.BACKEND_LOST)
                self._ctx.log.error("El backend dejó de responder (%s): se detiene la pasada", why)
