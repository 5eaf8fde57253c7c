"""coin_sync.k8s against the API emulator, method by method: the Lease lock (acquire,
renew, release, takeover, races), the Event, the status record, and failing open."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kube_api import CONFIGMAPS, EVENTS, LEASES, NAMESPACE, ApiServer, lease_body, write_kubeconfig

from coin_sync import k8s
from coin_sync.config import Settings
from coin_sync.k8s import KubeGuard, LockOutcome, PassGuard, open_guard
from coin_sync.summary import (
    REASON_BACKEND_DOWN,
    REASON_BACKEND_LOST,
    REASON_FAILED,
    REASON_INTERRUPTED,
    REASON_LOCK_HELD,
    REASON_LOCK_UNAVAILABLE,
    REASON_OK,
    REASON_SYMBOLS_UNUSABLE,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    PassReport,
    SymbolResult,
)

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PLAIN_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ROOT = Path(__file__).resolve().parents[2]


def make_report(*results: tuple[str, str], reason: str = REASON_OK, exit_code: int = 0,
                shard_index: int = 0, shard_count: int = 1) -> PassReport:
    """results: (symbol, status); failed ones get an error, ok ones 7 new records."""
    return PassReport(
        pass_number=1,
        started_at="2025-06-01T10:00:00+00:00",
        finished_at="2025-06-01T10:00:02+00:00",
        duration=2.345,
        exit_code=exit_code,
        reason=reason,
        shard_index=shard_index,
        shard_count=shard_count,
        results=[
            SymbolResult(symbol, status, new_records=7 if status == STATUS_OK else 0, attempts=1, duration=0.1,
                         error=f"HTTP 400: símbolo {symbol} desconocido" if status == STATUS_FAILED else None)
            for symbol, status in results
        ],
    )


OK_REPORT = (("BTCUSDT", STATUS_OK), ("ETHUSDT", STATUS_OK), ("BNBUSDT", STATUS_OK))


@pytest.fixture
def guard_for(kubeconfig: Path, make_settings: Callable[..., Settings],
              log: logging.Logger) -> Iterator[Callable[..., PassGuard]]:
    """Open a guard against the emulator; every guard opened is finished at teardown
    (so no renew thread outlives its test)."""
    opened: list[PassGuard] = []

    def open_one(**overrides: Any) -> PassGuard:
        guard = open_guard(make_settings(**overrides), log, {"KUBECONFIG": str(kubeconfig)})
        opened.append(guard)
        return guard

    yield open_one
    for guard in opened:
        if isinstance(guard, KubeGuard):
            guard._stop_renewing()


def leases(api: ApiServer) -> dict[str, dict[str, Any]]:
    return api.objects(LEASES, NAMESPACE)


def events(api: ApiServer) -> list[dict[str, Any]]:
    return list(api.objects(EVENTS, NAMESPACE).values())


def status_data(api: ApiServer, name: str = "coin-sync-status") -> dict[str, Any]:
    configmap = api.objects(CONFIGMAPS, NAMESPACE).get(name)
    assert configmap is not None, "no status ConfigMap"
    return {key: json.loads(value) for key, value in configmap["data"].items()}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- the lock ------------------------------------------------------------------------------


def test_acquire_creates_the_lease_with_the_full_record(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    guard = guard_for()
    assert isinstance(guard, KubeGuard)

    assert guard.acquire() == LockOutcome("acquired")

    lease = leases(apiserver)["coin-sync-lock"]
    spec = lease["spec"]
    assert spec["holderIdentity"] == guard.holder
    assert guard.holder.startswith("coin-sync-29000000-abcde_")
    assert spec["leaseDurationSeconds"] == 60
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.match(spec["acquireTime"]) and MICRO_TIME.match(spec["renewTime"])
    renewed = datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - renewed).total_seconds()) < 5
    # Created, never blindly overwritten.
    assert [(m, n) for m, p, n in apiserver.requests() if p == "leases"] == [("GET", "coin-sync-lock"),
                                                                             ("POST", None)]


def test_renews_every_third_of_the_duration_and_stays_held(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    guard = guard_for(lease_duration_seconds=1)
    assert isinstance(guard, KubeGuard)
    assert guard.acquire().state == "acquired"
    first = leases(apiserver)["coin-sync-lock"]

    time.sleep(1.3)  # longer than the lease itself: only renewals keep it alive

    puts = [r for r in apiserver.requests() if r[:2] == ("PUT", "leases")]
    assert 2 <= len(puts) <= 5  # every ~0.33 s
    now = leases(apiserver)["coin-sync-lock"]
    assert now["spec"]["holderIdentity"] == guard.holder
    assert now["spec"]["renewTime"] > first["spec"]["renewTime"]
    assert now["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert int(now["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    # Someone else arriving now still finds a live holder.
    assert guard_for(pod_name="other-pod").acquire() == LockOutcome("held", guard.holder)


def test_finish_releases_the_lease_and_the_next_pass_takes_it(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard], caplog: pytest.LogCaptureFixture) -> None:
    first = guard_for()
    assert first.acquire().state == "acquired"
    first.finish(make_report(*OK_REPORT))

    spec = leases(apiserver)["coin-sync-lock"]["spec"]
    assert "holderIdentity" not in spec  # cleared
    assert spec["leaseTransitions"] == 0
    assert not warnings(caplog)

    second = guard_for(pod_name="next-pod")
    assert isinstance(second, KubeGuard)
    assert second.acquire() == LockOutcome("acquired")
    spec = leases(apiserver)["coin-sync-lock"]["spec"]
    assert spec["holderIdentity"] == second.holder
    assert spec["leaseTransitions"] == 1


def test_no_renewal_after_finish(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    guard = guard_for(lease_duration_seconds=1)
    guard.acquire()
    guard.finish(make_report(*OK_REPORT))
    count = len(apiserver.requests())
    time.sleep(0.5)
    assert len(apiserver.requests()) == count
    assert "holderIdentity" not in leases(apiserver)["coin-sync-lock"]["spec"]


def test_takes_over_an_expired_lease(apiserver: ApiServer, guard_for: Callable[..., PassGuard],
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=61, transitions=3))
    guard = guard_for()
    assert isinstance(guard, KubeGuard)

    assert guard.acquire() == LockOutcome("acquired")

    lease = leases(apiserver)["coin-sync-lock"]
    assert lease["spec"]["holderIdentity"] == guard.holder
    assert lease["spec"]["leaseTransitions"] == 4
    assert lease["metadata"]["uid"] == "uid-of-coin-sync-lock"  # replaced, not recreated
    assert any("killed-pod_1" in r.getMessage() for r in caplog.records)


def test_expiry_uses_the_holders_own_duration(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    # Renewed 61 s ago but its holder asked for 300 s: still alive, whatever our duration.
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "slow-pod_1", renewed_ago=61, duration=300))
    assert guard_for(lease_duration_seconds=60).acquire() == LockOutcome("held", "slow-pod_1")


def test_a_live_holder_means_held_and_nothing_is_written(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "busy-pod_7", renewed_ago=10))
    before = leases(apiserver)["coin-sync-lock"]
    guard = guard_for()

    assert guard.acquire() == LockOutcome("held", "busy-pod_7")
    guard.finish(make_report(reason=REASON_LOCK_HELD))

    assert leases(apiserver)["coin-sync-lock"] == before  # neither taken nor released
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == ("SyncSkipped", "Normal")
    assert "reason=lock_held" in event["message"] and event["message"].endswith(" holder=busy-pod_7")
    assert "coin-sync-status" not in apiserver.objects(CONFIGMAPS, NAMESPACE)  # a skip is not a pass


def test_losing_the_create_race_means_held(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    """Both read "no Lease"; the other creates it first; our create gets 409."""
    winner, loser = guard_for(pod_name="winner"), guard_for(pod_name="loser")
    assert isinstance(winner, KubeGuard) and isinstance(loser, KubeGuard)
    _between_read_and_write(loser, winner.acquire)

    assert loser.acquire() == LockOutcome("held", winner.holder)
    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == winner.holder


def test_losing_the_takeover_race_means_held(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    """Both read the same expired Lease; the other replaces it first; our PUT carries the
    resourceVersion we read, now stale, and gets 409 instead of overwriting the winner."""
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=600))
    winner, loser = guard_for(pod_name="winner"), guard_for(pod_name="loser")
    assert isinstance(winner, KubeGuard) and isinstance(loser, KubeGuard)
    _between_read_and_write(loser, winner.acquire)

    assert loser.acquire() == LockOutcome("held", winner.holder)
    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == winner.holder
    assert [r for r in apiserver.requests() if r[0] == "PUT"] == [("PUT", "leases", "coin-sync-lock")] * 2


def test_a_lease_deleted_between_read_and_takeover_is_created_afresh(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=600))
    guard = guard_for()
    assert isinstance(guard, KubeGuard)
    api, real_get = guard._api, guard._api.get_lease

    def get_then_deleted(name: str) -> dict[str, Any] | None:
        lease = real_get(name)
        apiserver.remove(LEASES, NAMESPACE, "coin-sync-lock")
        return lease

    api.get_lease = get_then_deleted  # type: ignore[method-assign]
    assert guard.acquire() == LockOutcome("acquired")
    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == guard.holder
    writes = [r[0] for r in apiserver.requests() if r[1] == "leases" and r[0] != "GET"]
    assert writes == ["PUT", "POST"]  # the takeover met a 404, then a fresh create
    guard.finish(make_report(*OK_REPORT))


def test_finish_releases_the_lease_before_anything_else(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    # After SIGTERM the pod can be killed at any moment: the Lease matters most.
    guard = guard_for()
    assert guard.acquire().state == "acquired"
    before = len(apiserver.requests())
    guard.finish(make_report(*OK_REPORT))
    after = [(method, plural) for method, plural, _ in apiserver.requests()[before:]]
    assert after[0] == ("PUT", "leases")
    assert after.index(("PUT", "leases")) < after.index(("PATCH", "configmaps")) < after.index(("POST", "events"))


def _between_read_and_write(guard: KubeGuard, competitor: Callable[[], LockOutcome]) -> None:
    """Make `competitor` win right after `guard`'s first read of the Lease."""
    api = guard._api
    real_get = api.get_lease
    calls = 0

    def get_then_lose(name: str) -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        lease = real_get(name)
        if calls == 1:
            assert competitor().state == "acquired"
        return lease

    api.get_lease = get_then_lose  # type: ignore[method-assign]


