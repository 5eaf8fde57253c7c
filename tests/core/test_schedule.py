"""The pass budget's rule, owned by the program: 5/6 of the interval between passes,
read from the CronJob's schedule (SYNC_SCHEDULE, passed by the chart)."""

from __future__ import annotations

import pytest

from coin_sync.config.load import load_settings
from coin_sync.config.schedule import interval_seconds, pass_budget
from coin_sync.config.sources import ConfigError

# (schedule, interval in seconds): the forms whose interval is constant.
SCHEDULES = [
    ("* * * * *", 60),
    ("*/5 * * * *", 300),
    ("*/15 * * * *", 900),
    ("*/10 * * * *", 600),
    ("7 * * * *", 3600),
    ("0 */6 * * *", 21600),
    ("30 2 * * *", 86400),
    ("@hourly", 3600),
    ("@daily", 86400),
    ("@midnight", 86400),
    ("@weekly", 604800),
    ("  */5   * * * *  ", 300),
]


@pytest.mark.parametrize(("schedule", "interval"), SCHEDULES)
def test_interval_of_a_regular_schedule(schedule: str, interval: int) -> None:
    assert interval_seconds(schedule) == interval


@pytest.mark.parametrize(
    "schedule",
    ["*/7 * * * *", "0 9 * * 1-5", "0 0 1 * *", "*/0 * * * *", "0 */5 * * *", "every minute", "", "* * * *", "@yearly"],
)
def test_no_interval_when_it_varies(schedule: str) -> None:
    assert interval_seconds(schedule) is None


def test_the_budget_is_five_sixths_of_the_interval() -> None:
    assert (pass_budget(60), pass_budget(300), pass_budget(3600), pass_budget(0.5)) == (50, 250, 3000, 0.417)


@pytest.mark.parametrize(
    ("environ", "budget"),
    [
        ({}, None),  # no schedule, no budget (a one-off `docker run`)
        ({"SYNC_SCHEDULE": "* * * * *"}, 50),  # the pass fits its minute
        ({"SYNC_SCHEDULE": "*/10 * * * *"}, 500),
        ({"SYNC_SCHEDULE": "@hourly"}, 3000),
        ({"SYNC_SCHEDULE": "0 3 * * 1"}, None),  # no interval to derive: no budget
        ({"SYNC_SCHEDULE": "0 3 * * 1", "PASS_BUDGET_SECONDS": "120"}, 120),
        ({"SYNC_SCHEDULE": "* * * * *", "PASS_BUDGET_SECONDS": "0"}, 0),  # 0 = no budget, kept
    ],
)
def test_the_budget_follows_the_schedule(environ: dict[str, str], budget: float | None) -> None:
    assert load_settings({}, environ).sync.budget_seconds == budget


def test_stale_after_seconds_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="STALE_AFTER_SECONDS: valor inválido '0': debe ser mayor que 0"):
        load_settings({}, {"STALE_AFTER_SECONDS": "0"})
