"""Pure completeness policy: how many 1-minute candles a symbol is missing.

The backend never refills a missing minute (a failed upsert is skipped and every sync
resumes after the newest stored candle), so a hole stays for good. GET /api/symbols shows
it: `first_record` and `last_record` are candle open times, and a complete symbol holds
one candle per minute between them, both included. So

    missing minutes = minutes from first_record to last_record + 1 - total_records.

Unknown, with the reason, when a field is missing or unparseable; more records than
minutes is impossible (the unique index on open_time forbids duplicates), so it is a
backend problem to report, never a crash and never a negative hole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from coin_sync.backend.wire import MISSING
from coin_sync.sync.freshness import FUTURE_TOLERANCE_SECONDS, OLDEST


@dataclass(frozen=True)
class Completeness:
    missing_minutes: int | None = None  # None: unknown
    first_record: str | None = None  # ISO 8601 UTC, for the span a WARNING names
    last_record: str | None = None
    problem: str | None = None  # why it is unknown; None when fine or not given
    culprit: str | None = None  # the field the problem is about

    @property
    def holed(self) -> bool:
        return bool(self.missing_minutes)


def _moment(name: str, raw: object, now: datetime) -> datetime | str:
    """The UTC time, or why not. Naive text is UTC, the backend's time zone. A date before
    the exchange existed or in the future would count a hole of years: rejected."""
    if not isinstance(raw, str):
        return f"{name} no es texto: {str(raw)[:40]!r}"
    try:
        value = datetime.fromisoformat(raw.strip())
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        return f"{name} no es una fecha ISO 8601 válida: {raw[:40]!r}"
    if value < OLDEST or (value - now).total_seconds() > FUTURE_TOLERANCE_SECONDS:
        return f"{name} fuera de rango: {raw[:40]!r}"
    return value


def _count(raw: object) -> int | str:
    # bool is an int to Python, never a count to the backend; 7.0 from a JSON encoder is
    # fine, NaN and Infinity (which Python's JSON reads) are not.
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    return f"total_records no es un entero ≥ 0: {str(raw)[:40]!r}"


def assess_completeness(
    first_record: object, last_record: object, total_records: object, now: datetime
) -> Completeness:
    """The raw listing values (None: the source does not carry them, as the bare list of
    names; MISSING: an object row that should have) -> the symbol's missing minutes."""
    raw = {"first_record": first_record, "last_record": last_record, "total_records": total_records}
    if all(value is None for value in raw.values()):
        return Completeness()
    for name, value in raw.items():
        if value is None or value is MISSING:
            return Completeness(problem=f"sin {name}", culprit=name)
    first, last = _moment("first_record", first_record, now), _moment("last_record", last_record, now)
    total = _count(total_records)
    for name, value in (("first_record", first), ("last_record", last), ("total_records", total)):
        if isinstance(value, str):
            return Completeness(problem=value, culprit=name)
    assert isinstance(first, datetime) and isinstance(last, datetime) and isinstance(total, int)
    shown = first.isoformat(timespec="seconds"), last.isoformat(timespec="seconds")
    seconds = (last - first).total_seconds()
    if seconds < 0 or seconds % 60:
        why = "anterior a" if seconds < 0 else "no está a un número entero de minutos de"
        return Completeness(
            None, *shown, problem=f"last_record {shown[1]} {why} first_record {shown[0]}", culprit="span"
        )
    minutes = int(seconds // 60) + 1
    if total > minutes:
        problem = f"total_records ({total}) supera los {minutes} minutos entre {shown[0]} y {shown[1]}"
        return Completeness(None, *shown, problem=problem, culprit="total_records")
    return Completeness(minutes - total, *shown)
