"""What a pass remembers and checks around the pool: the ambiguous syncs of earlier passes
(held back, coin_sync/sync/holds.py), the ones of this pass (remembered in the StateStore),
and the declared symbols still missing from /api/symbols (pending_backfill).

At most two extra GET /api/symbols, each a single attempt and only when needed: at the
start with SYMBOLS_TO_SYNC when a remembered sync must be checked, and at the end when a
declared symbol was missing from the list (or, with SYMBOLS_TO_SYNC, to note the
last_record of a new ambiguous sync).
"""

from __future__ import annotations

import threading
from datetime import datetime

from coin_sync.backend.errors import BackendError
from coin_sync.outcome import SKIP_AMBIGUOUS_HOLD, SymbolResult, SymbolStatus
from coin_sync.sync.context import PassContext
from coin_sync.sync.exchange_budget import ExchangeMemory
from coin_sync.sync.holds import decide
from coin_sync.sync.listing import Listing
from coin_sync.sync.plan import SymbolPlan
from coin_sync.sync.state import AmbiguousSync, Remembered


def baseline(listing: Listing | None, symbol: str) -> tuple[str | None, bool]:
    """(last_record, known) of `symbol` in `listing`: what "advanced" is measured from.
    Listed without a usable last_record (a bare name, a wrong timestamp): not known."""
    if listing is None:
        return None, False
    if symbol not in listing:
        return None, True
    last = listing.last_record(symbol)
    return (None, False) if last is None else (last.isoformat(timespec="seconds"), True)


class Memory:
    def __init__(self, ctx: PassContext, plan: SymbolPlan) -> None:
        self._ctx = ctx
        self._plan = plan
        self._lock = threading.Lock()
        self._sent_at: dict[str, datetime] = {}
        self._ambiguous: set[str] = set()
        self._remembered = ctx.state.load()
        self._state = self._remembered.ambiguous
        self.exchange: ExchangeMemory = self._remembered.exchange  # what the pass ends with replaces it
        listing = plan.listing
        if listing is None and any(symbol in self._state for symbol in plan.symbols):
            listing = self._listing_once()
        hold = ctx.settings.sync.ambiguous_hold_seconds
        self._decision = decide(self._state, plan.symbols, listing, ctx.clock.wall(), hold)
        for held in self._decision.held:
            ctx.log.warning(
                "⏸ %s no se envía: su sincronización anterior (enviada hace %.0f s, sin respuesta clara) puede "
                "seguir en curso en el backend; se reenvía cuando avance su last_record o dentro de %.0f s",
                held.entry.symbol,
                held.age,
                held.remaining,
            )

    @property
    def send(self) -> list[str]:
        return self._decision.send

    def held_results(self) -> list[SymbolResult]:
        return [
            SymbolResult(
                h.entry.symbol,
                SymbolStatus.SKIPPED,
                error=f"sincronización anterior quizá en curso en el backend (enviada hace {h.age:.0f} s)",
                skip_reason=SKIP_AMBIGUOUS_HOLD,
            )
            for h in self._decision.held
        ]

    # Called by the workers.
    def sending(self, symbol: str) -> None:
        with self._lock:
            self._sent_at[symbol] = self._ctx.clock.wall()

    def ambiguous(self, symbol: str) -> None:
        with self._lock:
            self._ambiguous.add(symbol)

    def finish(self, results: list[SymbolResult]) -> frozenset[str]:
        """Remember this pass's ambiguous syncs and `self.exchange` (save if changed); the
        declared symbols still pending their first backfill."""
        ctx, plan = self._ctx, self._plan
        with self._lock:
            # Abandoned in flight when the shutdown grace ran out: just as ambiguous.
            cut = {r.symbol for r in results if r.status is SymbolStatus.INTERRUPTED and r.symbol in self._sent_at}
            unclear = sorted(self._ambiguous | cut)
            sent_at = dict(self._sent_at)
        declared = [r for r in results if r.symbol in plan.unlisted_includes]
        after: Listing | None = None
        # Not after a signal, a deadline or a lost backend: the pass must end now.
        if (declared or (unclear and plan.listing is None)) and not ctx.stop.is_set():
            after = self._listing_once()
        pending = frozenset(
            r.symbol for r in declared if (r.status is not SymbolStatus.OK if after is None else r.symbol not in after)
        )
        for result in declared:
            if result.symbol in pending:
                ctx.log.warning(
                    "… %s (SYMBOLS_INCLUDE) aún no está en /api/symbols: su primer backfill no ha terminado "
                    "(pending_backfill); se vuelve a intentar en la próxima pasada",
                    result.symbol,
                )
        keep = dict(self._decision.keep)
        for symbol in unclear:
            last_record, known = baseline(plan.listing or after, symbol)
            keep[symbol] = AmbiguousSync(symbol, sent_at[symbol], last_record, known)
        remembered = Remembered(keep, self.exchange)
        if remembered != self._remembered:
            ctx.state.save(remembered)
        return pending

    def _listing_once(self) -> Listing | None:
        try:
            return Listing.from_rows(self._ctx.client.list_symbols())
        except BackendError as exc:
            self._ctx.log.warning("No se pudo leer /api/symbols para las comprobaciones de la pasada: %s", exc)
            return None
