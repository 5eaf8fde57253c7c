"""What a pass did: per-symbol results, totals, exit code and reason, and their outputs
(the summary JSON file and the compact Kubernetes termination message)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    SYMBOLS_FAILED = 1
    BAD_CONFIG = 2
    BACKEND_UNAVAILABLE = 3
    SIGINT = 130
    SIGTERM = 143


# Why a pass ended the way it did; one word each, for machines (summary, Events, status).
REASON_OK = "ok"
REASON_NOTHING = "nothing_to_sync"
REASON_FAILED = "symbols_failed"
REASON_DEADLINE = "deadline"
REASON_BACKEND_DOWN = "backend_unavailable"
REASON_SYMBOLS_UNUSABLE = "symbols_unusable"
REASON_BACKEND_LOST = "backend_lost"
REASON_INTERRUPTED = "interrupted"
REASON_LOCK_HELD = "lock_held"
REASON_LOCK_UNAVAILABLE = "lock_unavailable"
REASON_CRASHED = "crashed"  # the pass raised; only the Lease release and the status see it
# Every reason that ends a pass with exit 3 and a BackendUnavailable Event.
BACKEND_REASONS = frozenset({REASON_BACKEND_DOWN, REASON_SYMBOLS_UNUSABLE, REASON_BACKEND_LOST})

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"  # never dispatched (deadline, signal, backend lost)
STATUS_INTERRUPTED = "interrupted"  # still in flight when the shutdown grace ran out

TERMINATION_MESSAGE_LIMIT = 4096  # what the kubelet keeps of /dev/termination-log


@dataclass
class SymbolResult:
    symbol: str
    status: str
    new_records: int = 0
    attempts: int = 0
    duration: float = 0.0
    error: str | None = None


@dataclass
class PassReport:
    pass_number: int
    started_at: str
    finished_at: str = ""
    duration: float = 0.0
    exit_code: int = ExitCode.OK
    reason: str = REASON_OK
    shard_index: int = 0
    shard_count: int = 1
    results: list[SymbolResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def new_records(self) -> int:
        return sum(r.new_records for r in self.results)

    @property
    def failures(self) -> list[SymbolResult]:
        return [r for r in self.results if r.status in (STATUS_FAILED, STATUS_INTERRUPTED)]

    def failed_symbols(self, limit: int, error_chars: int) -> list[dict[str, str]]:
        """The first `limit` failures as {"symbol", "error"}, errors cut to `error_chars`."""
        return [{"symbol": r.symbol, "error": (r.error or r.status)[:error_chars]} for r in self.failures[:limit]]

    def totals(self) -> dict[str, Any]:
        return {
            "symbols": len(self.results),
            "ok": self.count(STATUS_OK),
            "failed": self.count(STATUS_FAILED),
            "skipped": self.count(STATUS_SKIPPED),
            "interrupted": self.count(STATUS_INTERRUPTED),
            "new_records": self.new_records,
            "duration": round(self.duration, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass_number": self.pass_number,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": int(self.exit_code),
            "reason": self.reason,
            "shard": {"index": self.shard_index, "count": self.shard_count},
            "totals": self.totals(),
            "symbols": [{**asdict(r), "duration": round(r.duration, 3)} for r in self.results],
        }

    def one_line(self, limit: int = 1024, max_failed: int = 5) -> str:
        """Counts and the first failed symbols, for Events and humans."""
        t = self.totals()
        text = (
            f"exit={int(self.exit_code)} reason={self.reason} ok={t['ok']} failed={t['failed']} "
            f"skipped={t['skipped']} interrupted={t['interrupted']} new_records={t['new_records']} "
            f"duration={t['duration']}s"
        )
        failed = self.failures[:max_failed]
        if failed:
            text += " first_failed=" + ", ".join(f"{r.symbol}: {r.error or r.status}" for r in failed)
        return text if len(text) <= limit else text[: limit - 1] + "…"


def write_summary_file(report: PassReport, path: Path) -> None:
    """Write atomically, so a reader never sees half a summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def termination_message(report: PassReport, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """Compact JSON that fits the kubelet's limit; drops failed-symbol detail first."""
    body: dict[str, Any] = {
        "exit_code": int(report.exit_code),
        "reason": report.reason,
        "pass": report.pass_number,
        "finished_at": report.finished_at,
        **{k: v for k, v in report.totals().items()},
        "failed_symbols": report.failed_symbols(limit=20, error_chars=200),
    }
    while True:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode("utf-8")) <= limit or not body["failed_symbols"]:
            return text
        body["failed_symbols"] = body["failed_symbols"][:-1]


def write_termination_message(report: PassReport, path: Path) -> bool:
    """Only inside a pod does that file exist and accept writes; elsewhere do nothing."""
    if not path.exists() or not os.access(path, os.W_OK):
        return False
    try:
        path.write_text(termination_message(report), encoding="utf-8")
    except OSError:
        return False
    return True
