"""One sync pass, composed: wait for a healthy backend, resolve the symbols (coin_sync.sync.plan),
hold back the ambiguous ones (coin_sync.sync.memory), sync the rest longest first in the pool
(one attempt at a time: coin_sync.sync.syncer), judge the freshness, and return the report.
Publishing the report is coin_sync.observe.publish's job."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from coin_sync.backend.health import wait_until_healthy
from coin_sync.backend.wire import ListedSymbol
from coin_sync.clock import Clock
from coin_sync.config.settings import Settings
from coin_sync.outcome import SKIP_AMBIGUOUS_HOLD, EndReason, PassReport, SymbolResult
from coin_sync.stop import Interrupted
from coin_sync.sync.completeness import assess_completeness
from coin_sync.sync.context import PassContext
from coin_sync.sync.freshness import assess, parse_timestamp
from coin_sync.sync.limiter import INITIAL_LIMIT, make_limiter
from coin_sync.sync.memory import Memory
from coin_sync.sync.ordering import longest_first
from coin_sync.sync.plan import SymbolPlan, resolve_plan
from coin_sync.sync.pool import Limit, Pool
from coin_sync.sync.progress import ProgressReporter
from coin_sync.sync.syncer import SymbolSync


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
            pool, syncer = _pool(ctx, memory, started)
            symbols = longest_first(memory.send, _known_last_records(plan, clock.wall()), clock.wall())
            _log_start(ctx, len(symbols), len(memory.held_results()))
            results: list[SymbolResult] = []
            try:
                results, reason = pool.run(symbols)
                report.concurrency_max, report.concurrency_final = pool.limiter.peak, pool.limiter.limit
                # Held symbols too: one held pass after pass is the one most likely stuck.
                results = judge_freshness(
                    ctx, results + memory.held_results(), syncer.last_records, plan.listed_last_records
                )
                results = judge_completeness(ctx, results, plan.listed)
            finally:
                # Even if something above raised: this pass's ambiguous syncs must be
                # remembered, or the next pass could re-send a backfill still running.
                report.results = results
                memory.finish(results)
            if reason is EndReason.OK and s.sync.fail_on_stale and report.stale:
                reason = EndReason.STALE
            elif reason is EndReason.OK and s.sync.fail_on_gaps and report.gaps:
                reason = EndReason.GAPS
    except Interrupted:
        reason = EndReason.INTERRUPTED
    report.reason = reason
    report.signum = stop.signum if reason is EndReason.INTERRUPTED else None
    report.duration = clock.now() - started
    report.finished_at = clock.wall().isoformat(timespec="seconds")
    return report


def _log_start(ctx: PassContext, sending: int, held: int) -> None:
    held_text = f"; {held} retenido{'s' if held != 1 else ''} (sincronización ambigua)" if held else ""
    if sending:
        word = "símbolo" if sending == 1 else "símbolos"
        concurrency = _shown_concurrency(ctx.settings)
        ctx.log.info("Sincronizando %d %s (concurrencia %s)%s", sending, word, concurrency, held_text)
    else:
        ctx.log.info("Ningún símbolo que enviar%s", held_text)


def _shown_concurrency(s: Settings) -> str:
    if isinstance(s.sync.concurrency, int):
        return str(s.sync.concurrency)
    return f"auto, de {min(INITIAL_LIMIT, s.sync.concurrency_max)} hasta {s.sync.concurrency_max}"


def _pool(ctx: PassContext, memory: Memory, started: float) -> tuple[Pool, SymbolSync]:
    """PASS_DEADLINE_SECONDS and PASS_BUDGET_SECONDS count from the start of the pass
    (health wait included)."""
    s = ctx.settings.sync
    limits = []
    if s.deadline_seconds > 0:
        shown = f"Límite de la pasada ({s.deadline_seconds:.0f} s) alcanzado"
        limits.append(Limit(started + s.deadline_seconds, shown))
    budget_end = started + s.budget_seconds if s.budget_seconds else None
    if budget_end is not None:
        limits.append(Limit(budget_end, f"Presupuesto de la pasada ({s.budget_seconds:g} s) agotado"))
    limiter = make_limiter(s.concurrency, s.concurrency_max, ctx.clock)
    syncer = SymbolSync(ctx, memory, limiter, budget_end)
    pool = Pool(
        syncer.attempt,
        syncer.abandon,
        limiter=limiter,
        clock=ctx.clock,
        stop=ctx.stop,
        log=ctx.log,
        limits=tuple(limits),
        grace_seconds=s.shutdown_grace_seconds,
        progress=ProgressReporter(ctx.clock, ctx.log),
    )
    return pool, syncer


def _known_last_records(plan: SymbolPlan, now: datetime) -> dict[str, datetime | None]:
    """For the order: each listed symbol's last_record (None when unusable); a symbol
    the backend did not list is absent, a full backfill."""
    if plan.listing is None:
        return {}
    return {name: parse_timestamp(raw, now)[0] for name, raw in plan.listed_last_records.items()}


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


def judge_completeness(
    ctx: PassContext, results: list[SymbolResult], listed: dict[str, ListedSymbol]
) -> list[SymbolResult]:
    """Each result with its missing minutes as /api/symbols counted them at the start of
    the pass (a hole is never refilled, so the count holds); one WARNING per holed symbol
    and per count the backend got wrong (a bad listed last_record only when judge_freshness,
    which then had no other, has not named it already)."""
    now, judged = ctx.clock.wall(), []
    for result in results:
        row = listed.get(result.symbol)
        # Not listed (new, or SYMBOLS_TO_SYNC): nothing counted. Held: its earlier sync may
        # still be inserting while the backend counts, which would show a hole that is not.
        if row is None or result.skip_reason == SKIP_AMBIGUOUS_HOLD:
            judged.append(result)
            continue
        gaps = assess_completeness(row.first_record, row.last_record, row.total_records, now)
        if gaps.problem is not None and (gaps.culprit != "last_record" or result.last_record is not None):
            ctx.log.warning("⚠ %s: huecos desconocidos (%s)", result.symbol, gaps.problem)
        elif gaps.missing_minutes:
            ctx.log.warning(
                "⚠ %s tiene %d minuto%s sin datos entre %s y %s (el backend no rellena huecos)",
                result.symbol,
                gaps.missing_minutes,
                "" if gaps.missing_minutes == 1 else "s",
                gaps.first_record,
                gaps.last_record,
            )
        judged.append(replace(result, missing_minutes=gaps.missing_minutes))
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
