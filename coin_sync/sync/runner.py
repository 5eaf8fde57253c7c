"""One sync pass, composed: wait for a healthy backend, resolve the symbols (coin_sync.sync.plan),
hold back the ambiguous ones (coin_sync.sync.memory), sync the rest in two lanes (catch-ups
first, backfills beside them: coin_sync.sync.lanes) in the pool
(one attempt at a time: coin_sync.sync.syncer), judge the freshness, and return the report.
Publishing the report is coin_sync.observe.publish's job."""

from __future__ import annotations

from dataclasses import replace

from coin_sync.backend.wire import ListedSymbol
from coin_sync.clock import Clock
from coin_sync.config.settings import Settings
from coin_sync.outcome import SKIP_AMBIGUOUS_HOLD, SKIP_DEFERRED, EndReason, PassReport, SymbolResult, SymbolStatus
from coin_sync.stop import Interrupted
from coin_sync.sync.attempt import Job
from coin_sync.sync.completeness import assess_completeness
from coin_sync.sync.context import PassContext
from coin_sync.sync.exchange_budget import ExchangeBudget
from coin_sync.sync.exchange_gate import ExchangeGate
from coin_sync.sync.freshness import judged
from coin_sync.sync.lanes import Lane, classify, dispatch_order
from coin_sync.sync.limiter import INITIAL_LIMIT, Limiter, make_limiter
from coin_sync.sync.memory import Memory
from coin_sync.sync.plan import SymbolPlan, resolve_plan
from coin_sync.sync.pool import Pool
from coin_sync.sync.pool_api import Limit
from coin_sync.sync.progress import ProgressReporter
from coin_sync.sync.syncer import DEFERRED_AT_BUDGET, SymbolSync


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
            jobs = _jobs(ctx, plan, memory.send)
            # Shards run at once against one backend, one IP: each gets its share.
            share = max(1, s.sync.exchange_weight_per_minute // s.sync.shard_count)
            budget = ExchangeBudget(share, memory.exchange, clock.wall())
            gate = ExchangeGate(budget, memory.exchange, jobs, clock, log)
            pool = _pool(ctx, memory, plan, started, gate)
            _log_start(ctx, len(jobs), len(memory.held_results()))
            results: list[SymbolResult] = []
            try:
                results, reason = pool.run(jobs)
                deferred = sum(1 for r in results if r.skip_reason == SKIP_DEFERRED)
                if deferred:
                    why = gate.deferral_note() if gate.deferring else DEFERRED_AT_BUDGET
                    log.info("⏭ %d backfills diferidos a la próxima pasada: %s", deferred, why)
                report.concurrency_max, report.concurrency_final = pool.peak, pool.limiter.limit
                # Held symbols too: one held pass after pass is the one most likely stuck.
                results += memory.held_results()
            finally:
                report.exchange_budget, report.exchange_weight = gate.budget.limit, gate.budget.charged
                memory.exchange = gate.budget.memory(clock.wall())
                # Even if something above raised: this pass's ambiguous syncs must be
                # remembered, or the next pass could re-send a backfill still running.
                pending = memory.finish(results)
            report.results = judge_completeness(
                ctx, completed(ctx, results, plan, pending), plan.listing.rows if plan.listing else {}
            )
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


def _pool(ctx: PassContext, memory: Memory, plan: SymbolPlan, started: float, gate: ExchangeGate) -> Pool:
    """PASS_DEADLINE_SECONDS and PASS_BUDGET_SECONDS count from the start of the pass
    (health wait included)."""
    s = ctx.settings.sync
    limits = []
    if s.deadline_seconds > 0:
        shown = f"Límite de la pasada ({s.deadline_seconds:.0f} s) alcanzado"
        limits.append(Limit(started + s.deadline_seconds, shown))
    budget_end = started + s.budget_seconds if s.budget_seconds else None
    if budget_end is not None:
        shown = f"Presupuesto de la pasada ({s.budget_seconds:g} s) agotado"
        limits.append(Limit(budget_end, shown, leave_backfills=True))
    limiter = make_limiter(s.concurrency, s.concurrency_max, ctx.clock)
    syncer = SymbolSync(ctx, memory, plan.listing, limiter, budget_end, gate=gate)
    return Pool(
        syncer.attempt,
        syncer.abandon,
        limiter=limiter,
        clock=ctx.clock,
        stop=ctx.stop,
        log=ctx.log,
        limits=tuple(limits),
        grace_seconds=s.shutdown_grace_seconds,
        progress=ProgressReporter(ctx.clock, ctx.log),
        backfill_lane=Limiter(s.backfill_concurrency, ctx.clock),
        gate=gate,
        leave=syncer.leave,
    )


def _jobs(ctx: PassContext, plan: SymbolPlan, symbols: list[str]) -> list[Job]:
    """This pass's jobs in dispatch order, each in its lane (coin_sync.sync.lanes)."""
    now = ctx.clock.wall()
    ordered = dispatch_order(classify(symbols, plan.listing, now), plan.listing, now)
    backfills = [p for p in ordered if p.lane is Lane.BACKFILL]
    if backfills:
        ctx.log.info(
            "Carriles: %d al día primero, %d backfills aparte (BACKFILL_CONCURRENCY=%d; ~%d peticiones al exchange)",
            len(ordered) - len(backfills),
            len(backfills),
            ctx.settings.sync.backfill_concurrency,
            sum(p.requests for p in backfills),
        )
    return [Job(p.symbol, rank, p.lane, p.requests) for rank, p in enumerate(ordered)]


def completed(
    ctx: PassContext, results: list[SymbolResult], plan: SymbolPlan, pending: frozenset[str]
) -> list[SymbolResult]:
    """The pass's results as reported, each built once from what the pool returned: a
    synced symbol already carries its answer's freshness; every other one gets the
    listing's as of now (one WARNING per stale symbol and per wrong timestamp)."""
    now, stale_after, listing = ctx.clock.wall(), ctx.settings.sync.stale_after_seconds, plan.listing
    final = []
    for result in results:
        judged_now = result
        if result.status is not SymbolStatus.OK:
            listed = None if listing is None else listing.stamp(result.symbol)
            judged_now = judged(result, None, listed, now=now, stale_after=stale_after, log=ctx.log)
        final.append(replace(judged_now, pending_backfill=result.symbol in pending))
    return final


def judge_completeness(
    ctx: PassContext, results: list[SymbolResult], listed: dict[str, ListedSymbol]
) -> list[SymbolResult]:
    """Each result with its missing minutes as /api/symbols counted them at the start of
    the pass (a hole is never refilled, so the count holds); one WARNING per holed symbol
    and per count the backend got wrong (a bad listed last_record only when the freshness
    judgement, which then had no other, has not named it already)."""
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
    nothing = SymbolPlan([], None)
    if not ctx.backend_ready():
        return nothing, EndReason.BACKEND_UNAVAILABLE
    plan = resolve_plan(ctx)
    if plan is None:
        return nothing, EndReason.SYMBOLS_UNUSABLE
    if not plan.symbols:
        ctx.log.warning("No hay símbolos que sincronizar")
        return plan, EndReason.NOTHING_TO_SYNC
    return plan, None
