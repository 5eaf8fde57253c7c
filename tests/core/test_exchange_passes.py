"""The exchange budget in real passes, in-process on the virtual clock against the fake
backend and its exchange (weight per request, 429 past its limit, 418 for calls that keep
coming): backfills deferred past the budget (exit 0), the budget adapted after a limit
and remembered across passes (STATE_FILE), the probe after a halt, the cool-down."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

from coin_sync.sync.exchange_budget import COOL_DOWN, PROBE_QUIET, ExchangeMemory
from coin_sync.sync.exchange_gate import PROBE_ANSWER_SECONDS
from coin_sync.sync.state import FileStateStore, MemoryStateStore, Remembered
from fake_backend import FIRST_RECORD, FakeBackend, exchange_error, hang_until
from fake_exchange import ExchangeLimit
from virtual_clock import VirtualClock

LOG = logging.getLogger("coin_sync.tests.exchange_passes")
# Two days of history: a first backfill is 3 exchange requests, weight 6.
START = FIRST_RECORD + timedelta(days=2)
CURRENT = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
NEW = [f"NEW{i}USDT" for i in range(5)]


def _backend(clock: VirtualClock, limit: int = 6000) -> FakeBackend:
    backend = FakeBackend(CURRENT, clock=clock.wall, exchange=ExchangeLimit(limit))
    for symbol in NEW:
        backend.add_new_symbol(symbol)
    return backend


def _next_minute(clock: VirtualClock) -> None:
    clock.advance(60 - clock.now() % 60)


def _deferred(summary: dict[str, object]) -> list[str]:
    rows = summary["symbols"]
    assert isinstance(rows, list)
    return sorted(r["symbol"] for r in rows if r["skip_reason"] == "deferred")


def test_backfills_past_the_budget_are_deferred_and_the_pass_exits_0(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock, state = VirtualClock(wall_start=START), MemoryStateStore()
    env = {"SYMBOLS_INCLUDE": ",".join(NEW), "EXCHANGE_WEIGHT_PER_MINUTE": "20"}
    with _backend(clock) as backend:
        first = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        # Catch-ups 3 x 2 = 6 always go; then backfills of 6 while the minute stays within
        # 20: two (18), the other three are deferred.
        assert first.code == 0, first.log_lines
        assert len(_deferred(first.summary)) == 3 and first.summary["totals"]["deferred"] == 3
        assert first.summary["exchange"] == {"budget": 20, "weight": 18}
        assert sum(len(backend.sync_calls(s)) for s in NEW) == 2
        assert all(len(backend.sync_calls(s)) == 1 for s in CURRENT)
        (note,) = first.lines("⏭ 3 backfills diferidos a la próxima pasada")
        assert "presupuesto del exchange de 20 de peso por minuto, 18 ya estimados" in note
        fin = first.lines("FIN DE SINCRONIZACIÓN")[0]
        assert fin.endswith("diferidos: 3, con huecos: 0 símbolos (0 minutos)") and "código de salida: 0 (ok)" in fin

        # The next minute: 5 catch-ups (10) and one backfill (16); 22 would not fit.
        _next_minute(clock)
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert second.code == 0 and len(_deferred(second.summary)) == 2
        assert second.summary["exchange"]["weight"] == 16
        # Within its minute the next pass sees the spend of this one (kept in the state).
        clock.advance(30)
        third = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        # 6 catch-ups (12) on top of its 16: no room for a backfill.
        assert len(_deferred(third.summary)) == 2 and third.summary["exchange"]["weight"] == 12
        assert backend.exchange is not None and backend.exchange.limited == 0


def test_each_shard_spends_its_share_of_the_budget(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=START)
    env = {"SYMBOLS_INCLUDE": ",".join(NEW), "EXCHANGE_WEIGHT_PER_MINUTE": "40", "SHARD_COUNT": "2"}
    with _backend(clock) as backend:
        run = run_pass(clock=clock, BACKEND_URL=backend.url, SHARD_INDEX="0", **env)
    assert run.summary["exchange"]["budget"] == 20


def test_a_limit_adapts_the_budget_which_the_next_passes_remember(run_pass, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=START)
    state = FileStateStore(tmp_path / "state.json", LOG)  # what a new pod reads back
    coins = [f"NEW{i}USDT" for i in range(6)]
    env = {"SYMBOLS_INCLUDE": ",".join(coins), "BACKFILL_CONCURRENCY": "1"}
    # The exchange really allows 18 a minute; the budget thinks 4,800.
    with FakeBackend([], clock=clock.wall, exchange=ExchangeLimit(18)) as backend:
        for symbol in coins:
            backend.add_new_symbol(symbol)
        first = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        # Three backfills of 6 are served; the fourth meets the limit: the pass stops.
        assert first.code == 4 and first.summary["reason"] == "exchange_limited"
        assert len(backend.symbols) == 3 and first.summary["exchange"] == {"budget": 4800, "weight": 18}
        remembered = state.load().exchange
        assert (remembered.adapted, remembered.probe) == (18, True)  # what was served in that minute

        clock.advance(COOL_DOWN.total_seconds())  # past the probe's wait and the cool-down
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        # The probe, 3 catch-ups (6) and two backfills (18) within the adapted 18: one deferred.
        assert second.code == 0, second.log_lines
        assert second.lines("Sonda tras la parada") and second.lines("La sonda pasó")
        assert second.summary["exchange"] == {"budget": 18, "weight": 18}
        assert len(_deferred(second.summary)) == 1 and len(backend.symbols) == 5
        assert state.load().exchange.adapted == 18  # held for RECOVERY_HOLD, still remembered
    assert backend.exchange is not None
    assert (backend.exchange.episodes, backend.exchange.bans) == (1, 0)


def test_after_a_halt_the_probe_is_one_call_and_the_pass_stops_if_still_limited(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock, state = VirtualClock(wall_start=START), MemoryStateStore()
    with FakeBackend([*CURRENT, "SOLUSDT", "XRPUSDT"], clock=clock.wall) as backend:
        for symbol in backend.symbols:
            backend.script(symbol, exchange_error("rate_limited", symbol))
        first = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, SYNC_CONCURRENCY="1")
        assert first.code == 4
        halted = clock.wall()
        backend.reset_records()

        clock.advance(20)  # the next pass starts 20 s after the halt
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url)
        assert second.code == 4 and len(backend.sync_calls()) == 1  # the probe, then nothing
        assert second.lines("la sonda espera hasta las 00:01:00 UTC (un minuto después)")
        (probe,) = second.lines("Sonda tras la parada")
        assert "una sola sincronización" in probe
        assert state.state.exchange.probe and state.state.exchange.halted_at is not None
        # It waited until a minute after the halt, on the virtual clock.
        assert state.state.exchange.halted_at >= halted + PROBE_QUIET

        for symbol in backend.symbols:
            backend.script(symbol)  # the exchange serves again
        backend.reset_records()
        _next_minute(clock)
        third = run_pass(clock=clock, state=state, BACKEND_URL=backend.url)
        assert third.code == 0 and len(backend.sync_calls()) == 5
        assert not state.state.exchange.probe


def test_backfills_stay_paused_during_the_cool_down_while_catch_ups_go(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=START)
    # A halt 65 s ago whose probe already passed: the cool-down has 25 s left.
    halted = clock.wall() - timedelta(seconds=65)
    state = MemoryStateStore(Remembered(exchange=ExchangeMemory(halted_at=halted)))
    env = {"SYMBOLS_INCLUDE": ",".join(NEW)}
    with _backend(clock) as backend:
        first = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert first.code == 0
        assert [len(backend.sync_calls(s)) for s in CURRENT] == [1, 1, 1]  # catch-ups go
        assert not any(backend.sync_calls(s) for s in NEW)  # backfills wait: deferred
        assert _deferred(first.summary) == sorted(NEW)
        assert "enfriamiento tras la parada por cuota" in first.lines("⏭ 5 backfills diferidos")[0]

        clock.advance((halted + COOL_DOWN - clock.wall()).total_seconds())
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert second.code == 0 and all(backend.sync_calls(s) for s in NEW)
        assert not _deferred(second.summary) and state.state.exchange.halted_at is None


def test_a_probe_that_takes_long_holds_the_others_back_only_a_few_seconds(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(wall_start=START)
    halted = clock.wall() - PROBE_QUIET - timedelta(seconds=1)
    state = MemoryStateStore(Remembered(exchange=ExchangeMemory(halted_at=halted, probe=True)))
    release = threading.Event()
    with FakeBackend(CURRENT, clock=clock.wall) as backend:
        backend.script("BTCUSDT", hang_until(release))  # the probe: no answer for a while

        def others_answered() -> bool:
            calls = [backend.sync_calls(s) for s in CURRENT[1:]]
            return all(c and c[0].finished is not None for c in calls)

        def answer_the_probe_after_the_others() -> None:
            end = time.monotonic() + 10  # a pass that waited for the probe fails below
            while not others_answered() and time.monotonic() < end:
                time.sleep(0.02)
            release.set()

        threading.Thread(target=answer_the_probe_after_the_others, daemon=True).start()
        run = run_pass(clock=clock, state=state, BACKEND_URL=backend.url)
        probe, *others = (backend.sync_calls(s)[0] for s in CURRENT)
    assert (
        run.code == 0
        and run.lines("Sonda tras la parada")
        and run.lines(f"La sonda sigue en curso tras {PROBE_ANSWER_SECONDS:.0f} s")
    )
    # The others were answered while the probe was still in flight.
    assert probe.finished is not None and all(c.finished is not None and c.finished < probe.finished for c in others)
    assert not state.state.exchange.probe  # it was answered in the end: served


def test_backfills_that_had_not_left_at_the_pass_budget_are_deferred(run_pass) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    clock = VirtualClock(wall_start=START)
    env = {"SYMBOLS_INCLUDE": "NEW0USDT,NEW1USDT", "BACKFILL_CONCURRENCY": "1", "PASS_BUDGET_SECONDS": "50"}
    with _backend(clock) as backend:
        for symbol in NEW:
            backend.script(symbol, hang_until(release))  # first backfills of minutes
        run = run_pass(clock=clock, BACKEND_URL=backend.url, **env)
        release.set()
    # One backfill left (to the backend), the other never had a slot: deferred, no failure.
    assert run.code == 0 and run.summary["reason"] == "ok", run.log_lines
    totals = run.summary["totals"]
    assert (totals["left_to_backend"], totals["deferred"], totals["ok"]) == (1, 1, 3)
    assert run.lines("⏭ 1 backfills diferidos a la próxima pasada: el presupuesto de la pasada se agotó antes")
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert fin.endswith("dejados al backend: 1, diferidos: 1, con huecos: 0 símbolos (0 minutos)")
