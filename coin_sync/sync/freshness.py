"""Pure freshness policy: how current a symbol's data is after a pass.

`last_record` is the open time of the newest stored 1-minute candle, so a fully current
symbol lags less than a minute: lag = max(0, now - last_record - 60 s). A symbol whose lag
exceeds STALE_AFTER_SECONDS is stale. A timestamp the backend got wrong (missing, not ISO
8601, in the future, absurdly old) makes the freshness unknown, with the reason, and never
raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from coin_sync.backend.wire import MISSING

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


def parse_timestamp(raw: object, now: datetime) -> tuple[datetime | None, str | None]:
    """(UTC time, None) for a usable `last_record`, else (None, why). An ISO 8601 text
    without an offset is read as UTC, the backend's time zone."""
    if raw is MISSING or raw is None:
        return None, "sin last_record"
    if not isinstance(raw, str):
        return None, f"last_record no es texto: {str(raw)[:40]!r}"
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None, f"last_record no es una fecha ISO 8601: {raw[:40]!r}"
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        return None, f"last_record fuera de rango: {raw[:40]!r}"
    if (value - now).total_seconds() > FUTURE_TOLERANCE_SECONDS:
        return None, f"last_record en el futuro: {raw[:40]!r}"
    if value < OLDEST:
        return None, f"last_record anterior a {OLDEST.date().isoformat()}: {raw[:40]!r}"
    return value, None


def lag_seconds(last_record: datetime, now: datetime) -> float:
    return max(0.0, (now - last_record).total_seconds() - CANDLE_SECONDS)


def assess(synced: object, listed: object, now: datetime, stale_after: float) -> Freshness:
    """The sync answer's value when it gave one, else the listing's, else unknown.

    None means the source does not carry the field at all (no problem to report);
    MISSING means it should have.
    """
    raw = synced if synced is not None and synced is not MISSING else listed
    if raw is None:
        if synced is MISSING:
            raw = MISSING
        else:
            return Freshness()
    last, problem = parse_timestamp(raw, now)
    if last is None:
        return Freshness(problem=problem)
    lag = lag_seconds(last, now)
    return Freshness(last, round(lag, 1), lag > stale_after)
