"""How a pass ended: exit codes, end reasons, symbol statuses and the report.

Every way a pass can end is one `EndReason` member. Each member carries what the rest of
the program derives from it (exit code, Kubernetes Event, log level), so no other
module maps reasons to codes. `PassReport.exit_code` is derived, never stored.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum, StrEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    SYMBOLS_FAILED = 1
    BAD_CONFIG = 2
    BACKEND_UNAVAILABLE = 3
    EXCHANGE_LIMITED = 4
    SIGINT = 130
    SIGTERM = 143

    @property
    def log_level(self) -> int:
        """How loudly a pass that ended with this code is logged (FIN line, loop)."""
        if self is ExitCode.OK:
            return logging.INFO
        if self in (ExitCode.BAD_CONFIG, ExitCode.BACKEND_UNAVAILABLE, ExitCode.EXCHANGE_LIMITED):
            return logging.ERROR
        return logging.WARNING


def exit_code_for_signal(signum: int | None) -> ExitCode:
    """130 for SIGINT, 143 for SIGTERM (and, as the safe default, for anything else)."""
    return ExitCode.SIGINT if signum == signal.SIGINT else ExitCode.SIGTERM


def signal_name(signum: int) -> str:
    """SIGTERM for 15; the bare number for a signal Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class SymbolStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # never dispatched (deadline, signal, backend lost, exchange quota, held)
    INTERRUPTED = "interrupted"  # still in flight when the shutdown grace ran out


# SymbolResult.skip_reason of a symbol not sent because an earlier ambiguous sync of it
# (read timeout, 504) may still be running in the backend (coin_sync/sync/holds.py).
SKIP_AMBIGUOUS_HOLD = "ambiguous_hold"
# ... of a backfill still in flight when the pass budget ran out: the backend finishes it
# (nothing cancelled or re-sent) and the next passes hold it like an ambiguous sync.
SKIP_LEFT_TO_BACKEND = "left_to_backend"
# ... of a backfill not sent because the exchange budget of the last minute was spent, or
# backfills are paused after a quota halt (coin_sync/sync/exchange_budget.py): the next
# pass sends it. Not a failure.
SKIP_DEFERRED = "deferred"
ON_PURPOSE = (SKIP_AMBIGUOUS_HOLD, SKIP_LEFT_TO_BACKEND, SKIP_DEFERRED)


# Kubernetes Event reasons, one per pass.
EVENT_SUCCEEDED = "SyncSucceeded"
EVENT_PARTIAL = "SyncPartial"
EVENT_FAILED = "SyncFailed"
EVENT_BACKEND = "BackendUnavailable"
EVENT_SKIPPED = "SyncSkipped"
EVENT_EXCHANGE_LIMITED = "ExchangeLimited"


