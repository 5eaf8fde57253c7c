"""What a pass leaves behind, against the API emulator: the Event (reason, type, object,
1024-byte message) and the status record (fields, shards, other keys kept), and the
README's jq table over it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from k8s_support import FAILED, JOB, OK, OK_REPORT, POD, SKIPPED, OpenGuard, events, make_report, status_data
from kube_api import CONFIGMAPS, NAMESPACE, ApiServer

from coin_sync.outcome import SKIP_AMBIGUOUS_HOLD, SKIP_DEFERRED, EndReason, PassReport, SymbolStatus

PLAIN_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
README = Path(__file__).resolve().parents[2] / "README.md"
SIGTERM = 15

# --- the Event -----------------------------------------------------------------------------


def test_event_fields(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    guard = guard_for()
    guard.acquire()
    report = make_report(*OK_REPORT)
    guard.finish(report)

    (event,) = events(apiserver)
    assert event["reason"] == "SyncSucceeded"
    assert event["type"] == "Normal"
    assert event["message"] == report.one_line()
    assert event["involvedObject"] == {"apiVersion": "batch/v1", "kind": "Job", "name": JOB, "namespace": NAMESPACE}
    assert event["metadata"]["name"].startswith(f"{JOB}.")
    assert event["source"] == {"component": "coin-sync"}
    assert event["reportingComponent"] == "coin-sync"
    assert event["reportingInstance"] == POD
    assert event["count"] == 1
    assert PLAIN_TIME.match(event["firstTimestamp"]) and event["firstTimestamp"] == event["lastTimestamp"]


def test_event_names_the_job_uid_when_the_downward_api_gives_it(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    # `kubectl describe job` lists only Events whose involvedObject.uid is the Job's.
    guard_for(JOB_UID="1234-abcd").finish(make_report(*OK_REPORT))
    assert events(apiserver)[0]["involvedObject"]["uid"] == "1234-abcd"


def test_event_on_the_pod_when_no_job_is_known(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    guard_for(JOB_NAME="", POD_UID="pod-uid-1").finish(make_report(*OK_REPORT))
    (event,) = events(apiserver)
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": POD,
        "uid": "pod-uid-1",
        "namespace": NAMESPACE,
    }


Case = tuple[tuple[tuple[str, SymbolStatus], ...], EndReason, int | None, tuple[str, str]]


@pytest.mark.parametrize(
    "case",
    [
        (OK_REPORT, EndReason.OK, None, ("SyncSucceeded", "Normal")),
        ((), EndReason.NOTHING_TO_SYNC, None, ("SyncSucceeded", "Normal")),
        ((("BTCUSDT", OK), ("ETHUSDT", FAILED)), EndReason.SYMBOLS_FAILED, None, ("SyncPartial", "Warning")),
        ((("BTCUSDT", FAILED), ("ETHUSDT", FAILED)), EndReason.SYMBOLS_FAILED, None, ("SyncFailed", "Warning")),
        ((("BTCUSDT", OK), ("ETHUSDT", SKIPPED)), EndReason.INTERRUPTED, SIGTERM, ("SyncPartial", "Warning")),
        ((), EndReason.LOCK_UNAVAILABLE, None, ("SyncFailed", "Warning")),
        ((), EndReason.BACKEND_UNAVAILABLE, None, ("BackendUnavailable", "Warning")),
        ((), EndReason.SYMBOLS_UNUSABLE, None, ("BackendUnavailable", "Warning")),
        ((("BTCUSDT", OK), ("ETHUSDT", SKIPPED)), EndReason.BACKEND_LOST, None, ("BackendUnavailable", "Warning")),
        ((), EndReason.LOCK_HELD, None, ("SyncSkipped", "Normal")),
        ((), EndReason.CRASHED, None, ("SyncFailed", "Warning")),
    ],
)
def test_event_reason_and_type(apiserver: ApiServer, guard_for: OpenGuard, case: Case) -> None:
    results, reason, signum, expected = case
    guard_for().finish(make_report(*results, reason=reason, signum=signum))
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == expected


def test_event_message_names_the_first_failures_and_fits_1024_bytes(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    failed = [(f"币安人生{i:03d}USDT", FAILED) for i in range(60)]
    report = make_report(("BTCUSDT", OK), *failed, reason=EndReason.SYMBOLS_FAILED)
    for result in report.results[1:]:
        result.error = "HTTP 500: " + "respuesta del backend muy larga " * 10
    guard_for().finish(report)

    (event,) = events(apiserver)
    message = event["message"]
    assert len(message.encode("utf-8")) <= 1024
    assert len(message) > 300  # cut to the limit, not far below it
    assert "ok=1 failed=60" in message and "first_failed=币安人生000USDT" in message
    assert "\n" not in message


# --- the status record -----------------------------------------------------------------------


def test_status_record_fields(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    failed = [(f"SYM{i:02d}USDT", FAILED) for i in range(25)]
    report = make_report(("BTCUSDT", OK), ("ETHUSDT", SKIPPED), *failed, reason=EndReason.SYMBOLS_FAILED)
    report.results[-1].status = SymbolStatus.INTERRUPTED  # in flight when the grace ran out
    guard = guard_for()
    guard.acquire()
    guard.finish(report)

    record = status_data(apiserver)["shard-0"]
    assert list(record) == [
        "shard", "shard_count", "pass_number", "started_at", "finished_at", "exit_code", "reason", "ok", "failed",
        "skipped", "interrupted", "new_records", "duration", "pod", "job", "failed_total", "failed_symbols",
        *NEW_FIELDS,
    ]  # fmt: skip
    assert {k: v for k, v in record.items() if k not in NEW_FIELDS} | {"failed_symbols": None} == {
        "shard": 0,
        "shard_count": 1,
        "pass_number": 1,
        "started_at": "2025-06-01T10:00:00+00:00",
        "finished_at": "2025-06-01T10:00:02+00:00",
        "exit_code": 1,
        "reason": "symbols_failed",
        "ok": 1,
        "failed": 24,  # status "failed" only
        "skipped": 1,
        "interrupted": 1,
        "new_records": 7,
        "duration": 2.345,
        "pod": POD,
        "job": JOB,
        "failed_total": 25,  # failed + interrupted: all of failed_symbols before the cut to 20
        "failed_symbols": None,
    }
    assert len(record["failed_symbols"]) == 20
    assert record["failed_symbols"][0] == {"symbol": "SYM00USDT", "error": "HTTP 400: símbolo SYM00USDT desconocido"}
    configmap = apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]
    assert configmap["metadata"]["labels"] == {"app.kubernetes.io/name": "coin-sync"}


# Issue 9's freshness, issue 12's flags, issue 19's holes and issue 18's deferred, appended after the fields
# readers already use.
NEW_FIELDS = (
    "stale", "freshness_unknown", "max_lag_seconds", "rejected", "pending_backfill", "pending_backfill_symbols", "held",
    "symbols_with_gaps", "missing_minutes", "gap_symbols", "deferred",
)  # fmt: skip


def test_status_record_carries_freshness_and_the_symbols_flags(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    declared = [(f"NEW{i:02d}USDT", FAILED) for i in range(22)]
    report = make_report(
        ("BTCUSDT", OK), ("ETHUSDT", OK), ("XRPUSDT", SKIPPED), ("BTCUSTD", FAILED), ("SOLUSDT", SKIPPED), *declared,
        reason=EndReason.SYMBOLS_FAILED,
    )  # fmt: skip
    btc, eth, xrp, typo, sol, *new = report.results
    btc.lag_seconds, btc.stale = 900.0, True
    eth.lag_seconds = 12.5
    xrp.skip_reason = SKIP_AMBIGUOUS_HOLD
    sol.skip_reason = SKIP_DEFERRED
    typo.rejected = True
    for result in new:
        result.pending_backfill = True
    guard_for().finish(report)

    record = status_data(apiserver)["shard-0"]
    assert {k: record[k] for k in NEW_FIELDS} == {
        "stale": 1,
        "freshness_unknown": 25,  # all but BTCUSDT and ETHUSDT
        "max_lag_seconds": 900.0,
        "rejected": 1,
        "pending_backfill": 22,
        "pending_backfill_symbols": [f"NEW{i:02d}USDT" for i in range(20)],  # cut like failed_symbols
        "held": 1,
        "symbols_with_gaps": 0,
        "missing_minutes": 0,
        "gap_symbols": [],
        "deferred": 1,
    }
    assert (record["failed"], record["skipped"], record["failed_total"]) == (23, 2, 23)  # unchanged meanings


def test_status_record_and_event_carry_the_holes(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    holed = [(f"GAP{i:02d}USDT", OK) for i in range(22)]
    report = make_report(("BTCUSDT", OK), ("ETHUSDT", FAILED), *holed, reason=EndReason.SYMBOLS_FAILED)
    btc, _eth, *gaps = report.results
    btc.missing_minutes = 0  # complete; ETHUSDT unknown (None)
    for i, result in enumerate(gaps):
        result.missing_minutes = i + 1
    guard_for().finish(report)

    record = status_data(apiserver)["shard-0"]
    assert (record["symbols_with_gaps"], record["missing_minutes"]) == (22, sum(range(1, 23)))
    assert record["gap_symbols"] == [{"symbol": f"GAP{i:02d}USDT", "missing_minutes": i + 1} for i in range(20)]
    (event,) = events(apiserver)
    assert "symbols_with_gaps=22 missing_minutes=253" in event["message"]


def test_status_max_lag_is_null_when_no_freshness_is_known(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    guard_for().finish(make_report(*OK_REPORT))
    record = status_data(apiserver)["shard-0"]
    assert (record["stale"], record["freshness_unknown"], record["max_lag_seconds"]) == (0, 3, None)
    assert record["pending_backfill_symbols"] == [] and record["held"] == record["rejected"] == 0


def test_status_of_a_refused_pass_still_has_a_time(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    guard_for().finish(PassReport(1, started_at="", reason=EndReason.LOCK_UNAVAILABLE))
    record = status_data(apiserver)["shard-0"]
    assert (record["exit_code"], record["reason"]) == (3, "lock_unavailable")
    assert abs((datetime.now(UTC) - datetime.fromisoformat(record["finished_at"])).total_seconds()) < 5


def test_status_update_keeps_other_keys(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    apiserver.put(
        CONFIGMAPS,
        NAMESPACE,
        {"metadata": {"name": "coin-sync-status"}, "data": {"shard-3": '{"exit_code": 0}', "note": "manual"}},
    )
    guard_for().finish(make_report(*OK_REPORT))
    guard_for().finish(make_report(("BTCUSDT", FAILED), reason=EndReason.SYMBOLS_FAILED))

    data = apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]["data"]
    assert set(data) == {"shard-0", "shard-3", "note"}
    assert json.loads(data["shard-0"])["exit_code"] == 1  # the last pass wins its own key


def test_shards_write_their_own_key(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    shard0 = guard_for(SHARD_COUNT=2, SHARD_INDEX=0)
    shard1 = guard_for(SHARD_COUNT=2, SHARD_INDEX=1, POD_NAME="coin-sync-29000000-fghij")
    shard0.acquire()
    shard1.acquire()

    shard0.finish(make_report(("BTCUSDT", OK), shard_index=0, shard_count=2))
    shard1.finish(make_report(("ETHUSDT", FAILED), reason=EndReason.SYMBOLS_FAILED, shard_index=1, shard_count=2))

    data = status_data(apiserver)
    assert set(data) == {"shard-0", "shard-1"}
    assert (data["shard-0"]["exit_code"], data["shard-0"]["pod"]) == (0, POD)
    assert (data["shard-1"]["exit_code"], data["shard-1"]["pod"]) == (1, "coin-sync-29000000-fghij")


def readme_jq_program() -> str:
    """The jq program of README's status table: the one users copy, kept in one place."""
    (line,) = [
        line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("kubectl get configmap")
        and "| jq -r '" in line and line.endswith("| column -t")
    ]  # fmt: skip
    match = re.fullmatch(r"kubectl get configmap coin-sync-status -o json \| jq -r '(.*)' \| column -t", line)
    assert match is not None, line
    return match.group(1)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq not installed")
