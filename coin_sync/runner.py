"""One sync pass, composed: wait for a healthy backend, resolve the symbols, sync them
in the pool, and return the report. Publishing the report is coin_sync.publish's job."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from coin_sync.client import BackendClient, SyncAnswer
from coin_sync.clock import Clock
from coin_sync.config import Settings
from coin_sync.errors import BackendError
from coin_sync.freshness import assess
from coin_sync.health import wait_until_healthy
from coin_sync.holds import Listing
from coin_sync.memory import Memory, SymbolPlan
from coin_sync.outcome import EndReason, PassReport, SymbolResult, SymbolStatus
from coin_sync.pool import Pool
from coin_sync.retry import RetriesExhausted, RetryPolicy, call_with_retries
from coin_sync.state import MemoryStateStore, StateStore
from coin_sync.stop import Interrupted, Stop
from coin_sync.symbols import ListedSymbol, compose, listed_last_records, normalise_symbols, select_shard


@dataclass
class PassContext:
    """What a pass talks to and waits on; tests swap the clock."""

    settings: Settings
    client: BackendClient
    log: logging.Logger
    stop: Stop
    clock: Clock
    state: StateStore = field(default_factory=MemoryStateStore)  # the CLI gives STATE_FILE's

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
            plan, reason = _prepare(ctx)
            # May read /api/symbols once (SYMBOLS_TO_SYNC): inside raising() too.
            memory = Memory(ctx, plan) if reason is None else None
        if reason is None:
            assert memory is not None
            syncer = _SymbolSync(ctx, memory)
            pool = Pool(
                syncer.sync,
                concurrency=s.sync.concurrency,
                clock=clock,
                stop=stop,
                log=log,
                started=started,
                deadline_seconds=s.sync.deadline_seconds,
                grace_seconds=s.sync.shutdown_grace_seconds,
            )
            log.info("Sincronizando %d símbolos (concurrencia %d)", len(memory.send), s.sync.concurrency)
            results, reason = pool.run(memory.send)
            results = judge_freshness(ctx, results, syncer.last_records, plan.listed_last_records)
            report.results = results + memory.held_results()
            memory.finish(report.results)
            if reason is EndReason.OK and s.sync.fail_on_stale and report.stale:
                reason = EndReason.STALE
    except Interrupted:
        reason = EndReason.INTERRUPTED
    report.reason = reason
    report.signum = stop.signum if reason is EndReason.INTERRUPTED else None
    report.duration = clock.now() - started
    report.finished_at = clock.wall().isoformat(timespec="seconds")
    return report


def judge_freshness(
    ctx: PassContext, results: list[SymbolResult], synced: dict[str, object], listed: dict[str, object]
) -> list[SymbolResult]:
    """Each result with its freshness as of now; one WARNING per stale symbol and per
    timestamp the backend got wrong."""
    now, stale_after = ctx.clock.wall(), ctx.settings.sync.stale_after_seconds
    judged = []
    for result in results:
        fresh = assess(synced.get(result.symbol), listed.get(result.symbol), now, stale_after)
        if fresh.problem is not None:
            ctx.log.warning("⚠ %s: frescura desconocida (%s)", result.symbol, fresh.problem)
        elif fresh.stale and fresh.lag_seconds is not None:
            ctx.log.warning(
                "⚠ %s desactualizado: último registro %s, %.1f min de retraso (STALE_AFTER_SECONDS=%g)",
                result.symbol,
                fresh.iso,
                fresh.lag_seconds / 60,
                stale_after,
            )
        judged.append(replace(result, last_record=fresh.iso, lag_seconds=fresh.lag_seconds, stale=fresh.stale))
    return judged


def _prepare(ctx: PassContext) -> tuple[SymbolPlan, EndReason | None]:
    """Health and symbols; a reason when the pass ends here."""
    s = ctx.settings
    nothing = SymbolPlan([], None)
    healthy, why = wait_until_healthy(ctx.client, s.backend.wait_seconds, ctx.clock, ctx.stop, ctx.log)
    if not healthy:
        ctx.log.error("El backend no está disponible tras %.0f s: %s", s.backend.wait_seconds, why)
        return nothing, EndReason.BACKEND_UNAVAILABLE
    plan = resolve_plan(ctx)
    if plan is None:
        return nothing, EndReason.SYMBOLS_UNUSABLE
    if not plan.symbols:
        ctx.log.warning("No hay símbolos que sincronizar")
        return plan, EndReason.NOTHING_TO_SYNC
    return plan, None


def resolve_symbols(ctx: PassContext) -> list[str] | None:
    """This shard's symbols, normalised; None when the backend's list is unusable."""
    plan = resolve_plan(ctx)
    return None if plan is None else plan.symbols


def resolve_plan(ctx: PassContext) -> SymbolPlan | None:
    """SYMBOLS_TO_SYNC as given; else the backend's list plus SYMBOLS_INCLUDE minus
    SYMBOLS_EXCLUDE. This shard's part; None when the backend's list is unusable."""
    s, log = ctx.settings.sync, ctx.log
    listing: Listing | None = None
    rows: list[ListedSymbol] = []
    unlisted: set[str] = set()
    if s.symbols:
        log.info("Símbolos de SYMBOLS_TO_SYNC: %d", len(s.symbols))
        symbols = _normalised(log, s.symbols)
        if s.include or s.exclude:
            log.warning("SYMBOLS_TO_SYNC define exactamente los símbolos: se ignoran SYMBOLS_INCLUDE/SYMBOLS_EXCLUDE")
    else:
        try:
            rows = call_with_retries(
                ctx.client.list_symbols,
                ctx.policy,
                ctx.clock,
                ctx.stop,
                on_retry=lambda n, e, d: ctx.log_retry("/api/symbols", n, e, d),
            ).value
            listing = Listing.from_rows(rows)
        except RetriesExhausted as exc:
            log.error("No se pudo obtener la lista de símbolos tras %d intentos: %s", exc.attempts, exc.error)
            return None
        log.info("Símbolos en el backend: %d", len(listing.names))
        listed = _normalised(log, listing.names)
        include, exclude = _normalised(log, s.include), _normalised(log, s.exclude)
        symbols = compose(listed, include, exclude)
        unlisted = set(include) - set(listed) - set(exclude)
        if include or exclude:
            log.info(
                "SYMBOLS_INCLUDE: %d (%d aún no están en el backend); SYMBOLS_EXCLUDE: %d",
                len(include),
                len(unlisted),
                len(exclude),
            )
    mine = select_shard(symbols, s.shard_index, s.shard_count)
    if s.shard_count > 1:
        log.info("Fragmento %d de %d: %d de %d símbolos", s.shard_index, s.shard_count, len(mine), len(symbols))
    return SymbolPlan(mine, listing, unlisted & set(mine), listed_last_records(rows))


def _normalised(log: logging.Logger, raw: Iterable[str]) -> list[str]:
    symbols, rejected = normalise_symbols(raw)
    for bad in rejected:
        log.warning("Símbolo inválido ignorado: %s (%s)", bad.shown, bad.reason)
    return symbols


class _SymbolSync:
    """One symbol, with retries; after a backend-side failure, one /health probe."""

    def __init__(self, ctx: PassContext, memory: Memory) -> None:
        self._ctx = ctx
        self._memory = memory
        self._health_lock = threading.Lock()
        self.last_records: dict[str, object] = {}  # raw statistics.last_record by symbol

    def _send(self, symbol: str) -> SyncAnswer:
        self._memory.sending(symbol)
        return self._ctx.client.sync(symbol)

    def sync(self, symbol: str) -> SymbolResult:
        ctx = self._ctx
        began = ctx.clock.now()
        try:
            outcome = call_with_retries(
                lambda: self._send(symbol),
                ctx.policy,
                ctx.clock,
                ctx.stop,
                on_retry=lambda n, e, d: ctx.log_retry(symbol, n, e, d),
            )
        except RetriesExhausted as exc:
            took = ctx.clock.now() - began
            error = exc.error
            if error.may_still_run:
                self._memory.ambiguous(symbol)
            if error.exchange is not None and error.rejected_by_exchange:
                ctx.log.error(
                    "✗ %s rechazado por el exchange (%s): no se reintenta; corrige el nombre o usa SYMBOLS_EXCLUDE",
                    symbol,
                    error.exchange.reason,
                )
                return SymbolResult(symbol, SymbolStatus.FAILED, 0, exc.attempts, took, str(error), rejected=True)
            note = " (reintentos cancelados)" if exc.cancelled else ""
            ctx.log.error("✗ %s falló tras %d intento(s)%s: %s", symbol, exc.attempts, note, exc.error)
            if exc.error.means_backend_down and not exc.cancelled:
                self._check_backend_still_there()
            return SymbolResult(symbol, SymbolStatus.FAILED, 0, exc.attempts, took, str(exc.error))
        took = ctx.clock.now() - began
        answer = outcome.value
        self.last_records[symbol] = answer.last_record  # one key per symbol: no lock needed
        ctx.log.info("✓ %s sincronizado: %d nuevos registros", symbol, answer.new_records)
        return SymbolResult(symbol, SymbolStatus.OK, answer.new_records, outcome.attempts, took)

    def _check_backend_still_there(self) -> None:
        """A dead backend costs one symbol's retries, not every symbol's."""
        with self._health_lock:
            if self._ctx.stop.is_set():
                return
            healthy, why = self._ctx.client.health()
            if not healthy:
                self._ctx.stop.request(EndReason.BACKEND_LOST)
                self._ctx.log.error("El backend dejó de responder (%s): se detiene la pasada", why)
