"""The guard a pass holds, against the API emulator: the finish order, the lock-held
rule, failing open (API down, black-holed, forbidden, no config), and which guard
open_guard picks, without importing `kubernetes` when none is needed."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from k8s_support import (
    OK_REPORT,
    OpenGuard,
    events,
    leases,
    make_report,
    settings_and_env,
    warnings,
)
from kube_api import CONFIGMAPS, LEASES, NAMESPACE, ApiServer, lease_body, write_kubeconfig

from coin_sync.k8s.api import ApiTimeouts
from coin_sync.k8s.guard import NullGuard, UnavailableGuard
from coin_sync.k8s.loading import identity_from
from coin_sync.locks.cluster import ServiceAccountFiles
from coin_sync.locks.guard import LockOutcome
from coin_sync.outcome import EndReason

ROOT = Path(__file__).resolve().parents[2]
SIGTERM = 15


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Se omite")]


# --- the finish order and the lock-held rule ---------------------------------------------


def test_finish_releases_the_lease_before_anything_else(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    # After SIGTERM the pod can be killed at any moment: the Lease matters most.
    guard = guard_for()
    assert guard.acquire().state == "acquired"
    before = len(apiserver.requests())
    guard.finish(make_report(*OK_REPORT))
    after = [(method, plural) for method, plural, _ in apiserver.requests()[before:]]
    assert after[0] == ("PUT", "leases")
    assert after.index(("PUT", "leases")) < after.index(("PATCH", "configmaps")) < after.index(("POST", "events"))


def test_a_live_holder_means_held_and_nothing_is_written(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "busy-pod_7", renewed_ago=10))
    before = leases(apiserver)["coin-sync-lock"]
    guard = guard_for()

    assert guard.acquire() == LockOutcome("held", "busy-pod_7")
    guard.finish(make_report(reason=EndReason.LOCK_HELD))

    assert leases(apiserver)["coin-sync-lock"] == before  # neither taken nor released
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == ("SyncSkipped", "Normal")
    assert "reason=lock_held" in event["message"] and event["message"].endswith(" holder=busy-pod_7")
    assert "coin-sync-status" not in apiserver.objects(CONFIGMAPS, NAMESPACE)  # a skip is not a pass


def test_after_held_finish_never_writes_the_status_record_whatever_the_reason(
    apiserver: ApiServer, guard_for: OpenGuard
) -> None:
    """SIGTERM while the lock was being acquired, and the lock turned out held: the pass
    ends INTERRUPTED (143), yet the record belongs to the live holder's pass."""
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "busy-pod_7", renewed_ago=10))
    holders_record = {"metadata": {"name": "coin-sync-status"}, "data": {"shard-0": '{"pod": "busy-pod"}'}}
    apiserver.put(CONFIGMAPS, NAMESPACE, holders_record)
    guard = guard_for()

    assert guard.acquire().state == "held"
    guard.finish(make_report(reason=EndReason.INTERRUPTED, signum=SIGTERM))

    assert apiserver.objects(CONFIGMAPS, NAMESPACE)["coin-sync-status"]["data"] == holders_record["data"]
    assert [r[:2] for r in apiserver.requests() if r[1] == "configmaps"] == []
    (event,) = events(apiserver)
    assert (event["reason"], event["type"]) == ("SyncSkipped", "Warning")  # skipped, and exit 143
    assert "exit=143 reason=interrupted" in event["message"] and event["message"].endswith(" holder=busy-pod_7")