class EndReason(Enum):
    """Why a pass ended. value: the word machines read (summary, Events, status record).

    exit_code None means "from the signal" (130/143); event None means "SyncPartial when
    some symbol synced, else SyncFailed".
    """

    OK = ("ok", ExitCode.OK, EVENT_SUCCEEDED)
    NOTHING_TO_SYNC = ("nothing_to_sync", ExitCode.OK, EVENT_SUCCEEDED)
    SYMBOLS_FAILED = ("symbols_failed", ExitCode.SYMBOLS_FAILED, None)
    STALE = ("stale", ExitCode.SYMBOLS_FAILED, None)  # FAIL_ON_STALE: all synced, some left stale
    GAPS = ("gaps", ExitCode.SYMBOLS_FAILED, None)  # FAIL_ON_GAPS: all synced, some with holes
    DEADLINE = ("deadline", ExitCode.SYMBOLS_FAILED, None)
    BACKEND_UNAVAILABLE = ("backend_unavailable", ExitCode.BACKEND_UNAVAILABLE, EVENT_BACKEND)
    SYMBOLS_UNUSABLE = ("symbols_unusable", ExitCode.BACKEND_UNAVAILABLE, EVENT_BACKEND)
    BACKEND_LOST = ("backend_lost", ExitCode.BACKEND_UNAVAILABLE, EVENT_BACKEND)
    # The exchange rate-limited or banned the backend: the pass stopped dispatching.
    EXCHANGE_LIMITED = ("exchange_limited", ExitCode.EXCHANGE_LIMITED, EVENT_EXCHANGE_LIMITED)
    INTERRUPTED = ("interrupted", None, None)
    LOCK_HELD = ("lock_held", ExitCode.OK, EVENT_SKIPPED)
    LOCK_UNAVAILABLE = ("lock_unavailable", ExitCode.BACKEND_UNAVAILABLE, EVENT_FAILED)
    CRASHED = ("crashed", ExitCode.SYMBOLS_FAILED, EVENT_FAILED)

    def __init__(self, word: str, code: ExitCode | None, event: str | None) -> None:
        self.word = word
        self._code = code
        self._event = event

    def exit_code(self, signum: int | None = None) -> ExitCode:
        return exit_code_for_signal(signum) if self._code is None else self._code

    def succeeded(self, exit_code: int) -> bool:
        """Exit 0 after really running: a pass skipped because another held the lock exits
        0 too, but synced nothing, so it is not a success (the metrics' last success)."""
        return exit_code == ExitCode.OK and self is not EndReason.LOCK_HELD

    @classmethod
    def named(cls, word: str) -> EndReason | None:
        """The member whose word a summary carries (its "reason"); None for no member."""
        return next((reason for reason in cls if reason.word == word), None)

    def event(self, exit_code: ExitCode, any_ok: bool) -> tuple[str, str]:
        """(reason, type) of the one Event a pass posts."""
        reason = self._event or (EVENT_PARTIAL if any_ok else EVENT_FAILED)
        normal = reason in (EVENT_SUCCEEDED, EVENT_SKIPPED) and exit_code is ExitCode.OK
        return reason, "Normal" if normal else "Warning"


@dataclass
class SymbolResult:
    symbol: str
    status: SymbolStatus
    new_records: int = 0
    attempts: int = 0  # failed attempts plus the last one; overload re-queues not counted
    duration: float = 0.0
    error: str | None = None
    # Flags on top of the four statuses (they must keep adding up to the symbol count):
    rejected: bool = False  # failed: the exchange refused the symbol (unknown), not retried
    pending_backfill: bool = False  # declared (SYMBOLS_INCLUDE), still absent from /api/symbols
    skip_reason: str | None = None  # skipped on purpose (SKIP_AMBIGUOUS_HOLD, _LEFT_TO_BACKEND, _DEFERRED)
    last_record: str | None = None  # ISO 8601 UTC; None when its freshness is unknown
    lag_seconds: float | None = None
    stale: bool = False
    requeued: int = 0  # calls the backend rejected for overload, re-queued without counting
    missing_minutes: int | None = None  # holes in its stored candles (never refilled); None: unknown
    backfill: bool = False  # planned in the backfill lane (not listed yet, or far behind)

    @property
    def failed(self) -> bool:
        """Does it make the pass fail? Held, left to the backend and deferred symbols were
        skipped on purpose."""
        return self.status is not SymbolStatus.OK and self.skip_reason not in ON_PURPOSE


