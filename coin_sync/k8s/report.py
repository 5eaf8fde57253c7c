"""What a pass leaves in Kubernetes: one Event, and its shard's status record.

The Event goes on the Job (or the Pod when no Job is known), with the uid when the
downward API gives it, since `kubectl describe job` lists only Events whose
involvedObject.uid is the Job's. Its message is `PassReport.one_line()` cut to the
API server's limit of 1024 bytes.

The status record is one key, ``shard-<index>``, of the ConfigMap STATUS_CONFIGMAP; its
value is a JSON object whose field names and values readers depend on (README, "Registro
de estado"). Two of them count failures differently:

- ``failed``: symbols whose status is "failed" (the backend refused them, or their
  retries ran out), as in the FIN line and the JSON summary;
- ``failed_total``: every symbol that did not sync and was tried, "failed" plus
  "interrupted" (cut off in flight by the shutdown grace): the length of
  ``failed_symbols`` before it is cut to its first 20.

After those, how current the shard's data is (``stale``, ``freshness_unknown``,
``max_lag_seconds``: null when no symbol's freshness is known) and the symbols' flags:
``rejected`` (of failed: the exchange does not know the symbol), ``pending_backfill``
(declared, still absent from /api/symbols; ``pending_backfill_symbols``: its first 20)
and ``held`` (of skipped: an earlier ambiguous sync may still run in the backend).
Last, the holes in the stored candles, which the backend never refills
(``symbols_with_gaps``, ``missing_minutes``; ``gap_symbols``: the first 20, each with
its ``missing_minutes``).

The same ConfigMap keeps each shard's ambiguous syncs under ``ambiguous-<index>``
(coin_sync/k8s/state.py). Shards write their own key with a merge patch, so they never overwrite each other.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from coin_sync.clock import Clock
from coin_sync.k8s.api import Conflict, KubeApi, NotFound
from coin_sync.k8s.loading import Identity
from coin_sync.outcome import EndReason, PassReport

COMPONENT = "coin-sync"
EVENT_MESSAGE_LIMIT = 1024  # bytes: the API server's limit on an Event note
STATUS_FAILED_LIMIT = 20
STATUS_ERROR_LIMIT = 300  # characters of one symbol's error in the status record


def fit_bytes(text: str, limit: int = EVENT_MESSAGE_LIMIT) -> str:
    """text, cut to `limit` bytes of UTF-8 (an ellipsis marks the cut)."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    # Non-ASCII symbols (币安人生USDT) make bytes outgrow characters; the API counts bytes.
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"


def plain_time(moment: datetime) -> str:
    """Time, as Event first/lastTimestamp: RFC 3339, seconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(report: PassReport, ident: Identity, now: datetime, holder: str | None = None) -> dict[str, Any]:
    """The pass's Event. holder: the live Lease holder, when this pass found the lock held:
    the Event is then SyncSkipped and names it, whatever ended the pass (a signal, say)."""
    if ident.job:
        involved = {"apiVersion": "batch/v1", "kind": "Job", "name": ident.job, "uid": ident.job_uid}
    else:
        involved = {"apiVersion": "v1", "kind": "Pod", "name": ident.pod, "uid": ident.pod_uid}
    involved = {k: v for k, v in involved.items() if v} | {"namespace": ident.namespace}
    message = report.one_line(limit=EVENT_MESSAGE_LIMIT)
    if holder is None:
        reason, kind = report.event()
    else:
        reason, kind = EndReason.LOCK_HELD.event(report.exit_code, any_ok=False)
        # Who held the lock is the first thing an operator asks about a skipped pass.
        message += f" holder={holder}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        # Named like client-go's recorder (<object>.<hex nanoseconds>): unique, sortable.
        "metadata": {"name": f"{involved['name']}.{time.time_ns():x}", "namespace": ident.namespace},
        "involvedObject": involved,
        "reason": reason,
        "type": kind,
        "message": fit_bytes(message),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": ident.pod,
        "firstTimestamp": plain_time(now),
        "lastTimestamp": plain_time(now),
        "count": 1,
    }


def status_record(report: PassReport, ident: Identity, now: datetime) -> dict[str, Any]:
    """The last pass of one shard, as stored under `shard-<index>`."""
    totals = report.totals()
    return {
        "shard": report.shard_index,
        "shard_count": report.shard_count,
        "pass_number": report.pass_number,
        "started_at": report.started_at,
        # A pass refused before it started (lock unavailable) has no times of its own.
        "finished_at": report.finished_at or now.astimezone(UTC).isoformat(timespec="seconds"),
        "exit_code": int(report.exit_code),
        "reason": report.reason.word,
        "ok": totals["ok"],
        "failed": totals["failed"],
        "skipped": totals["skipped"],
        "interrupted": totals["interrupted"],
        "new_records": totals["new_records"],
        "duration": totals["duration"],
        "pod": ident.pod,
        "job": ident.job,
        "failed_total": len(report.failures),
        "failed_symbols": report.failed_symbols(limit=STATUS_FAILED_LIMIT, error_chars=STATUS_ERROR_LIMIT),
        # Freshness and the symbols' flags, after the fields readers already use.
        "stale": totals["stale"],
        "freshness_unknown": totals["freshness_unknown"],
        "max_lag_seconds": totals["max_lag_seconds"],
        "rejected": totals["rejected"],
        "pending_backfill": totals["pending_backfill"],
        "pending_backfill_symbols": report.pending_backfill_symbols[:STATUS_FAILED_LIMIT],
        "held": totals["held"],
        # Completeness: holes the backend will never refill.
        "symbols_with_gaps": totals["symbols_with_gaps"],
        "missing_minutes": totals["missing_minutes"],
        "gap_symbols": [
            {"symbol": r.symbol, "missing_minutes": r.missing_minutes} for r in report.gaps[:STATUS_FAILED_LIMIT]
        ],
        "deferred": totals["deferred"],  # backfills left to the next pass by the exchange budget
    }


def write_keys(api: KubeApi, configmap: str, data: dict[str, str | None]) -> None:
    """Merge-patch these keys of `configmap` (None removes a key), creating it when there
    is none. Only these keys change: shards writing at once do not overwrite each other."""
    try:
        api.patch_configmap(configmap, {"data": data})
        return
    except NotFound:
        pass
    kept = {key: value for key, value in data.items() if value is not None}
    if not kept:
        return  # nothing to remove from a ConfigMap that does not exist
    labels = {"app.kubernetes.io/name": COMPONENT}
    meta = {"name": configmap, "namespace": api.namespace, "labels": labels}
    try:
        api.create_configmap({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": kept})
    except Conflict:  # another shard created it between our patch and our create
        api.patch_configmap(configmap, {"data": data})


class Reporter:
    """Posts the Event and writes the status record; API failures raise ApiError."""

    def __init__(self, api: KubeApi, ident: Identity, configmap: str, shard_index: int, clock: Clock) -> None:
        self._api = api
        self._ident = ident
        self._configmap = configmap
        self._key = f"shard-{shard_index}"  # this pass's shard, whatever report it is handed
        self._clock = clock

    def post_event(self, report: PassReport, holder: str | None = None) -> None:
        self._api.create_event(event_body(report, self._ident, self._clock.wall(), holder))

    def write_status(self, report: PassReport) -> None:
        record = status_record(report, self._ident, self._clock.wall())
        # Pretty JSON: `kubectl get -o yaml` shows it as a readable block, jq parses it.
        write_keys(self._api, self._configmap, {self._key: json.dumps(record, ensure_ascii=False, indent=2)})
