"""One attempt at one symbol, and what follows from its answer (coin_sync.sync.attempt): the
result, a re-queue, a retry, or a halt; after a backend-side failure, one /health probe.
What the pass must remember of each attempt (when it was sent, whether its answer was
ambiguous) goes to Memory; a synced symbol's result carries the freshness its own answer
reported (the listing's when the answer had none)."""

from __future__ import annotations

import threading

from coin_sync.backend.errors import BackendError, ErrorKind
from coin_sync.outcome import SKIP_DEFERRED, SKIP_LEFT_TO_BACKEND, EndReason, SymbolResult, SymbolStatus
from coin_sync.sync.attempt import Action, Job, decide, exchange_quota_reason, limiter_signal
from coin_sync.sync.context import PassContext
from coin_sync.sync.exchange_gate import ExchangeGate
from coin_sync.sync.freshness import judged, stamp
from coin_sync.sync.lanes import Lane
from coin_sync.sync.limiter import Limiter, Signal
from coin_sync.sync.listing import Listing
from coin_sync.sync.memory import Memory
from coin_sync.sync.pool_api import Verdict

LATE = Verdict(Signal.NEUTRAL)  # the answer of a sync the pass already left to the backend


DEFERRED_AT_BUDGET = "el presupuesto de la pasada se agotó antes de que saliera"


