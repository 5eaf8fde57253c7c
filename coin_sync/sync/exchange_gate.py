"""The exchange budget at the pool's door: which job may leave now. The policy is
coin_sync/sync/exchange_budget.py; this keeps one pass's view of it on the pass's clock.

- Every job that leaves is charged its estimated weight (once, when first admitted).
- Catch-ups always leave; a backfill leaves only while the budget admits it on top of
  the catch-ups still to leave (they go first even when the backfill lane is quicker to
  have a slot), and the first one refused stays first in its lane: the budget may make room later in the pass
  (the last minute's charges age out), and a smaller one must not overtake it forever.
- After a quota halt, the first job to leave is the probe, alone and not before its time;
  nothing else leaves until the exchange answered it.

The pool calls admit() and wake_at() from its coordinator; the workers report each answer
with answered(). Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from coin_sync.clock import Clock
from coin_sync.sync.attempt import Job
from coin_sync.sync.exchange_budget import COOL_DOWN, ExchangeBudget, ExchangeMemory, cooling_down, probe_not_before
from coin_sync.sync.lanes import Lane

# With nothing in flight, how long a pass waits for the budget to make room for the next
# backfill (the previous pass's charges age out a minute after they were made, at about
# the pace this pass started): past that, the backfills left are deferred.
PATIENCE_SECONDS = 5.0
# How long the probe alone holds the others back: the exchange refuses within a fraction
# of a second, so a probe still unanswered then met no limit (a slow backend, a long sync).
PROBE_ANSWER_SECONDS = 5.0


class ExchangeGate:
    def __init__(
        self, budget: ExchangeBudget, memory: ExchangeMemory, jobs: list[Job], clock: Clock, log: logging.Logger
    ) -> None:
        self.budget = budget
        self._memory = memory
        self._catch_ups = sum(j.weight for j in jobs if j.lane is Lane.CATCH_UP)  # still to leave
        self._clock = clock
        self._log = log
        self._lock = threading.Lock()
        probe_from = probe_not_before(memory)
        self._probe_at = None if probe_from is None else self._monotonic(probe_from)
        if probe_from is not None and probe_from > clock.wall():
            log.info(
                "La pasada anterior se detuvo por la cuota del exchange: la sonda espera hasta las %s UTC (un minuto "
                "después), y nada sale antes",
                probe_from.astimezone(UTC).strftime("%H:%M:%S"),
            )
        self._probe: str | None = None  # the probe's symbol once it left
        self._probe_until = 0.0  # the others wait for its answer until then
        self._admitted: set[str] = set()
        self._refused: int | None = None  # the weight of the backfill last refused (None: none waits)

    def admit(self, job: Job) -> bool:
        """May `job` leave now? Charges it the first time the answer is yes."""
        with self._lock:
            if job.symbol in self._admitted:
                return True
            now = self._clock.wall()
            if self._probe_at is not None and self._probe is not None and self._clock.now() >= self._probe_until:
                self._probe_at, self._probe = None, None
                self._log.info(
                    "La sonda sigue en curso tras %.0f s sin límite del exchange: se abre la pasada",
                    PROBE_ANSWER_SECONDS,
                )
            if self._probe_at is not None and (self._probe is not None or self._clock.now() < self._probe_at):
                return False
            if job.lane is Lane.BACKFILL and not self.budget.admits(job.weight, now, self._catch_ups):
                self._refused = job.weight
                return False
            if job.lane is Lane.BACKFILL:
                self._refused = None
            else:
                self._catch_ups -= job.weight
            if self._probe_at is not None:
                self._probe = job.symbol
                self._probe_until = self._clock.now() + PROBE_ANSWER_SECONDS
                self._log.warning(
                    "Sonda tras la parada por cuota del exchange: una sola sincronización (%s) y nada más hasta su "
                    "respuesta",
                    job.symbol,
                )
            self.budget.charge(job.symbol, job.weight, now)
            self._admitted.add(job.symbol)
            return True

    def answered(self, symbol: str, limited: bool) -> None:
        """The backend answered `symbol`'s sync: the exchange served it, or (limited)
        refused it with its quota."""
        with self._lock:
            self.budget.answered(symbol, limited, self._clock.wall())
            if symbol == self._probe and not limited:
                self._probe_at, self._probe = None, None
                self._log.info("La sonda pasó: el exchange vuelve a servir; se abre la pasada")

    def unsent(self, symbol: str) -> None:
        """`symbol` was admitted (its lane had no slot yet) but the pass ended before it left."""
        with self._lock:
            self._admitted.discard(symbol)
        self.budget.refund(symbol)

    def wake_at(self) -> float | None:
        """When (monotonic) a job the gate holds back may leave; None when none may in
        this pass (or not within PATIENCE_SECONDS: the rest are deferred)."""
        with self._lock:
            if self._probe_at is not None:
                return self._probe_at if self._probe is None else self._probe_until
            if self._refused is None:
                return None
            frees = self.budget.room_at(self._refused, self._clock.wall(), self._catch_ups)
            when = None if frees is None else self._monotonic(frees)
            return when if when is not None and when - self._clock.now() <= PATIENCE_SECONDS else None

    def deferral_note(self) -> str:
        """Why backfills are deferred, in the words of the log."""
        now = self._clock.wall()
        if cooling_down(self._memory, now) and self._memory.halted_at is not None:
            until = (self._memory.halted_at + COOL_DOWN).astimezone(UTC).strftime("%H:%M:%S")
            return f"enfriamiento tras la parada por cuota del exchange (hasta las {until} UTC)"
        return (
            f"presupuesto del exchange de {self.budget.limit} de peso por minuto, {self.budget.window(now)} ya "
            f"estimados en el último minuto"
        )

    @property
    def deferring(self) -> bool:
        """Are backfills waiting for the budget (the ones still queued at the end are deferred)?"""
        with self._lock:
            return self._refused is not None

    def _monotonic(self, moment: datetime) -> float:
        return self._clock.now() + max(0.0, (moment - self._clock.wall()).total_seconds())
