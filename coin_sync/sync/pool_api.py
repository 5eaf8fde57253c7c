"""What the pool is handed and hands back (coin_sync/sync/pool.py): an attempt's verdict,
the callbacks for what it does not decide itself, the gate, the limits, its progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from coin_sync.outcome import SymbolResult
from coin_sync.sync.attempt import Job
from coin_sync.sync.limiter import Signal


@dataclass(frozen=True)
class Verdict:
    """One attempt's end: done (result), again after `again_in` s, or halt the pass."""

    signal: Signal
    result: SymbolResult | None = None
    again_in: float = 0.0
    halt: str | None = None  # why the exchange will not serve: the result says skipped


AttemptFn = Callable[[Job], Verdict]
AbandonFn = Callable[[Job, "str | None"], SymbolResult]  # a job still queued at the end
LeaveFn = Callable[[Job], SymbolResult]  # a backfill in flight left to the backend


class Gate(Protocol):
    def admit(self, job: Job) -> bool:
        """May `job` leave now?"""

    def wake_at(self) -> float | None:
        """When a job held back may leave (monotonic); None: not in this pass."""


@dataclass(frozen=True)
class PoolProgress:
    """Where the pool stands, for a progress reporter (coin_sync.sync.progress)."""

    done: int
    total: int
    in_flight: int
    failed: int
    deferred: int  # waiting for their retry (or re-queue) time


# Told where the pool stands after every change; returns when it wants to be told again.
ProgressFn = Callable[[PoolProgress], "float | None"]


@dataclass(frozen=True)
class Limit:
    """A time after which nothing more is dispatched (deadline, budget); with
    `leave_backfills`, the backfills in flight are then left to the backend."""

    at: float
    message: str
    leave_backfills: bool = False
