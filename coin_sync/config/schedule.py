"""How long a pass may take: the interval between passes and the share of it a pass gets.

The CronJob's `schedule` (SYNC_SCHEDULE, from the chart) or `loop`'s
SYNC_INTERVAL_SECONDS says how often a pass starts; a pass with no PASS_BUDGET_SECONDS
gets 5/6 of that interval (50 s of a minute), the rest a margin for start-up and the
summary, so it ends before the next one is due.
"""

from __future__ import annotations

import re
from typing import Final

BUDGET_SHARE: Final = 5 / 6

_MACROS: Final = {"@hourly": 3600, "@daily": 86400, "@midnight": 86400, "@weekly": 604800}
_NUMBER = re.compile(r"[0-9]+")
_STEP = re.compile(r"\*/([0-9]+)")


def interval_seconds(schedule: str) -> int | None:
    """Seconds between two runs of a cron schedule whose interval is constant (every
    minute, every N minutes dividing the hour, hourly, every N hours dividing the day,
    daily, the @ macros); None for any other form (`0 9 * * 1-5`, `*/7 * * * *`)."""
    text = schedule.strip()
    if text in _MACROS:
        return _MACROS[text]
    fields = text.split()
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"]:
        return None
    minute, hour = fields[0], fields[1]
    every_minutes, every_hours = _STEP.fullmatch(minute), _STEP.fullmatch(hour)
    if hour == "*":
        if minute == "*":
            return 60
        if every_minutes and _divides(every_minutes[1], 60):
            return 60 * int(every_minutes[1])
        return 3600 if _NUMBER.fullmatch(minute) else None
    if not _NUMBER.fullmatch(minute):
        return None
    if every_hours and _divides(every_hours[1], 24):
        return 3600 * int(every_hours[1])
    return 86400 if _NUMBER.fullmatch(hour) else None


def _divides(step: str, whole: int) -> bool:
    return int(step) > 0 and whole % int(step) == 0


def pass_budget(interval: float) -> float:
    """A pass's budget when PASS_BUDGET_SECONDS is not set: its share of the interval."""
    return round(interval * BUDGET_SHARE, 3)