@dataclass
class PassReport:
    pass_number: int
    started_at: str
    reason: EndReason = EndReason.OK
    signum: int | None = None  # the signal that interrupted the pass
    finished_at: str = ""
    duration: float = 0.0
    shard_index: int = 0
    shard_count: int = 1
    results: list[SymbolResult] = field(default_factory=list)
    detail: str = ""  # one line for the end that has no symbol results (lock holder, crash)
    concurrency_max: int = 0  # the most syncs in flight at once
    concurrency_final: int = 0  # the concurrency limit when the pass ended
    exchange_budget: int = 0  # weight a minute this pass allowed (EXCHANGE_WEIGHT_PER_MINUTE, or adapted)
    exchange_weight: int = 0  # the estimated weight of the syncs it sent

    @property
    def exit_code(self) -> ExitCode:
        return self.reason.exit_code(self.signum)

    def count(self, status: SymbolStatus) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def flag_counts(self) -> dict[str, int]:
        """rejected (of failed), pending_backfill (of any status), held, left_to_backend and
        deferred (of skipped). New ones go last: the FIN line lists them in order."""
        return {
            "rejected": sum(1 for r in self.results if r.rejected),
            "pending_backfill": sum(1 for r in self.results if r.pending_backfill),
            "held": sum(1 for r in self.results if r.skip_reason == SKIP_AMBIGUOUS_HOLD),
            "left_to_backend": sum(1 for r in self.results if r.skip_reason == SKIP_LEFT_TO_BACKEND),
            "deferred": sum(1 for r in self.results if r.skip_reason == SKIP_DEFERRED),
        }

    @property
    def new_records(self) -> int:
        return sum(r.new_records for r in self.results)

    @property
    def failures(self) -> list[SymbolResult]:
        return [r for r in self.results if r.status in (SymbolStatus.FAILED, SymbolStatus.INTERRUPTED)]

    @property
    def pending_backfill_symbols(self) -> list[str]:
        """Declared symbols still absent from /api/symbols (for the status record)."""
        return [r.symbol for r in self.results if r.pending_backfill]

    def failed_symbols(self, limit: int, error_chars: int) -> list[dict[str, str]]:
        """The first `limit` failures as {"symbol", "error"}, errors cut to `error_chars`."""
        return [{"symbol": r.symbol, "error": (r.error or r.status)[:error_chars]} for r in self.failures[:limit]]

    def event(self) -> tuple[str, str]:
        return self.reason.event(self.exit_code, self.count(SymbolStatus.OK) > 0)

    @property
    def stale(self) -> list[SymbolResult]:
        return [r for r in self.results if r.stale]

    @property
    def max_lag_seconds(self) -> float | None:
        """The largest known lag; None when no symbol's freshness is known."""
        lags = [r.lag_seconds for r in self.results if r.lag_seconds is not None]
        return max(lags) if lags else None

    @property
    def gaps(self) -> list[SymbolResult]:
        """Symbols with holes in their stored candles."""
        return [r for r in self.results if r.missing_minutes]

    def totals(self) -> dict[str, Any]:
        return {
            "symbols": len(self.results),
            **{str(status): self.count(status) for status in SymbolStatus},
            **self.flag_counts,
            "new_records": self.new_records,
            "duration": round(self.duration, 3),
            "retries": sum(max(0, r.attempts - 1) for r in self.results),
            "stale": len(self.stale),
            "freshness_unknown": sum(1 for r in self.results if r.lag_seconds is None),
            "max_lag_seconds": self.max_lag_seconds,
            "symbols_with_gaps": len(self.gaps),
            "missing_minutes": sum(r.missing_minutes or 0 for r in self.results),
            "backfills": sum(1 for r in self.results if r.backfill),
        }

    def to_dict(self) -> dict[str, Any]:
        extra = {"detail": self.detail} if self.detail else {}
        return {
            "pass_number": self.pass_number,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": int(self.exit_code),
            "reason": self.reason.word,
            "shard": {"index": self.shard_index, "count": self.shard_count},
            "totals": self.totals(),
            "concurrency": {"max": self.concurrency_max, "final": self.concurrency_final},
            "exchange": {"budget": self.exchange_budget, "weight": self.exchange_weight},
            "symbols": [{**asdict(r), "status": str(r.status), "duration": round(r.duration, 3)} for r in self.results],
            **extra,
        }

    def one_line(self, limit: int = 1024, max_failed: int = 5) -> str:
        """Counts and the first failed symbols, for Events and humans."""
        t = self.totals()
        text = (
            f"exit={int(self.exit_code)} reason={self.reason.word} ok={t['ok']} failed={t['failed']} "
            f"skipped={t['skipped']} interrupted={t['interrupted']} new_records={t['new_records']} "
            f"duration={t['duration']}s stale={t['stale']} max_lag={_seconds(t['max_lag_seconds'])}"
        )
        text += "".join(f" {name}={n}" for name, n in self.flag_counts.items() if n)
        if t["symbols_with_gaps"]:
            text += f" symbols_with_gaps={t['symbols_with_gaps']} missing_minutes={t['missing_minutes']}"
        failed = self.failures[:max_failed]
        if failed:
            text += " first_failed=" + ", ".join(f"{r.symbol}: {r.error or r.status}" for r in failed)
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}s"