class SymbolSync:
    def __init__(
        self,
        ctx: PassContext,
        memory: Memory,
        listing: Listing | None,
        limiter: Limiter,
        budget_end: float | None,
        *,
        gate: ExchangeGate,
    ) -> None:
        self._ctx = ctx
        self._gate = gate
        self._memory = memory
        self._listing = listing
        self._limiter = limiter
        self._budget_end = budget_end
        self._policy = ctx.policy
        self._health_lock = threading.Lock()

    def attempt(self, job: Job) -> Verdict:
        ctx = self._ctx
        if job.began is None:
            job.began = ctx.clock.now()
        job.calls += 1
        self._memory.sending(job.symbol)
        try:
            answer = ctx.client.sync(job.symbol)
        except BackendError as error:
            if job.left:
                return LATE
            job.error = error
            if error.may_still_run:
                self._memory.ambiguous(job.symbol)
            if error.status is not None:  # the backend answered
                self._gate.answered(job.symbol, limited=exchange_quota_reason(error) is not None)
            return self._failed(job, error)
        self._gate.answered(job.symbol, limited=False)
        if job.left:
            # Its answer came after the pass left it to the backend (and maybe after the
            # FIN line): the next pass reads what it stored from /api/symbols.
            return LATE
        n = answer.new_records
        ctx.log.info("✓ %s sincronizado: %d %s", job.symbol, n, "nuevo registro" if n == 1 else "nuevos registros")
        now = ctx.clock.wall()
        listed = None if self._listing is None else self._listing.stamp(job.symbol)
        result = judged(
            self._result(job, SymbolStatus.OK, answer.new_records),
            stamp(answer.last_record),
            listed,
            now=now,
            stale_after=ctx.settings.sync.stale_after_seconds,
            log=ctx.log,
        )
        return Verdict(Signal.OK, result)

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
            halted = self._result(job, SymbolStatus.SKIPPED, error=decision.reason)
            halted.skip_reason = EndReason.EXCHANGE_LIMITED.word
            return Verdict(signal, halted, halt=decision.reason)
        if decision.action is Action.REQUEUE:
            job.requeues += 1
            ctx.log.info(
                "⇄ %s: el backend no admite más carga (%s); vuelve a la cola en %.2f s (no cuenta como intento)",
                job.symbol,
                error,
                decision.wait,
            )
            return Verdict(signal, again_in=decision.wait)
        if error.exchange is not None and error.rejected_by_exchange:
            ctx.log.error(
                "✗ %s rechazado por el exchange (%s): no se reintenta; corrige el nombre o usa SYMBOLS_EXCLUDE",
                job.symbol,
                error.exchange.reason,
            )
            return Verdict(signal, self._result(job, SymbolStatus.FAILED, error=str(error), rejected=True))
        # Unreachable: ask /health now, or every queued symbol would fail the same way
        # in turn. A backend that answered (5xx) is asked once its symbol is out of tries.
        if error.means_backend_down and (error.kind is ErrorKind.CONNECTION or decision.action is Action.FAIL):
            self._check_backend_still_there()
        if decision.action is Action.RETRY and not ctx.stop.is_set():
            ctx.log_retry(job.symbol, job.attempts, error, decision.wait)
            return Verdict(signal, again_in=decision.wait)
        note = decision.note or (" (reintentos cancelados)" if decision.action is Action.RETRY else "")
        return Verdict(signal, self._fail(job, error, note))

    def leave(self, job: Job) -> SymbolResult:
        """A backfill still in flight when the pass budget ran out: the backend finishes
        it; the next passes hold it until its last_record advances (coin_sync.sync.holds)."""
        self._memory.ambiguous(job.symbol)
        took = 0.0 if job.began is None else self._ctx.clock.now() - job.began
        self._ctx.log.warning(
            "⧗ %s: backfill en curso al agotarse el presupuesto de la pasada (enviado hace %.0f s); se deja al "
            "backend, que lo termina (no se cancela ni se reenvía), y se retiene hasta que avance su last_record",
            job.symbol,
            took,
        )
        return self._result(
            job, SymbolStatus.SKIPPED, error="backfill en curso en el backend", skip_reason=SKIP_LEFT_TO_BACKEND
        )

    def abandon(self, job: Job, halted: str | None) -> SymbolResult:
        """Still queued when the pass stopped: skipped, or failed if it had failed; a
        backfill the exchange budget held back is deferred to the next pass."""
        if job.calls == 0:
            self._gate.unsent(job.symbol)
        if job.error is not None and job.failed_attempts:
            return self._fail(job, job.error, " (reintentos cancelados)")
        why = self._deferred_by(job) if halted is None else None
        if why is not None:
            return self._result(
                job, SymbolStatus.SKIPPED, error=f"diferido a la próxima pasada: {why}", skip_reason=SKIP_DEFERRED
            )
        result = self._result(job, SymbolStatus.SKIPPED, error=halted)
        # Why the pass stopped sending: interrupted, deadline (or budget), backend_lost, exchange_limited.
        reason = self._ctx.stop.reason
        result.skip_reason = reason.word if reason is not None else None
        return result

    def _deferred_by(self, job: Job) -> str | None:
        """Why a backfill still queued at the end waits for the next pass; None: it does not."""
        if job.lane is not Lane.BACKFILL:
            return None
        if self._gate.deferring:
            return self._gate.deferral_note()
        return DEFERRED_AT_BUDGET if job.deferred else None

    def _fail(self, job: Job, error: BackendError, note: str) -> SymbolResult:
        self._ctx.log.error("✗ %s falló tras %d intento(s)%s: %s", job.symbol, job.attempts, note, error)
        return self._result(job, SymbolStatus.FAILED, error=str(error) + note)

    def _result(
        self,
        job: Job,
        status: SymbolStatus,
        new_records: int = 0,
        error: str | None = None,
        *,
        rejected: bool = False,
        skip_reason: str | None = None,
    ) -> SymbolResult:
        took = 0.0 if job.began is None else self._ctx.clock.now() - job.began
        return SymbolResult(
            job.symbol,
            status,
            new_records,
            job.attempts,
            took,
            error,
            rejected=rejected,
            skip_reason=skip_reason,
            requeued=job.requeues,
            backfill=job.lane is Lane.BACKFILL,
        )

    def _check_backend_still_there(self) -> None:
        """A dead backend costs one symbol's attempt, not every symbol's retries."""
        with self._health_lock:
            if self._ctx.stop.is_set():
                return
            healthy, why = self._ctx.client.health()
            if not healthy:
                self._ctx.stop.request(EndReason.BACKEND_LOST)
                self._ctx.log.error("El backend dejó de responder (%s): se detiene la pasada", why)