def test_readme_status_table(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    """README's `kubectl ... | jq ... | column -t`, fed the ConfigMap as kubectl prints it:
    one row per shard in shard order (10 after 2), keys that are not shards ignored."""
    apiserver.put(CONFIGMAPS, NAMESPACE, {"metadata": {"name": "coin-sync-status"}, "data": {"note": "manual"}})
    guard_for(SHARD_COUNT=11, SHARD_INDEX=10).finish(make_report(*OK_REPORT, shard_index=10, shard_count=11))
    guard_for(SHARD_COUNT=11, SHARD_INDEX=2).finish(
        make_report(("BTCUSDT", FAILED), reason=EndReason.SYMBOLS_FAILED, shard_index=2, shard_count=11)
    )
    configmap = apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]

    table = subprocess.run(
        ["jq", "-r", readme_jq_program()], input=json.dumps(configmap), text=True, capture_output=True, check=True
    ).stdout.splitlines()

    assert [row.split("\t") for row in table] == [
        ["SHARD", "FIN", "SALIDA", "MOTIVO", "OK", "FALLOS", "OMITIDOS", "NUEVOS", "DURACION", "POD"],
        ["2", "2025-06-01T10:00:02+00:00", "1", "symbols_failed", "0", "1", "0", "0", "2.345", POD],
        ["10", "2025-06-01T10:00:02+00:00", "0", "ok", "3", "0", "0", "21", "2.345", POD],
    ]
