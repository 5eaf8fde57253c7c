"""The exchange budget as pure policy, on a virtual clock: the estimate of the last minute,
what a backfill may spend, the adaptation after a limit and its slow recovery, the probe
and the cool-down after a halt; and its memory through the state file, old format too."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from coin_sync.sync.exchange_budget import (
    COOL_DOWN,
    PROBE_QUIET,
    RECOVERY_HOLD,
    ExchangeBudget,
    ExchangeMemory,
    Spend,
    budget_at,
    cooling_down,
    probe_not_before,
)
from coin_sync.sync.state import AmbiguousSync, FileStateStore, Remembered, state_from_json, state_to_json
from virtual_clock import VirtualClock

LOG = logging.getLogger("coin_sync.tests.exchange_budget")
SECOND = timedelta(seconds=1)


# (seconds after the start, action, symbol, weight, expected): "admit" asks whether a
# backfill fits; "charge" dispatches one; "window" reads the estimate of the last minute.
STEPS = [
    (0, "window", "", 0, 100),  # 100 charged 30 s before the pass, remembered
    (0, "charge", "CATCHUP", 300, None),  # catch-ups go whatever the budget says
    (0, "admit", "", 100, True),  # 100 + 300 + 100 = 500: exactly the budget
    (0, "admit", "", 101, False),
    (0, "charge", "BACKFILL", 100, None),
    (1, "admit", "", 2, False),  # 500 in the window: nothing more
    (30, "window", "", 0, 400),  # the remembered 100 left the window at 30 s
    (30, "admit", "", 100, True),
    (60, "window", "", 0, 0),  # this pass's charges left it too
    (60, "admit", "", 500, True),
]


def test_backfills_are_admitted_while_the_last_minute_stays_within_the_budget() -> None:
    clock = VirtualClock()
    start = clock.wall()
    memory = ExchangeMemory(spent=(Spend(start - 30 * SECOND, 100),))
    budget = ExchangeBudget(500, memory, start)
    for seconds, action, symbol, weight, expected in STEPS:
        clock.advance(seconds - clock.now())
        now = clock.wall()
        if action == "charge":
            budget.charge(symbol, weight, now)
        elif action == "admit":
            assert budget.admits(weight, now) is expected, (seconds, weight)
        else:
            assert budget.window(now) == expected, seconds
    assert budget.charged == 400


def test_a_long_backfill_is_charged_in_slices_of_a_minute() -> None:
    clock = VirtualClock()
    start = clock.wall()
    budget = ExchangeBudget(4800, ExchangeMemory(), start)
    assert budget.admits(1600, start, reserved=4000)  # only its first minute counts now: 800
    assert not budget.admits(1600, start, reserved=4001)
    budget.charge("NEWUSDT", 1700, start)  # ~850 requests: 800 + 800 + 100
    assert budget.window(start) == 800 and budget.charged == 1700
    remembered = budget.memory(start + 30 * SECOND)
    for minutes, expected in [(1, 800), (2, 100), (3, 0)]:
        later = start + timedelta(minutes=minutes) + SECOND
        assert ExchangeBudget(4800, remembered, later).window(later) == expected, minutes


def test_a_limit_adapts_the_budget_to_what_was_spent_and_it_recovers_slowly() -> None:
    clock = VirtualClock()
    budget = ExchangeBudget(4800, ExchangeMemory(), clock.wall())
    for i in range(75):
        budget.charge(f"C{i}", 6, clock.wall())
        clock.advance(0.01)
    budget.charge("LIMITED", 6, clock.wall())
    budget.answered("LIMITED", limited=True, now=clock.wall())  # refused: its weight was not spent
    assert budget.limited and not budget.admits(2, clock.wall())
    memory = budget.memory(clock.wall())
    assert (memory.adapted, memory.adapted_at, memory.probe) == (450, clock.wall(), True)
    assert memory.halted_at == clock.wall()
    limited_at = clock.wall()
    # A table of the budget in force at times after the limit: held, then +1 % of the
    # setting (48) a minute, back to the setting.
    for after, expected in [
        (timedelta(0), 450),
        (timedelta(minutes=29), 450),
        (RECOVERY_HOLD + timedelta(minutes=1), 498),
        (RECOVERY_HOLD + timedelta(minutes=10), 930),
        (RECOVERY_HOLD + timedelta(hours=2), 4800),
    ]:
        assert budget_at(4800, memory, limited_at + after) == expected, after
    # A pass once it recovered forgets the adaptation.
    later = ExchangeBudget(4800, memory, limited_at + RECOVERY_HOLD + timedelta(hours=2))
    assert later.limit == 4800
    assert later.memory(limited_at + RECOVERY_HOLD + timedelta(hours=2)).adapted is None


def test_after_a_halt_the_probe_waits_a_minute_and_backfills_cool_down() -> None:
    clock = VirtualClock()
    halted = clock.wall()
    memory = ExchangeMemory(adapted=450, adapted_at=halted, halted_at=halted, probe=True)
    assert probe_not_before(memory) == halted + PROBE_QUIET
    assert cooling_down(memory, halted + COOL_DOWN - SECOND)
    assert not cooling_down(memory, halted + COOL_DOWN)
    budget = ExchangeBudget(4800, memory, halted + 50 * SECOND)
    assert not budget.admits(2, halted + 50 * SECOND)  # cooling down: no backfill at all
    # The probe was served: the next pass opens up; the halt is forgotten once cooled down.
    budget.charge("PROBE", 2, halted + 60 * SECOND)
    budget.answered("PROBE", limited=False, now=halted + 60 * SECOND)
    after = budget.memory(halted + 61 * SECOND)
    assert (after.probe, after.halted_at, after.adapted) == (False, halted, 450)
    assert probe_not_before(after) is None and cooling_down(after, halted + 61 * SECOND)
    later = ExchangeBudget(4800, after, halted + COOL_DOWN)
    assert later.admits(2, halted + COOL_DOWN) and later.memory(halted + COOL_DOWN).halted_at is None


def test_a_probe_the_exchange_still_limits_keeps_the_next_pass_probing() -> None:
    clock = VirtualClock()
    first = clock.wall()
    memory = ExchangeMemory(adapted=450, adapted_at=first, halted_at=first, probe=True)
    now = first + 60 * SECOND
    budget = ExchangeBudget(4800, memory, now)
    budget.charge("PROBE", 2, now)
    budget.answered("PROBE", limited=True, now=now)
    after = budget.memory(now)
    assert after.probe and after.halted_at == now and after.adapted == 0  # nothing served since
    assert probe_not_before(after) == now + PROBE_QUIET


def test_the_budget_memory_round_trips_and_the_version_1_state_is_still_read(tmp_path: Path) -> None:
    clock = VirtualClock()
    now = clock.wall()
    exchange = ExchangeMemory((Spend(now, 6), Spend(now + SECOND, 2)), 450, now, now, True)
    ambiguous = {"BTCUSDT": AmbiguousSync("BTCUSDT", now.replace(microsecond=0), None)}
    state = Remembered(ambiguous, exchange)
    written = state_to_json(state)
    assert written["version"] == 2
    assert state_from_json(json.loads(json.dumps(written))) == state
    old = {"version": 1, "ambiguous": {"BTCUSDT": {"sent_at": "2026-01-01T00:00:00+00:00", "last_record": None}}}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(old))
    assert FileStateStore(path, LOG).load() == Remembered(ambiguous, ExchangeMemory())


@pytest.mark.parametrize(
    "exchange",
    [{"spent": [["ayer", 2]]}, {"spent": [[None, 2, 3]]}, {"adapted": "450"}, {"halted_at": "2026-01-01T00:00:00"}],
)
def test_a_corrupt_budget_memory_is_one_warning_and_empty(tmp_path: Path, exchange: object, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 2, "ambiguous": {}, "exchange": exchange}))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert FileStateStore(path, LOG).load() == Remembered()
    (record,) = caplog.records
    assert "se trata como vacío" in record.getMessage()
