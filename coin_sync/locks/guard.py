"""The run lock a pass holds, whichever it is (the Kubernetes Lease, coin_sync/k8s; the
file lock, coin_sync/locks/filelock.py): one outcome type and one guard protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from coin_sync.outcome import PassReport
from coin_sync.sync.state import StateStore

LockState = Literal["acquired", "held", "unavailable", "inactive"]


@dataclass(frozen=True)
class LockOutcome:
    """acquired | held (detail: the live holder) | unavailable (detail: the error) |
    inactive (no lock to take: K8S_INTEGRATION off, LOCK_FILE=off). A lock gives the first two, a guard the rest."""

    state: LockState
    detail: str = ""


class PassGuard(Protocol):
    def acquire(self) -> LockOutcome:
        """Take the run lock; never raises."""

    def finish(self, report: PassReport) -> None:
        """Release the lock and report how the pass ended; never raises."""

    def state_store(self) -> StateStore | None:
        """Where this pass keeps its ambiguous syncs when the guard has a place for them
        (the Kubernetes status record); None: the caller keeps them in STATE_FILE."""
