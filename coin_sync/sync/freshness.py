"""Pure freshness policy: how current a symbol's data is after a pass.

`last_record` is the open time of the newest stored 1-minute candle, so a fully current
symbol lags less than a minute: lag = max(0, now - last_record - 60 s). A symbol whose lag
exceeds STALE_AFTER_SECONDS is stale. A timestamp the backend got wrong (missing, not ISO
8601, in the future, absurdly old) makes the freshness unknown, with the reason, and never
raises.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from logging import Logger
from typing import Final

from coin_sync.backend.wire import MISSING
from coin_sync.outcome import SymbolResult

CANDLE_SECONDS: Final = 60.0
# Clocks of two machines disagree a little; more than this ahead is a wrong timestamp.
FUTURE_TOLERANCE_SECONDS: Final = 300.0
# Before the exchange existed: a zero date, an epoch 0, a parse of garbage.
OLDEST: Final = datetime(2017, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Freshness:
    last_record: datetime | None = None
    lag_seconds: float | None = None
    stale: bool = False
    problem: str | None = None  # why a timestamp was rejected; None when fine or not given

    @property
    def known(self) -> bool:
        return self.lag_seconds is not None

    @property
    def iso(self) -> str | None:
        return None if self.last_record is None else self.last_record.isoformat(timespec="seconds")


@dataclass(frozen=True)
class Stamp:
    """A last_record as one source (a row of /api/symbols, a sync answer) sent it, parsed
    once: its UTC time, or why it is unusable. A time ahead of our clock is kept (the
    holds compare the backend's times with each other); `judged` rejects it."""

    at: datetime | None
    problem: str | None = None
    missing: bool = False  # the source should have carried it and did not

    def judged(self, now: datetime) -> Stamp:
        """This stamp, unusable when it lies further in the future than clocks disagree."""
        if self.at is not None and (self.at - now).total_seconds() > FUTURE_TOLERANCE_SECONDS:
            return Stamp(None, f"last_record en el futuro: {self.at.isoformat()!r}")
        return self


def stamp(raw: object) -> Stamp | None:
    """`raw` parsed; None when the source does not carry the field at all (a bare name,
    an answer without statistics)."""
    if raw is None:
        return None
    if raw is MISSING:
        return Stamp(None, "sin last_record", missing=True)
    if not isinstance(raw, str):
        return Stamp(None, f"last_record no es texto: {str(raw)[:40]!r}")
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        return Stamp(None, f"last_record no es una fecha ISO 8601: {raw[:40]!r}")
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        return Stamp(None, f"last_record fuera de rango: {raw[:40]!r}")
    if value < OLDEST:
        return Stamp(None, f"last_record anterior a {OLDEST.date().isoformat()}: {raw[:40]!r}")
    return Stamp(value)


def lag_seconds(last_record: datetime, now: datetime) -> float:
    return max(0.0, (now - last_record).total_seconds() - CANDLE_SECONDS)


def assess(synced: Stamp | None, listed: Stamp | None, now: datetime, stale_after: float) -> Freshness:
    """The sync answer's value when it gave one, else the listing's, else unknown.

    None means the source does not carry the field at all (no problem to report); a
    missing stamp means it should have.
    """
    chosen = synced if synced is not None and not synced.missing else listed or synced
    if chosen is None:
        return Freshness()
    chosen = chosen.judged(now)
    if chosen.at is None:
        return Freshness(problem=chosen.problem)
    lag = lag_seconds(chosen.at, now)
    return Freshness(chosen.at, round(lag, 1), lag > stale_after)


def judged(
    result: SymbolResult, synced: Stamp | None, listed: Stamp | None, *, now: datetime, stale_after: float, log: Logger
) -> SymbolResult:
    """`result` with its freshness as of `now`; one WARNING when it is stale or a
    timestamp the backend sent is wrong."""
    fresh = assess(synced, listed, now, stale_after)
    if fresh.problem is not None:
        log.warning("⚠ %s: frescura desconocida (%s)", result.symbol, fresh.problem)
    elif fresh.stale and fresh.lag_seconds is not None:
        log.warning(
            "⚠ %s desactualizado: último registro %s, %.1f min de retraso (STALE_AFTER_SECONDS=%g)",
            result.symbol,
            fresh.iso,
            fresh.lag_seconds / 60,
            stale_after,
        )
    return replace(result, last_record=fresh.iso, lag_seconds=fresh.lag_seconds, stale=fresh.stale)
