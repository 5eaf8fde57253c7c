"""Progress lines on long passes: the policy as a table, then real passes on virtual time."""

from __future__ import annotations

import re
import threading

import pytest

from coin_sync.stop import Stop
from coin_sync.sync.progress import line_due
from fake_backend import FakeBackend, hang_until
from inproc import run_pass_inproc
from virtual_clock import VirtualClock


@pytest.mark.parametrize(
    ("elapsed", "since_line", "done_since", "total", "due"),
    [
        (4.9, None, 500, 1000, False),  # the first few seconds stay quiet, whatever was done
        (5.0, None, 0, 1000, True),  # then a first line, even with nothing done
        (12.0, 7.0, 99, 1000, False),  # neither 10 s nor 10 % since the last line
        (12.0, 7.0, 100, 1000, True),  # 10 % of the symbols
        (15.0, 10.0, 0, 1000, True),  # 10 s, nothing done (everything hung)
        (6.0, 1.0, 1, 5, True),  # 10 % of 5 symbols is one
        (6.0, 1.0, 0, 5, False),
    ],
)
def test_when_a_progress_line_is_due(
    elapsed: float, since_line: float | None, done_since: int, total: int, due: bool
) -> None:
    assert line_due(elapsed, since_line, done_since, total) is due


def _progress(lines: list[str]) -> list[tuple[int, int, int, int]]:
    """(done, total, in flight, seconds) of each progress line."""
    found = []
    for line in lines:
        m = re.search(
            r"Progreso: (\d+)/(\d+) símbolos \(\d+ %\), (\d+) en curso, \d+ fallidos, "
            r"\d+ en espera de reintento, (\d+) s",
            line,
        )
        if m:
            found.append(tuple(int(g) for g in m.groups()))
    return found  # type: ignore[return-value]


def test_a_long_pass_reports_every_10_percent_at_info() -> None:
    # 40 symbols one at a time, 0.5 virtual s each: a 20 s pass.
    with FakeBackend(symbols=40) as backend:
        run = run_pass_inproc({"BACKEND_URL": backend.url, "SYNC_CONCURRENCY": "1"}, sync_cost=0.5)
    assert run.code == 0
    progress = _progress(run.log_lines)
    assert [done for done, *_ in progress] == [10, 14, 18, 22, 26, 30, 34, 38]  # from 5 s on, every 4 (10 %)
    assert all(total == 40 and in_flight <= 1 for _, total, in_flight, _ in progress)
    assert all(" INFO - Progreso" in line for line in run.lines("Progreso:"))
    assert progress[0][3] == 5  # the first one at 5 virtual seconds


def test_a_short_pass_prints_no_progress() -> None:
    with FakeBackend(symbols=8) as backend:
        run = run_pass_inproc({"BACKEND_URL": backend.url, "SYNC_CONCURRENCY": "1"}, sync_cost=0.5)
    assert run.code == 0 and not run.lines("Progreso:")  # a 4 s pass


def test_a_hung_pass_reports_every_10_seconds() -> None:
    release = threading.Event()
    clock = VirtualClock(real_slice=0.2)
    clock.at(31.0, release.set)  # the backend answers at virtual 31 s
    with FakeBackend(symbols=1) as backend:
        backend.script("BTCUSDT", hang_until(release))
        run = run_pass_inproc({"BACKEND_URL": backend.url, "HTTP_TIMEOUT": "60"}, clock=clock, stop=Stop())
    assert run.code == 0
    # Nothing done for 31 s: a line at 5 s, then every 10 s; none once all is done (FIN says it).
    assert _progress(run.log_lines) == [(0, 1, 1, 5), (0, 1, 1, 15), (0, 1, 1, 25)]
