"""The pass's halt policy in-process on a virtual clock, against the real fake backend:
the shutdown grace after a signal, a signal against a deadline, and lost backends."""

from __future__ import annotations

import re
import signal
import threading
import time

from coin_sync.stop import Stop
from fake_backend import FakeBackend, error500, hang, ok
from inproc import PassRun, run_pass_inproc
from virtual_clock import VirtualClock


def _signal_once_in_flight(backend: FakeBackend, stop: Stop, count: int, signum: int = signal.SIGTERM) -> None:
    """Deliver `signum` as the signal watcher would, once `count` syncs have started."""

    def watch() -> None:
        end = time.monotonic() + 30
        while len(backend.sync_calls()) < count and time.monotonic() < end:
            time.sleep(0.005)
        stop.deliver(signum)

    threading.Thread(target=watch, daemon=True).start()


def _pass(backend: FakeBackend, stop: Stop, clock: VirtualClock | None = None, **env: str) -> PassRun:
    return run_pass_inproc({"BACKEND_URL": backend.url, **env}, stop=stop, clock=clock)


def test_grace_runs_out_on_a_hung_sync_and_the_rest_is_skipped() -> None:
    with FakeBackend(symbols=5) as backend:
        backend.script("BTCUSDT", hang(30))
        stop = Stop()
        _signal_once_in_flight(backend, stop, 1)
        clock = VirtualClock(real_slice=1.0)
        run = _pass(backend, stop, clock, SYNC_CONCURRENCY="1", SHUTDOWN_GRACE_SECONDS="20")
    statuses = {s["symbol"]: s["status"] for s in run.summary["symbols"]}
    assert run.code == 143 and run.summary["reason"] == "interrupted"
    assert statuses == {"BTCUSDT": "interrupted", **{s: "skipped" for s in backend.symbols[1:]}}
    # The ERROR names what was still in flight; what was never sent says why.
    assert run.lines("Tiempo de gracia agotado con 1 sincronizaciones en curso: BTCUSDT")
    assert {s["skip_reason"] for s in run.summary["symbols"] if s["status"] == "skipped"} == {"interrupted"}
    assert run.report.duration >= 20  # the whole grace, in virtual seconds


def test_what_is_in_flight_finishes_within_the_grace() -> None:
    with FakeBackend(symbols=6) as backend:
        for symbol in backend.symbols[:2]:
            backend.script(symbol, ok(3, delay=0.2))
        stop = Stop()
        _signal_once_in_flight(backend, stop, 2)
        run = _pass(backend, stop, SYNC_CONCURRENCY="2", SHUTDOWN_GRACE_SECONDS="20")
    totals = run.summary["totals"]
    assert run.code == 143
    assert (totals["ok"], totals["interrupted"], totals["skipped"]) == (2, 0, 4)
    assert not run.lines("Tiempo de gracia agotado")


def test_a_signal_outranks_the_deadline() -> None:
    with FakeBackend(symbols=10) as backend:
        backend.script(backend.symbols[0], ok(delay=0.3))
        stop = Stop()
        clock = VirtualClock(real_slice=1.0)
        # The deadline (0.5 s) passes while the first sync is in flight; then SIGINT.
        threading.Timer(0.15, lambda: clock.advance(1)).start()
        threading.Timer(0.2, lambda: stop.deliver(signal.SIGINT)).start()
        run = _pass(backend, stop, clock, SYNC_CONCURRENCY="1", PASS_DEADLINE_SECONDS="0.5")
    assert run.code == 130 and run.summary["reason"] == "interrupted"
    assert run.lines("FIN DE SINCRONIZACIÓN #1 (INTERRUMPIDA por SIGINT)")


def test_a_symbol_that_exhausts_its_retries_on_a_healthy_backend_does_not_stop_the_pass() -> None:
    with FakeBackend(symbols=4) as backend:
        backend.script("ETHUSDT", error500("Binance caído"))
        run = _pass(backend, Stop(), MAX_RETRIES="2", RETRY_DELAY_SECONDS="10", RETRY_MAX_DELAY_SECONDS="60")
    totals = run.summary["totals"]
    assert run.code == 1 and run.summary["reason"] == "symbols_failed"
    assert (totals["ok"], totals["failed"], totals["skipped"]) == (3, 1, 0)
    assert len([c for c in backend.calls if c.path == "/health"]) == 2  # the start, and one probe after
    # MAX_RETRIES + 1 calls (issue 18: a plain 500 is no longer re-queued 5 times first).
    assert backend.sync_calls("ETHUSDT")[-1].status == 500 and len(backend.sync_calls("ETHUSDT")) == 3
    # After the first call: 10 s, then 20 s, jittered 75-125 %, and waited for on the virtual
    # clock (its sleeps are cut by the progress line's wake-ups: not one each).
    waits = [float(m) for line in run.lines("↻ ETHUSDT") for m in re.findall(r"reintento en ([\d.]+) s", line)]
    first, second = waits[-2:]
    assert 7.5 <= first <= 12.5 and 15 <= second <= 25
    assert run.report.duration >= first + second - 0.1  # rounded to 0.1 s in the line