def test_finish_twice_reports_once(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    guard = guard_for()
    guard.acquire()
    guard.finish(make_report(*OK_REPORT))
    guard.finish(make_report(*OK_REPORT))
    assert len(events(apiserver)) == 1


# --- failing open --------------------------------------------------------------------------


def test_api_down_is_unavailable_with_one_warning_and_no_further_calls(
    tmp_path: Path, guard_for: OpenGuard, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    down = write_kubeconfig(tmp_path / "down", f"http://127.0.0.1:{free_port}")
    guard = guard_for(environ={"KUBECONFIG": str(down)})

    outcome = guard.acquire()
    guard.finish(make_report(*OK_REPORT))

    assert outcome.state == "unavailable"
    assert "inalcanzable" in outcome.detail and str(free_port) in outcome.detail
    (warning,) = warnings(caplog)  # acquire's; finish does not retry a dead API
    assert "la pasada sigue sin cerrojo" in warning
    assert skipped(caplog) == [
        "Se omite escribir el estado: la API de Kubernetes no responde",
        "Se omite publicar el Event: la API de Kubernetes no responde",
    ]


def test_api_down_with_lock_required_says_the_pass_will_not_run(
    tmp_path: Path, guard_for: OpenGuard, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    down = write_kubeconfig(tmp_path / "down", f"http://127.0.0.1:{free_port}")
    guard = guard_for(K8S_LOCK_REQUIRED=True, environ={"KUBECONFIG": str(down)})
    assert guard.acquire().state == "unavailable"
    (warning,) = warnings(caplog)
    assert "K8S_LOCK_REQUIRED=true" in warning and "salida 3" in warning


def test_black_holed_api_gives_up(tmp_path: Path, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture) -> None:
    """A server that accepts connections but never answers must not hang the pass: the
    read times out, the guard answers "unavailable" and skips the other calls."""
    caplog.set_level(logging.DEBUG)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads
        kubeconfig = write_kubeconfig(tmp_path / "silent", f"http://127.0.0.1:{silent.getsockname()[1]}")
        guard = guard_for(environ={"KUBECONFIG": str(kubeconfig)}, timeouts=ApiTimeouts(connect=0.5, read=0.5))
        outcome = guard.acquire()
        guard.finish(make_report(*OK_REPORT))
    assert outcome.state == "unavailable"
    assert "inalcanzable" in outcome.detail and "timed out" in outcome.detail.lower()
    assert len(skipped(caplog)) == 2


@pytest.mark.parametrize("verb", ["get", "create"])
def test_forbidden_names_the_missing_verb(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture, verb: str
) -> None:
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


def test_update_forbidden_on_an_expired_lease(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=600))
    apiserver.emulator.forbidden = {("update", "leases")}
    outcome = guard_for().acquire()
    assert outcome.state == "unavailable" and 'falta el verbo "update"' in outcome.detail


def test_failed_event_and_status_are_one_warning_each_never_an_exception(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture
) -> None:
    apiserver.emulator.forbidden = {("create", "events"), ("patch", "configmaps")}
    guard = guard_for()
    assert guard.acquire().state == "acquired"

    guard.finish(make_report(*OK_REPORT))  # must not raise

    messages = warnings(caplog)
    assert len(messages) == 2
    assert 'falta el verbo "patch" sobre configmaps "coin-sync-status"' in messages[0]
    assert 'falta el verbo "create" sobre events' in messages[1]
    assert "holderIdentity" not in leases(apiserver)["coin-sync-lock"]["spec"]  # still released


def test_unloadable_kubeconfig_is_unavailable(
    tmp_path: Path, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture
) -> None:
    guard = guard_for(environ={"KUBECONFIG": str(tmp_path / "missing")})
    assert isinstance(guard, UnavailableGuard)
    outcome = guard.acquire()
    assert outcome.state == "unavailable" and "configuración" in outcome.detail
    assert len(warnings(caplog)) == 1
    guard.finish(make_report(*OK_REPORT))


# --- which guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        ("on", False, "unavailable"),
        ("auto", True, "unavailable"),  # the operator asked for the lock: say it cannot be had
        ("auto", False, "inactive"),  # a pod deliberately without a token: nothing to warn about
    ],
)
def test_in_cluster_without_a_token(
    guard_for: OpenGuard, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: tuple[str, bool, str]
) -> None:
    mode, required, state = case
    files = ServiceAccountFiles(token=tmp_path / "token", ca=tmp_path / "ca.crt", namespace=tmp_path / "namespace")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    guard = guard_for(K8S_INTEGRATION=mode, K8S_LOCK_REQUIRED=required, environ=env, files=files)
    outcome = guard.acquire()
    assert outcome.state == state
    if state == "unavailable":
        assert "token" in outcome.detail.lower()
        assert len(warnings(caplog)) == 1
    else:
        assert not warnings(caplog)


@pytest.mark.parametrize(
    ("mode", "env"),
    [
        ("off", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}),
        ("auto", {}),
        ("auto", {"KUBERNETES_SERVICE_HOST": " "}),
    ],
)
def test_inactive_guard(guard_for: OpenGuard, mode: str, env: dict[str, str]) -> None:
    guard = guard_for(K8S_INTEGRATION=mode, environ=env)
    assert isinstance(guard, NullGuard)
    assert guard.acquire() == LockOutcome("inactive")
    guard.finish(make_report(*OK_REPORT))


def test_importing_and_an_inactive_guard_never_import_kubernetes() -> None:
    code = (
        "import logging, sys\n"
        "from coin_sync.config.settings import Settings\n"
        "from coin_sync.k8s import open_guard\n"
        "guard = open_guard(Settings(), logging.getLogger(), {}, required=False)\n"
        "print(guard.acquire().state, any(m.split('.')[0] == 'kubernetes' for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["inactive", "False"]


def test_namespace_fallbacks(tmp_path: Path) -> None:
    sa_file = tmp_path / "namespace"
    _, env = settings_and_env({})
    no_namespace = env | {"POD_NAMESPACE": ""}
    assert identity_from(no_namespace, sa_file, "from-kubeconfig").namespace == "from-kubeconfig"
    assert identity_from(no_namespace, sa_file).namespace == "default"
    sa_file.write_text("from-sa\n")
    assert identity_from(no_namespace, sa_file, "from-kubeconfig").namespace == "from-sa"
    assert identity_from(env, sa_file).namespace == NAMESPACE
    assert identity_from(env | {"POD_NAME": ""}, sa_file).pod == socket.gethostname()