def test_a_lease_taken_away_is_not_renewed_nor_released(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard], caplog: pytest.LogCaptureFixture) -> None:
    guard = guard_for(lease_duration_seconds=1)
    guard.acquire()
    # An operator (or a pass that judged us dead) took it.
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "thief_1", renewed_ago=0))
    time.sleep(0.6)

    assert any("Cerrojo perdido" in w and "thief_1" in w for w in warnings(caplog))
    guard.finish(make_report(*OK_REPORT))
    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == "thief_1"


def test_shards_have_their_own_lease_and_share_the_status_configmap(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    shard0 = guard_for(shard_count=2, shard_index=0)
    shard1 = guard_for(shard_count=2, shard_index=1, pod_name="coin-sync-29000000-fghij")

    assert shard0.acquire().state == "acquired"
    assert shard1.acquire().state == "acquired"
    assert set(leases(apiserver)) == {"coin-sync-lock-0", "coin-sync-lock-1"}

    shard0.finish(make_report(("BTCUSDT", STATUS_OK), shard_index=0, shard_count=2))
    shard1.finish(make_report(("ETHUSDT", STATUS_FAILED), reason=REASON_FAILED, exit_code=1,
                              shard_index=1, shard_count=2))
    data = status_data(apiserver)
    assert set(data) == {"shard-0", "shard-1"}
    assert (data["shard-0"]["exit_code"], data["shard-0"]["pod"]) == (0, "coin-sync-29000000-abcde")
    assert (data["shard-1"]["exit_code"], data["shard-1"]["pod"]) == (1, "coin-sync-29000000-fghij")


# --- Events and the status record ----------------------------------------------------------


def test_event_fields(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    guard = guard_for()
    guard.acquire()
    report = make_report(*OK_REPORT)
    guard.finish(report)

    (event,) = events(apiserver)
    assert event["reason"] == "SyncSucceeded"
    assert event["type"] == "Normal"
    assert event["message"] == report.one_line()
    assert event["involvedObject"] == {"apiVersion": "batch/v1", "kind": "Job", "name": "coin-sync-29000000",
                                       "namespace": NAMESPACE}
    assert event["metadata"]["name"].startswith("coin-sync-29000000.")
    assert event["source"] == {"component": "coin-sync"}
    assert event["reportingComponent"] == "coin-sync"
    assert event["reportingInstance"] == "coin-sync-29000000-abcde"
    assert event["count"] == 1
    assert PLAIN_TIME.match(event["firstTimestamp"]) and event["firstTimestamp"] == event["lastTimestamp"]


def test_event_names_the_job_uid_when_the_downward_api_gives_it(
        apiserver: ApiServer, kubeconfig: Path, make_settings: Callable[..., Settings],
        log: logging.Logger) -> None:
    # `kubectl describe job` lists only Events whose involvedObject.uid is the Job's.
    guard = open_guard(make_settings(job_uid="1234-abcd"), log, {"KUBECONFIG": str(kubeconfig)})
    guard.finish(make_report(*OK_REPORT))
    assert events(apiserver)[0]["involvedObject"]["uid"] == "1234-abcd"


def test_event_on_the_pod_when_no_job_is_known(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    guard = guard_for(job_name="")
    guard.finish(make_report(*OK_REPORT))
    (event,) = events(apiserver)
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "coin-sync-29000000-abcde",
                                       "namespace": NAMESPACE}


@pytest.mark.parametrize("case", [
    (OK_REPORT, REASON_OK, 0, ("SyncSucceeded", "Normal")),
    ((), "nothing_to_sync", 0, ("SyncSucceeded", "Normal")),
    ((("BTCUSDT", STATUS_OK), ("ETHUSDT", STATUS_FAILED)), REASON_FAILED, 1, ("SyncPartial", "Warning")),
    ((("BTCUSDT", STATUS_FAILED), ("ETHUSDT", STATUS_FAILED)), REASON_FAILED, 1, ("SyncFailed", "Warning")),
    ((("BTCUSDT", STATUS_OK), ("ETHUSDT", STATUS_SKIPPED)), REASON_INTERRUPTED, 143, ("SyncPartial", "Warning")),
    ((), REASON_LOCK_UNAVAILABLE, 3, ("SyncFailed", "Warning")),
    ((), REASON_BACKEND_DOWN, 3, ("BackendUnavailable", "Warning")),
    ((), REASON_SYMBOLS_UNUSABLE, 3, ("BackendUnavailable", "Warning")),
    ((("BTCUSDT", STATUS_OK), ("ETHUSDT", STATUS_SKIPPED)), REASON_BACKEND_LOST, 3, ("BackendUnavailable", "Warning")),
    ((), REASON_LOCK_HELD, 0, ("SyncSkipped", "Normal")),
])
def test_event_reason_and_type(apiserver: ApiServer, guard_for: Callable[..., PassGuard],
                               case: tuple[tuple[tuple[str, str], ...], str, int, tuple[str, str]]) -> None:
    results, reason, exit_code, expected = case
    guard_for().finish(make_report(*results, reason=reason, exit_code=exit_code))
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == expected


def test_event_message_names_the_first_failures_and_fits_1024_bytes(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    failed = [(f"币安人生{i:03d}USDT", STATUS_FAILED) for i in range(60)]
    report = make_report(("BTCUSDT", STATUS_OK), *failed, reason=REASON_FAILED, exit_code=1)
    for result in report.results[1:]:
        result.error = "HTTP 500: " + "respuesta del backend muy larga " * 10
    guard_for().finish(report)

    (event,) = events(apiserver)
    message = event["message"]
    assert len(message.encode("utf-8")) <= 1024
    assert "ok=1 failed=60" in message and "first_failed=币安人生000USDT" in message
    assert "\n" not in message


def test_status_record_fields(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    failed = [(f"SYM{i:02d}USDT", STATUS_FAILED) for i in range(25)]
    report = make_report(("BTCUSDT", STATUS_OK), ("ETHUSDT", STATUS_SKIPPED), *failed,
                         reason=REASON_FAILED, exit_code=1)
    guard = guard_for()
    guard.acquire()
    guard.finish(report)

    record = status_data(apiserver)["shard-0"]
    assert record == record | {
        "shard": 0, "shard_count": 1, "finished_at": "2025-06-01T10:00:02+00:00", "exit_code": 1,
        "reason": "symbols_failed", "ok": 1, "failed": 25, "skipped": 1, "new_records": 7,
        "duration": 2.345, "pod": "coin-sync-29000000-abcde", "job": "coin-sync-29000000", "failed_total": 25,
    }
    assert len(record["failed_symbols"]) == 20
    assert record["failed_symbols"][0] == {"symbol": "SYM00USDT", "error": "HTTP 400: símbolo SYM00USDT desconocido"}
    configmap = apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]
    assert configmap["metadata"]["labels"] == {"app.kubernetes.io/name": "coin-sync"}


def test_status_of_a_refused_pass_still_has_a_time(apiserver: ApiServer,
                                                     guard_for: Callable[..., PassGuard]) -> None:
    report = PassReport(1, started_at="", reason=REASON_LOCK_UNAVAILABLE, exit_code=3)
    guard_for().finish(report)
    record = status_data(apiserver)["shard-0"]
    assert (record["exit_code"], record["reason"]) == (3, "lock_unavailable")
    assert abs((datetime.now(UTC) - datetime.fromisoformat(record["finished_at"])).total_seconds()) < 5


def test_status_update_keeps_other_keys(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    apiserver.put(CONFIGMAPS, NAMESPACE, {"metadata": {"name": "coin-sync-status"},
                                          "data": {"shard-3": '{"exit_code": 0}', "note": "manual"}})
    guard_for().finish(make_report(*OK_REPORT))
    guard_for().finish(make_report(("BTCUSDT", STATUS_FAILED), reason=REASON_FAILED, exit_code=1))

    data = apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]["data"]
    assert set(data) == {"shard-0", "shard-3", "note"}
    assert json.loads(data["shard-0"])["exit_code"] == 1  # the last pass wins its own key


@pytest.mark.skipif(not Path("/usr/bin/jq").exists() and not Path("/usr/local/bin/jq").exists(),
                    reason="jq not installed")
def test_documented_table_one_liner(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    """The README's `kubectl ... | jq ... | column -t`, fed the ConfigMap as kubectl prints it:
    one row per shard in shard order (10 after 2), keys that are not shards ignored."""
    apiserver.put(CONFIGMAPS, NAMESPACE, {"metadata": {"name": "coin-sync-status"}, "data": {"note": "manual"}})
    guard_for(shard_count=11, shard_index=10).finish(make_report(*OK_REPORT, shard_index=10, shard_count=11))
    guard_for(shard_count=11, shard_index=2).finish(
        make_report(("BTCUSDT", STATUS_FAILED), reason=REASON_FAILED, exit_code=1, shard_index=2, shard_count=11))
    configmap = apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]
    program = re.search(r"jq -r '(.*?)' \|", " ".join((k8s.__doc__ or "").split()), re.S)
    assert program is not None

    table = subprocess.run(["jq", "-r", program.group(1)], input=json.dumps(configmap), text=True,
                           capture_output=True, check=True).stdout.splitlines()

    assert [row.split("\t") for row in table] == [
        ["SHARD", "FIN", "SALIDA", "MOTIVO", "OK", "FALLOS", "OMITIDOS", "NUEVOS", "DURACION", "POD"],
        ["2", "2025-06-01T10:00:02+00:00", "1", "symbols_failed", "0", "1", "0", "0", "2.345",
         "coin-sync-29000000-abcde"],
        ["10", "2025-06-01T10:00:02+00:00", "0", "ok", "3", "0", "0", "21", "2.345", "coin-sync-29000000-abcde"],
    ]


# --- failing open ----------------------------------------------------------------------------


def test_api_down_is_unavailable_with_one_warning_and_no_delay(
        tmp_path: Path, make_settings: Callable[..., Settings], log: logging.Logger, free_port: int,
        caplog: pytest.LogCaptureFixture) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port}")
    guard = open_guard(make_settings(), log, {"KUBECONFIG": str(kubeconfig)})
    started = time.monotonic()

    outcome = guard.acquire()
    guard.finish(make_report(*OK_REPORT))

    assert outcome.state == "unavailable"
    assert "inalcanzable" in outcome.detail and str(free_port) in outcome.detail
    (warning,) = warnings(caplog)  # acquire's; finish does not retry a dead API
    assert "la pasada sigue sin cerrojo" in warning
    assert time.monotonic() - started < 3


def test_api_down_with_lock_required_says_the_pass_will_not_run(
        tmp_path: Path, make_settings: Callable[..., Settings], log: logging.Logger, free_port: int,
        caplog: pytest.LogCaptureFixture) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port}")
    guard = open_guard(make_settings(k8s_lock_required=True), log, {"KUBECONFIG": str(kubeconfig)})
    assert guard.acquire().state == "unavailable"
    (warning,) = warnings(caplog)
    assert "K8S_LOCK_REQUIRED=true" in warning and "salida 3" in warning


def test_black_holed_api_times_out(tmp_path: Path, make_settings: Callable[..., Settings], log: logging.Logger,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections but never answers must not hang the pass."""
    monkeypatch.setattr(k8s, "REQUEST_TIMEOUT", (0.5, 0.5))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{silent.getsockname()[1]}")
        guard = open_guard(make_settings(), log, {"KUBECONFIG": str(kubeconfig)})
        started = time.monotonic()
        outcome = guard.acquire()
        guard.finish(make_report(*OK_REPORT))
        elapsed = time.monotonic() - started
    assert outcome.state == "unavailable"
    assert "timed out" in outcome.detail.lower()
    assert elapsed < 2


@pytest.mark.parametrize("verb", ["get", "create"])
def test_forbidden_names_the_missing_verb(apiserver: ApiServer, guard_for: Callable[..., PassGuard],
                                          caplog: pytest.LogCaptureFixture, verb: str) -> None:
    apiserver.emulator.forbidden = {(verb, "leases")}
    guard = guard_for()
    outcome = guard.acquire()
    assert outcome.state == "unavailable"
    what = f'leases.coordination.k8s.io "coin-sync-lock" en el namespace "{NAMESPACE}"'
    assert f'falta el verbo "{verb}" sobre {what}' in outcome.detail
    assert "403" in outcome.detail
    (warning,) = warnings(caplog)
    assert outcome.detail in warning

    guard.finish(make_report(*OK_REPORT))  # Events are still allowed: posted, no new warning
    assert len(warnings(caplog)) == 1
    assert events(apiserver)[0]["reason"] == "SyncSucceeded"


def test_update_forbidden_on_an_expired_lease(apiserver: ApiServer, guard_for: Callable[..., PassGuard]) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=600))
    apiserver.emulator.forbidden = {("update", "leases")}
    outcome = guard_for().acquire()
    assert outcome.state == "unavailable" and 'falta el verbo "update"' in outcome.detail


def test_failed_event_and_status_are_one_warning_each_never_an_exception(
        apiserver: ApiServer, guard_for: Callable[..., PassGuard], caplog: pytest.LogCaptureFixture) -> None:
    apiserver.emulator.forbidden = {("create", "events"), ("patch", "configmaps")}
    guard = guard_for()
    assert guard.acquire().state == "acquired"

    guard.finish(make_report(*OK_REPORT))  # must not raise

    messages = warnings(caplog)
    assert len(messages) == 2
    assert 'falta el verbo "patch" sobre configmaps "coin-sync-status"' in messages[0]
    assert 'falta el verbo "create" sobre events' in messages[1]
    assert "holderIdentity" not in leases(apiserver)["coin-sync-lock"]["spec"]  # still released


def test_unloadable_kubeconfig_is_unavailable(tmp_path: Path, make_settings: Callable[..., Settings],
                                              log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    guard = open_guard(make_settings(), log, {"KUBECONFIG": str(tmp_path / "missing")})
    outcome = guard.acquire()
    assert outcome.state == "unavailable" and "configuración" in outcome.detail
    assert len(warnings(caplog)) == 1
    guard.finish(make_report(*OK_REPORT))


@pytest.mark.parametrize("case", [
    ("on", False, "unavailable"),
    ("auto", True, "unavailable"),  # the operator asked for the lock: say it cannot be had
    ("auto", False, "inactive"),  # a pod deliberately without a token: nothing to warn about
])
def test_in_cluster_without_a_token(make_settings: Callable[..., Settings], log: logging.Logger,
                                    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                    case: tuple[str, bool, str]) -> None:
    mode, required, state = case
    monkeypatch.setattr(k8s, "SA_TOKEN_FILE", "/nonexistent/serviceaccount/token")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    guard = open_guard(make_settings(k8s_integration=mode, k8s_lock_required=required), log, env)
    outcome = guard.acquire()
    assert outcome.state == state
    if state == "unavailable":
        assert "token" in outcome.detail.lower()
        assert len(warnings(caplog)) == 1
    else:
        assert not warnings(caplog)


@pytest.mark.parametrize(("mode", "env"), [
    ("off", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}),
    ("auto", {}),
    ("auto", {"KUBERNETES_SERVICE_HOST": " "}),
])
def test_inactive_guard(make_settings: Callable[..., Settings], log: logging.Logger, mode: str,
                        env: dict[str, str]) -> None:
    guard = open_guard(make_settings(k8s_integration=mode), log, env)
    assert type(guard) is PassGuard
    assert guard.acquire() == LockOutcome("inactive")
    guard.finish(make_report(*OK_REPORT))


def test_importing_and_an_inactive_guard_never_import_kubernetes() -> None:
    code = (
        "import logging, sys\n"
        "from coin_sync.config import Settings\n"
        "from coin_sync.k8s import open_guard\n"
        "guard = open_guard(Settings(), logging.getLogger(), {})\n"
        "print(guard.acquire().state, any(m.split('.')[0] == 'kubernetes' for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["inactive", "False"]


def test_namespace_fallbacks(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
                             tmp_path: Path) -> None:
    sa_file = tmp_path / "namespace"
    monkeypatch.setattr(k8s, "SA_NAMESPACE_FILE", sa_file)
    settings = make_settings(pod_namespace="")
    assert k8s.resolve_identity(settings, "from-kubeconfig").namespace == "from-kubeconfig"
    assert k8s.resolve_identity(settings).namespace == "default"
    sa_file.write_text("from-sa\n")
    assert k8s.resolve_identity(settings, "from-kubeconfig").namespace == "from-sa"
    assert k8s.resolve_identity(make_settings()).namespace == NAMESPACE
    assert k8s.resolve_identity(make_settings(pod_name="")).pod == socket.gethostname()
