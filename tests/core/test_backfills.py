"""Catch-ups first, backfills beside them, never in their way (issue 18), in-process against
the fake backend on a virtual clock: a backfill takes as long as the exchange requests it
needs; the limiter grows while long calls are in flight; at the pass budget the backfills
in flight are left to the backend and the next pass holds them."""

from __future__ import annotations

import json
import threading
import time

from coin_sync.observe.metrics import render
from coin_sync.sync.limiter import INITIAL_LIMIT
from coin_sync.sync.state import MemoryStateStore
from fake_backend import Call, FakeBackend, generate_symbols, hang_until
from virtual_clock import VirtualClock

NEW = ["NEW1USDT", "NEW2USDT", "NEW3USDT", "NEW4USDT"]


def _overlap_peak(calls: list[Call]) -> int:
    """The most of `calls` in flight at once."""
    edges = sorted([(c.started, 1) for c in calls] + [(c.finished or float("inf"), -1) for c in calls])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_backfills_never_delay_the_catch_ups(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock()
    # 2 ms per exchange request: a first backfill from 2025-06-01 (~309 requests) is ~0.6 s,
    # a catch-up (at most one request) about nothing.
    with FakeBackend(symbols=40, clock=clock.wall, request_seconds=0.002) as backend:
        for name in NEW:
            backend.add_new_symbol(name)
        assert backend.requests_needed("NEW1USDT") == 309 and backend.requests_needed("BTCUSDT") == 0
        run = run_pass(clock=clock, BACKEND_URL=backend.url, SYMBOLS_INCLUDE=",".join(NEW))
        calls = backend.sync_calls()
    assert run.code == 0, run.log_lines
    backfills = [c for c in calls if c.symbol in NEW]
    catch_ups = [c for c in calls if c.symbol not in NEW]
    assert len(backfills) == 4 and len(catch_ups) == 40
    first_backfill_done = min(c.finished or 0.0 for c in backfills)
    # Every catch-up was sent, and answered, before the first backfill even ended.
    assert max(c.finished or 0.0 for c in catch_ups) < first_backfill_done
    # The lane is bounded: never more than BACKFILL_CONCURRENCY (2) backfills at once.
    assert _overlap_peak(backfills) == 2
    assert run.summary["totals"]["backfills"] == 4 and run.summary["totals"]["ok"] == 44


def test_the_in_flight_peak_counts_both_lanes(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock()
    with FakeBackend(symbols=1, clock=clock.wall, request_seconds=0.002) as backend:
        for name in NEW:
            backend.add_new_symbol(name)
        run = run_pass(clock=clock, BACKEND_URL=backend.url, SYMBOLS_INCLUDE=",".join(NEW))
        seen = backend.peak_in_flight
    # One catch-up, four backfills two at a time: the FIN line's "en vuelo máx" is what the
    # backend saw at once, not the catch-up lane's own peak (1).
    assert run.code == 0 and seen >= 2
    assert run.summary["concurrency"]["max"] >= seen
    (fin,) = run.lines("FIN DE SINCRONIZACIÓN")
    assert f"en vuelo máx {run.summary['concurrency']['max']}," in fin


def test_the_limiter_grows_while_long_calls_are_in_flight(run_pass) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    names = generate_symbols(44)
    slow, fast = names[:INITIAL_LIMIT], names[INITIAL_LIMIT:]
    with FakeBackend(symbols=names) as backend:
        for name in slow:  # current coins whose sync takes long: dispatched first (list order)
            backend.script(name, hang_until(release))

        def release_when_the_fast_are_done() -> None:
            end = time.monotonic() + 20
            while time.monotonic() < end:
                if sum(1 for c in backend.sync_calls() if c.symbol in fast and c.finished) == len(fast):
                    break
                time.sleep(0.01)
            release.set()

        threading.Thread(target=release_when_the_fast_are_done, daemon=True).start()
        run = run_pass(BACKEND_URL=backend.url)
        calls = backend.sync_calls()
    assert run.code == 0, run.log_lines
    slow_done = min(c.finished or 0.0 for c in calls if c.symbol in slow)
    # The limiter started at 4, all four held by calls that would not end: without growing
    # while they were in flight, nothing else could have been sent until they ended.
    assert all((c.finished or 0.0) < slow_done for c in calls if c.symbol in fast)
    assert run.report.concurrency_max > INITIAL_LIMIT


def test_at_the_budget_backfills_are_left_to_the_backend_and_the_next_pass_holds_them(run_pass) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    state, clock = MemoryStateStore(), VirtualClock()
    env = {"SYMBOLS_INCLUDE": "NEWUSDT", "PASS_BUDGET_SECONDS": "50", "AMBIGUOUS_HOLD_SECONDS": "600"}
    with FakeBackend(symbols=5, clock=clock.wall) as backend:
        backend.add_new_symbol("NEWUSDT")
        backend.script("NEWUSDT", hang_until(release))  # a first backfill of minutes
        first = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        (sent,) = backend.sync_calls("NEWUSDT")
        assert sent.finished is None, "the backfill must still be running in the backend"
        assert set(state.state.ambiguous) == {"NEWUSDT"}  # remembered as an ambiguous sync

        clock.advance(60)
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert len(backend.sync_calls("NEWUSDT")) == 1  # not re-sent while the backend runs it
        release.set()
    # The pass ended at its budget, without waiting for the backfill, and that is no failure.
    assert first.code == 0 and first.summary["reason"] == "ok", first.log_lines
    assert first.report.duration == 50.0
    new = next(s for s in first.summary["symbols"] if s["symbol"] == "NEWUSDT")
    assert (new["status"], new["skip_reason"], new["backfill"]) == ("skipped", "left_to_backend", True)
    assert new["pending_backfill"] is True  # still absent from /api/symbols
    assert first.summary["totals"]["left_to_backend"] == 1 and first.summary["totals"]["ok"] == 5
    (line,) = first.lines("⧗ NEWUSDT")
    assert " WARNING " in line and "se deja al backend" in line and "no se cancela ni se reenvía" in line
    (fin,) = first.lines("FIN DE SINCRONIZACIÓN")
    assert fin.endswith(", dejados al backend: 1, con huecos: 0 símbolos (0 minutos)")
    assert "left_to_backend=1" in first.report.one_line()
    metrics = render(first.summary, None).decode()
    assert "coin_sync_last_pass_left_to_backend 1.0" in metrics and "coin_sync_last_pass_backfills 1.0" in metrics
    assert second.code == 0 and second.lines("⏸ NEWUSDT no se envía")
    assert second.summary["totals"]["held"] == 1 and second.summary["totals"]["left_to_backend"] == 0


def test_catch_ups_in_flight_at_the_budget_are_still_waited_for(run_pass) -> None:  # type: ignore[no-untyped-def]
    """Only backfills are left: a catch-up in flight at the budget ends in this pass."""
    release = threading.Event()
    clock = VirtualClock()
    with FakeBackend(symbols=3, clock=clock.wall) as backend:
        backend.script("ETHUSDT", hang_until(release))
        clock.after(50, release.set)  # ends just after the budget
        run = run_pass(clock=clock, BACKEND_URL=backend.url, PASS_BUDGET_SECONDS="40")
    assert run.code == 0, run.log_lines
    eth = next(s for s in run.summary["symbols"] if s["symbol"] == "ETHUSDT")
    assert eth["status"] == "ok" and run.summary["totals"]["left_to_backend"] == 0


def test_a_left_backfill_that_answers_before_the_pass_ends_is_not_logged_as_synced(run_pass) -> None:  # type: ignore[no-untyped-def]
    """Left to the backend, its answer is no longer the pass's: no "✓ ... sincronizado"
    line (it could land after FIN), no second result."""
    backfill, catch_up = threading.Event(), threading.Event()
    clock = VirtualClock()
    with FakeBackend(symbols=2, clock=clock.wall) as backend:
        backend.add_new_symbol("NEWUSDT")
        backend.script("NEWUSDT", hang_until(backfill))
        backend.script("ETHUSDT", hang_until(catch_up))  # still in flight at the budget: waited for

        def release_the_catch_up_after_the_backfill_answered() -> None:
            end = time.monotonic() + 20
            while time.monotonic() < end and not any(c.finished for c in backend.sync_calls("NEWUSDT")):
                time.sleep(0.01)
            catch_up.set()

        clock.after(45, backfill.set)  # after the budget (40 s) left it
        threading.Thread(target=release_the_catch_up_after_the_backfill_answered, daemon=True).start()
        run = run_pass(clock=clock, BACKEND_URL=backend.url, SYMBOLS_INCLUDE="NEWUSDT", PASS_BUDGET_SECONDS="40")
        assert backend.sync_calls("NEWUSDT")[0].status == 200
    assert run.code == 0, run.log_lines
    assert run.lines("⧗ NEWUSDT") and not run.lines("✓ NEWUSDT sincronizado")
    assert [s["symbol"] for s in run.summary["symbols"]].count("NEWUSDT") == 1
    eth = next(s for s in run.summary["symbols"] if s["symbol"] == "ETHUSDT")
    assert eth["status"] == "ok"


def test_the_program_exits_at_its_budget_with_a_backfill_still_running(run_cli) -> None:  # type: ignore[no-untyped-def]
    """As the CronJob runs it: the process ends (exit 0) while the backend still runs the
    backfill, remembers it in STATE_FILE, and the next process holds it."""
    release = threading.Event()
    with FakeBackend(symbols=3) as backend:
        backend.add_new_symbol("NEWUSDT")
        backend.script("NEWUSDT", hang_until(release))
        first = run_cli(BACKEND_URL=backend.url, SYMBOLS_INCLUDE="NEWUSDT", PASS_BUDGET_SECONDS="1")
        still_running = backend.sync_calls("NEWUSDT")[0].finished is None
        second = run_cli(BACKEND_URL=backend.url, SYMBOLS_INCLUDE="NEWUSDT", PASS_BUDGET_SECONDS="1")
        sent = len(backend.sync_calls("NEWUSDT"))
        release.set()
    assert still_running and sent == 1
    assert first.code == 0, first.stdout + first.stderr
    (fin,) = first.lines("FIN DE SINCRONIZACIÓN")
    assert fin.endswith(", dejados al backend: 1, con huecos: 0 símbolos (0 minutos)") and first.lines("⧗ NEWUSDT")
    assert "NEWUSDT" in json.loads((first.log_dir / ".coin-sync-state.json").read_text())["ambiguous"]
    assert second.code == 0 and second.lines("⏸ NEWUSDT no se envía")
