"""Which symbols a pass syncs: SYMBOLS_TO_SYNC as given; else the backend's list plus
SYMBOLS_INCLUDE minus SYMBOLS_EXCLUDE; normalised, this shard's part. With what the
backend's list said of each symbol, for the holds, the freshness and the order."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from coin_sync.backend.retry import RetriesExhausted, call_with_retries
from coin_sync.sync.context import PassContext
from coin_sync.sync.listing import Listing
from coin_sync.sync.symbols import Rejected, compose, normalise_symbols, select_shard


@dataclass(frozen=True)
class SymbolPlan:
    symbols: list[str]  # this shard's, in order
    listing: Listing | None  # the backend's list; None with SYMBOLS_TO_SYNC (not read)
    unlisted_includes: frozenset[str] = field(default_factory=frozenset)  # declared, absent from the listing


def resolve_symbols(ctx: PassContext) -> list[str] | None:
    """This shard's symbols, normalised, as a pass would resolve them (`coin-sync
    symbols`); None when the backend's list is unusable. A list that must come from the
    backend is asked for only once /health answers within BACKEND_WAIT_SECONDS, as in a
    pass: a dead backend costs that wait, not every retry of /api/symbols."""
    if not ctx.settings.sync.symbols and not ctx.backend_ready():
        return None
    plan = resolve_plan(ctx)
    return None if plan is None else plan.symbols


def resolve_plan(ctx: PassContext) -> SymbolPlan | None:
    s, log = ctx.settings.sync, ctx.log
    listing: Listing | None = None
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
        except RetriesExhausted as exc:
            log.error("No se pudo obtener la lista de símbolos tras %d intentos: %s", exc.attempts, exc.error)
            return None
        listing = Listing.from_rows(rows)
        log.info("Símbolos en el backend: %d", len(rows))
        _warn_rejected(log, listing.rejected)
        listed = listing.names
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
    return SymbolPlan(mine, listing, frozenset(unlisted & set(mine)))


def _normalised(log: logging.Logger, raw: Iterable[str]) -> list[str]:
    symbols, rejected = normalise_symbols(raw)
    _warn_rejected(log, rejected)
    return symbols


def _warn_rejected(log: logging.Logger, rejected: Iterable[Rejected]) -> None:
    for bad in rejected:
        log.warning("Símbolo inválido ignorado: %s (%s)", bad.shown, bad.reason)
