"""Which symbols a pass syncs: SYMBOLS_TO_SYNC as given; else the backend's list plus
SYMBOLS_INCLUDE minus SYMBOLS_EXCLUDE; normalised, this shard's part. With what the
backend's list said of each symbol, for the holds, the freshness and the order."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from coin_sync.backend.health import wait_until_healthy
from coin_sync.backend.retry import RetriesExhausted, call_with_retries
from coin_sync.backend.wire import ListedSymbol
from coin_sync.sync.context import PassContext
from coin_sync.sync.holds import Listing
from coin_sync.sync.symbols import compose, listed_last_records, listed_rows, normalise_symbols, select_shard


@dataclass
class SymbolPlan:
    symbols: list[str]  # this shard's, in order
    listing: Listing | None  # the backend's list; None with SYMBOLS_TO_SYNC (not read)
    unlisted_includes: set[str] = field(default_factory=set)  # declared, absent from the listing
    # What /api/symbols said of each symbol's last_record (raw, for coin_sync.sync.freshness).
    listed_last_records: dict[str, object] = field(default_factory=dict)
    # Each listed row by normalised name (first_record, total_records: coin_sync.sync.completeness).
    listed: dict[str, ListedSymbol] = field(default_factory=dict)


def resolve_symbols(ctx: PassContext) -> list[str] | None:
    """This shard's symbols, normalised, as a pass would resolve them (`coin-sync
    symbols`); None when the backend's list is unusable. A list that must come from the
    backend is asked for only once /health answers within BACKEND_WAIT_SECONDS, as in a
    pass: a dead backend costs that wait, not every retry of /api/symbols."""
    if not ctx.settings.sync.symbols:
        wait = ctx.settings.backend.wait_seconds
        healthy, why = wait_until_healthy(ctx.client, wait, ctx.clock, ctx.stop, ctx.log)
        if not healthy:
            ctx.log.error("El backend no está disponible tras %.0f s: %s", wait, why)
            return None
    plan = resolve_plan(ctx)
    return None if plan is None else plan.symbols


def resolve_plan(ctx: PassContext) -> SymbolPlan | None:
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
        except RetriesExhausted as exc:
            log.error("No se pudo obtener la lista de símbolos tras %d intentos: %s", exc.attempts, exc.error)
            return None
        listing = Listing.from_rows(rows)
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
    return SymbolPlan(mine, listing, unlisted & set(mine), listed_last_records(rows), listed_rows(rows))


def _normalised(log: logging.Logger, raw: Iterable[str]) -> list[str]:
    symbols, rejected = normalise_symbols(raw)
    for bad in rejected:
        log.warning("Símbolo inválido ignorado: %s (%s)", bad.shown, bad.reason)
    return symbols
