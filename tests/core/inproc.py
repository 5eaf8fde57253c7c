"""A pass run in-process: real settings, real HTTP client against the fake backend, the
real pool, on a virtual clock; what it logged captured as lines."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coin_sync.backend.client import BackendClient, make_client
from coin_sync.backend.wire import SyncAnswer
from coin_sync.config.load import load_settings
from coin_sync.observe.publish import log_end
from coin_sync.outcome import PassReport
from coin_sync.stop import Stop
from coin_sync.sync.context import PassContext
from coin_sync.sync.runner import run_pass
from coin_sync.sync.state import MemoryStateStore, StateStore
from virtual_clock import VirtualClock

# What every in-process pass uses unless a test says otherwise (as tests/core/conftest.py
# does for subprocess runs).
BASE_ENV = {"BACKEND_WAIT_SECONDS": "2", "RETRY_DELAY_SECONDS": "0.01", "RETRY_MAX_DELAY_SECONDS": "0.05"}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"- {record.levelname} - {record.getMessage()}")


class CostlyClient(BackendClient):
    """The real client, where every sync also costs `cost` virtual seconds."""

    def __init__(self, inner: BackendClient, clock: VirtualClock, cost: float) -> None:
        super().__init__(inner.base_url, inner.session, inner.timeout[1])
        self._clock, self._cost = clock, cost

    def sync(self, symbol: str) -> SyncAnswer:
        try:
            return super().sync(symbol)
        finally:
            self._clock.advance(self._cost)


@dataclass
class PassRun:
    report: PassReport
    clock: VirtualClock
    log_lines: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        return int(self.report.exit_code)

    @property
    def summary(self) -> dict[str, Any]:
        return self.report.to_dict()

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.log_lines if needle in line]


def run_pass_inproc(
    env: Mapping[str, str],
    *,
    clock: VirtualClock | None = None,
    stop: Stop | None = None,
    sync_cost: float = 0.0,
    state: StateStore | None = None,
) -> PassRun:
    """state: what the pass remembers across passes (give the same one to the next pass);
    a fresh MemoryStateStore unless given."""
    settings = load_settings(environ={**BASE_ENV, **env})
    clock = clock or VirtualClock()
    if not clock.real_slice:
        # A pass's workers are real threads doing real HTTP: let the clock wait for them.
        clock.real_slice = 1.0
    collect = _Collect()
    log = logging.getLogger(f"coin_sync.inproc.{id(collect)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(collect)
    client = make_client(settings.backend, settings.sync.connections)
    if sync_cost:
        client = CostlyClient(client, clock, sync_cost)
    try:
        ctx = PassContext(settings, client, log, stop or Stop(), clock, state or MemoryStateStore())
        report = run_pass(ctx)
        log_end(report, log)
    finally:
        log.removeHandler(collect)
        # A sync abandoned when the grace ran out may still end (and log) later, as the
        # test's backend stops: not on the test run's stderr.
        log.addHandler(logging.NullHandler())
        client.session.close()
    return PassRun(report, clock, collect.lines)
