"""Ambiguous syncs remembered across passes: after a read timeout (or a 504) the next
passes hold the symbol back while the backend may still run it, until its last_record
advanced or AMBIGUOUS_HOLD_SECONDS passed. Policy on the virtual clock; the state file
as the CLI uses it."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from coin_sync.backend.wire import ListedSymbol
from coin_sync.sync.holds import decide
from coin_sync.sync.listing import Listing
from coin_sync.sync.state import (
    AmbiguousSync,
    FileStateStore,
    MemoryStateStore,
    Remembered,
    state_from_json,
    state_to_json,
)
from fake_backend import Call, FakeBackend, hang, hang_until, status
from virtual_clock import WALL_START as EPOCH
from virtual_clock import VirtualClock

LOG = logging.getLogger("coin_sync.tests.ambiguous")


def _wait_finished(call: Call, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while call.finished is None and time.monotonic() < end:
        time.sleep(0.02)
    assert call.finished is not None, "the fake never finished the hung sync"


def test_after_a_read_timeout_the_next_pass_holds_it_until_the_backend_finished(run_pass) -> None:  # type: ignore[no-untyped-def]
    state, clock = MemoryStateStore(), VirtualClock()
    env = {"HTTP_TIMEOUT": "0.3", "AMBIGUOUS_HOLD_SECONDS": "600"}
    # An hour behind: what its (slow) sync stores moves its last_record on.
    with FakeBackend(symbols=3, behind={"BTCUSDT": 3600}, clock=clock.wall) as backend:
        backend.script("BTCUSDT", hang(1.5))
        first = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert first.code == 1 and "BTCUSDT" in state.state.ambiguous
        (sent,) = backend.sync_calls("BTCUSDT")

        backend.script("BTCUSDT")  # from now on it answers at once
        backend.punch_hole("BTCUSDT", 5)
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert sent.finished is None, "the test needs the first sync still running here"
        assert len(backend.sync_calls("BTCUSDT")) == 1  # not re-sent while the backend runs it
        btc = next(s for s in second.summary["symbols"] if s["symbol"] == "BTCUSDT")
        assert (btc["status"], btc["skip_reason"]) == ("skipped", "ambiguous_hold")
        # Held, and still judged: an hour behind is stale, whatever its status.
        assert btc["stale"] is True and btc["lag_seconds"] >= 3000
        (line,) = second.lines("⏸ BTCUSDT no se envía")
        assert " WARNING " in line and "last_record" in line
        assert second.code == 0  # held, not failed: the other symbols synced
        assert second.summary["totals"]["held"] == 1 and "retenidos: 1" in second.lines("FIN DE")[0]
        # Its counts may move while the held sync inserts: no hole is judged from them.
        assert btc["missing_minutes"] is None and not second.lines("BTCUSDT tiene")

        _wait_finished(sent)  # the backend stored it: its last_record advanced
        third = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert len(backend.sync_calls("BTCUSDT")) == 2
        assert backend.in_flight_by_symbol_peak["BTCUSDT"] == 1
    assert third.code == 0 and not third.lines("⏸")
    assert next(s for s in third.summary["symbols"] if s["symbol"] == "BTCUSDT")["missing_minutes"] == 5
    assert state.state.ambiguous == {}  # resolved: nothing left to remember


def test_a_504_is_remembered_too(run_pass) -> None:  # type: ignore[no-untyped-def]
    state = MemoryStateStore()
    with FakeBackend(symbols=2, frozen={"ETHUSDT"}) as backend:  # a live last_record moves each minute
        backend.script("ETHUSDT", status(504, "<html>Gateway Timeout</html>"))
        run_pass(state=state, BACKEND_URL=backend.url)
    assert set(state.state.ambiguous) == {"ETHUSDT"}
    assert state.state.ambiguous["ETHUSDT"].last_record == backend.stats("ETHUSDT")["last_record"]


def test_the_hold_ends_after_ambiguous_hold_seconds_on_the_virtual_clock(run_pass) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock()
    # The backend never finished it: its last_record stays what it was when sent.
    with FakeBackend(symbols=2, frozen={"BTCUSDT"}) as backend:
        before = backend.stats("BTCUSDT")["last_record"]
        state = MemoryStateStore(Remembered({"BTCUSDT": AmbiguousSync("BTCUSDT", clock.wall(), before)}))
        clock.advance(99)
        held = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, AMBIGUOUS_HOLD_SECONDS="100")
        assert not backend.sync_calls("BTCUSDT") and held.lines("dentro de 1 s")
        clock.advance(1)
        sent = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, AMBIGUOUS_HOLD_SECONDS="100")
        assert len(backend.sync_calls("BTCUSDT")) == 1
    assert sent.code == 0 and state.state.ambiguous == {}


def test_the_default_hold_is_twice_http_timeout() -> None:
    from coin_sync.config.load import load_settings

    assert load_settings({}, {"HTTP_TIMEOUT": "45"}).sync.ambiguous_hold_seconds == 90
    assert load_settings({}, {}).sync.ambiguous_hold_seconds == 600
    assert load_settings({}, {"AMBIGUOUS_HOLD_SECONDS": "0"}).sync.ambiguous_hold_seconds == 0


def test_decide_policy() -> None:
    sent = EPOCH
    now = sent + timedelta(seconds=10)

    def iso(minutes_ago: float) -> str:
        return (now - timedelta(minutes=minutes_ago)).isoformat()

    old = iso(2)  # caught up: one exchange request behind
    state = {
        "AUSDT": AmbiguousSync("AUSDT", sent, old),  # not advanced: held
        "BUSDT": AmbiguousSync("BUSDT", sent, old),  # advanced and caught up: sent
        "CUSDT": AmbiguousSync("CUSDT", sent, None),  # new coin, now listed and caught up: sent
        "DUSDT": AmbiguousSync("DUSDT", sent, None),  # new coin, still unlisted: held
        "EUSDT": AmbiguousSync("EUSDT", sent, None, baseline_known=False),  # by time only: held
        # The backend lists a first backfill, and moves its last_record, as soon as it
        # starts storing, candle by candle from the oldest: far behind is still running.
        "GUSDT": AmbiguousSync("GUSDT", sent, None),  # new coin, listed but 300 days behind: held
        "HUSDT": AmbiguousSync("HUSDT", sent, iso(3_000)),  # advanced, still 2 requests behind: held
        "ZUSDT": AmbiguousSync("ZUSDT", sent - timedelta(seconds=700), old),  # expired, not in this pass: dropped
        "YUSDT": AmbiguousSync("YUSDT", sent + timedelta(days=1), old),  # a clock far ahead: dropped
    }
    rows = {"AUSDT": old, "BUSDT": iso(1), "CUSDT": old, "EUSDT": old, "GUSDT": iso(300 * 1440), "HUSDT": iso(1_500)}
    listing = Listing.from_rows([ListedSymbol(name, last) for name, last in rows.items()])
    symbols = ["AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT", "FUSDT", "GUSDT", "HUSDT"]
    decision = decide(state, symbols, listing, now, 600)
    assert decision.send == ["BUSDT", "CUSDT", "FUSDT"]
    assert [h.entry.symbol for h in decision.held] == ["AUSDT", "DUSDT", "EUSDT", "GUSDT", "HUSDT"]
    assert set(decision.keep) == {"AUSDT", "DUSDT", "EUSDT", "GUSDT", "HUSDT"}
    assert decision.held[0].age == 10 and decision.held[0].remaining == 590
    # Once caught up, the backfills are finished and sent again (a catch-up).
    caught_up = Listing.from_rows([ListedSymbol(name, iso(1)) for name in ("GUSDT", "HUSDT")])
    assert decide(state, ["GUSDT", "HUSDT"], caught_up, now, 600).send == ["GUSDT", "HUSDT"]
    # Without a listing (it could not be read) everything young is held by time.
    assert decide(state, symbols, None, now, 600).send == ["FUSDT"]


def test_state_round_trips_through_json() -> None:
    state = {
        "AUSDT": AmbiguousSync("AUSDT", EPOCH, "2025-11-17T14:45:00+00:00"),
        "BUSDT": AmbiguousSync("BUSDT", EPOCH, None),
        "CUSDT": AmbiguousSync("CUSDT", EPOCH, None, baseline_known=False),
    }
    assert state_from_json(json.loads(json.dumps(state_to_json(Remembered(state))))) == Remembered(state)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"ambiguous": {"BTCUSDT": {"sent_at": "yesterday"}}}', b"\xff\xfe", b""],
)
def test_a_corrupt_state_file_is_one_warning_and_empty(tmp_path: Path, content: bytes, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert FileStateStore(path, LOG).load() == Remembered()
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "se trata como vacío" in record.getMessage()


def test_the_state_file_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    store = FileStateStore(path, LOG)
    store.save(Remembered())
    assert not path.exists()  # nothing to remember, nothing written
    entry = AmbiguousSync("BTCUSDT", EPOCH, None)
    store.save(Remembered({"BTCUSDT": entry}))
    assert store.load() == Remembered({"BTCUSDT": entry})
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left behind


def test_a_corrupt_state_file_never_crashes_a_pass(fake_backend: FakeBackend, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state_file = tmp_path / "state.json"
    state_file.write_text('{"ambiguous": {"BTCUSDT": 42}')
    run = run_cli(BACKEND_URL=fake_backend.url, STATE_FILE=str(state_file))
    assert run.code == 0, run.stdout + run.stderr
    assert len(fake_backend.sync_calls()) == 3
    (warning,) = run.lines("se trata como vacío")
    assert " WARNING " in warning and f"STATE_FILE {state_file} no se puede leer" in warning
    assert "Traceback" not in run.stdout + run.stderr


def test_the_cli_remembers_in_log_dir_by_default(run_cli) -> None:  # type: ignore[no-untyped-def]
    # A backlog: its last_record moves only once the hung sync stores it (a live symbol's
    # would move at the next minute, and rightly release the hold).
    release = threading.Event()
    with FakeBackend(symbols=3, behind={"BTCUSDT": 3600}) as backend:
        backend.script("BTCUSDT", hang_until(release))  # still running during the second pass
        first = run_cli(BACKEND_URL=backend.url, HTTP_TIMEOUT="0.3", AMBIGUOUS_HOLD_SECONDS="600")
        assert first.code == 1
        saved = json.loads((first.log_dir / ".coin-sync-state.json").read_text())
        assert set(saved["ambiguous"]) == {"BTCUSDT"}
        backend.script("BTCUSDT")
        second = run_cli(BACKEND_URL=backend.url, HTTP_TIMEOUT="0.3", AMBIGUOUS_HOLD_SECONDS="600")
        assert second.code == 0 and second.lines("⏸ BTCUSDT no se envía")
        assert len(backend.sync_calls("BTCUSDT")) == 1
        release.set()


def test_with_symbols_to_sync_the_list_is_read_only_to_check_a_hold(run_pass) -> None:  # type: ignore[no-untyped-def]
    state, clock = MemoryStateStore(), VirtualClock()
    env = {"SYMBOLS_TO_SYNC": "BTCUSDT,ETHUSDT", "HTTP_TIMEOUT": "0.3", "AMBIGUOUS_HOLD_SECONDS": "600"}
    with FakeBackend(symbols=2) as backend:

        def listings() -> int:
            return len([c for c in backend.calls if c.path == "/api/symbols"])

        assert run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env).code == 0
        assert listings() == 0  # a seed pass as before
        backend.freeze("BTCUSDT")  # nothing stored from here on: its last_record stays put
        before = backend.stats("BTCUSDT")["last_record"]
        backend.script("BTCUSDT", hang(5.0))
        run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert listings() == 1  # once, for the last_record the hold is measured from
        remembered = state.state.ambiguous["BTCUSDT"]
        assert remembered.last_record == before and remembered.baseline_known
        held = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert listings() == 2 and len(backend.sync_calls("BTCUSDT")) == 2
    assert held.lines("⏸ BTCUSDT no se envía")


def test_a_sync_abandoned_in_flight_by_a_signal_is_remembered(run_pass) -> None:  # type: ignore[no-untyped-def]
    import signal

    from coin_sync.stop import Stop

    state, stop = MemoryStateStore(), Stop()
    with FakeBackend(symbols=2) as backend:
        backend.script("BTCUSDT", hang(30))

        def signal_once_in_flight() -> None:
            _poll_calls(backend, 1)
            stop.deliver(signal.SIGTERM)

        threading.Thread(target=signal_once_in_flight, daemon=True).start()
        run = run_pass(stop=stop, state=state, BACKEND_URL=backend.url, SYNC_CONCURRENCY="1")
    assert run.code == 143
    assert set(state.state.ambiguous) == {"BTCUSDT"}  # the backend may still be running it


def _poll_calls(backend: FakeBackend, count: int, limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while len(backend.sync_calls()) < count and time.monotonic() < end:
        time.sleep(0.005)


def test_a_pass_whose_every_symbol_is_held_says_so_not_syncing_0(run_pass) -> None:  # type: ignore[no-untyped-def]
    state, clock = MemoryStateStore(), VirtualClock()
    env = {"HTTP_TIMEOUT": "0.3", "AMBIGUOUS_HOLD_SECONDS": "600", "SYMBOLS_TO_SYNC": "BTCUSDT"}
    with FakeBackend(symbols=3, behind={"BTCUSDT": 3600}, clock=clock.wall) as backend:
        backend.script("BTCUSDT", hang(1.5))
        run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        second = run_pass(clock=clock, state=state, BACKEND_URL=backend.url, **env)
        assert len(backend.sync_calls("BTCUSDT")) == 1
        _wait_finished(backend.sync_calls("BTCUSDT")[0])
    assert not second.lines("Sincronizando")
    assert second.lines("Ningún símbolo que enviar; 1 retenido (sincronización ambigua)")
