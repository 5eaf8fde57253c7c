"""The ambiguous syncs kept in the status ConfigMap (coin_sync/k8s/state.py), against the
API emulator: one GET at the start, a merge patch of the shard's own key only when the
state changed, a corrupt or forbidden value is one WARNING and an empty state, and an API
found unreachable costs no further call, neither here nor in the guard's finish."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from k8s_support import OK_REPORT, OpenGuard, make_report, settings_and_env, warnings
from kube_api import CONFIGMAPS, LEASES, NAMESPACE, ApiServer, lease_body, write_kubeconfig

from coin_sync.k8s import open_guard
from coin_sync.k8s.api import ApiTimeouts, KubeApi, Reachability
from coin_sync.k8s.guard import KubeGuard
from coin_sync.k8s.loading import load_api_client
from coin_sync.k8s.state import ConfigMapStateStore
from coin_sync.locks.guard import PassGuard
from coin_sync.sync.state import AmbiguousSync, Remembered, StateStore, state_to_json

SENT = datetime(2025, 11, 17, 14, 45, 30, tzinfo=UTC)
BTC = AmbiguousSync("BTCUSDT", SENT, "2025-11-17T14:44:00+00:00")
NEW = AmbiguousSync("NEWUSDT", SENT, None)  # not listed yet when it was sent
LOG = logging.getLogger("coin_sync.tests.k8s.state")


def store_of(guard: object) -> StateStore:
    assert isinstance(guard, KubeGuard)
    store = guard.state_store()
    assert store is not None, "the Lease holder keeps its memory in the ConfigMap"
    return store


def configmap_calls(api: ApiServer, since: int = 0) -> list[tuple[str, str | None]]:
    return [(method, name) for method, plural, name in api.requests()[since:] if plural == "configmaps"]


def stored(api: ApiServer) -> dict[str, str]:
    configmap = api.objects(CONFIGMAPS, NAMESPACE).get("coin-sync-status") or {}
    data: dict[str, str] = configmap.get("data") or {}
    return data


def put_value(api: ApiServer, data: dict[str, str]) -> None:
    api.put(CONFIGMAPS, NAMESPACE, {"metadata": {"name": "coin-sync-status"}, "data": data})


def test_saved_by_one_pass_and_loaded_by_the_next(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    first = guard_for()
    assert first.acquire().state == "acquired"
    store = store_of(first)
    assert store.load() == Remembered()  # no ConfigMap yet: nothing remembered, no warning
    store.save(Remembered({"BTCUSDT": BTC, "NEWUSDT": NEW}))
    first.finish(make_report(*OK_REPORT))

    data = stored(apiserver)
    assert set(data) == {"shard-0", "ambiguous-0"}
    # STATE_FILE's format
    assert json.loads(data["ambiguous-0"]) == state_to_json(Remembered({"BTCUSDT": BTC, "NEWUSDT": NEW}))

    second = guard_for(POD_NAME="coin-sync-29000001-fghij")
    assert second.acquire().state == "acquired"
    before = len(apiserver.requests())
    assert store_of(second).load() == Remembered({"BTCUSDT": BTC, "NEWUSDT": NEW})
    assert configmap_calls(apiserver, before) == [("GET", "coin-sync-status")]  # one read
    second.finish(make_report(*OK_REPORT))


def test_saved_only_when_changed_and_removed_when_empty(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    put_value(apiserver, {"ambiguous-0": json.dumps(state_to_json(Remembered({"BTCUSDT": BTC}))), "note": "manual"})
    guard = guard_for()
    guard.acquire()
    store = store_of(guard)
    state = store.load()

    before = len(apiserver.requests())
    store.save(Remembered(dict(state.ambiguous)))
    assert configmap_calls(apiserver, before) == []  # unchanged: no write

    store.save(Remembered())  # resolved: the key goes, other keys stay
    assert configmap_calls(apiserver, before) == [("PATCH", "coin-sync-status")]
    assert stored(apiserver) == {"note": "manual"}
    guard.finish(make_report(*OK_REPORT))


def test_shards_keep_their_own_key(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    shard0 = guard_for(SHARD_COUNT=2, SHARD_INDEX=0)
    shard1 = guard_for(SHARD_COUNT=2, SHARD_INDEX=1, POD_NAME="coin-sync-29000000-fghij")
    shard0.acquire()
    shard1.acquire()
    store0, store1 = store_of(shard0), store_of(shard1)
    store0.load(), store1.load()
    store0.save(Remembered({"BTCUSDT": BTC}))
    store1.save(Remembered({"NEWUSDT": NEW}))

    data = stored(apiserver)
    assert json.loads(data["ambiguous-0"])["ambiguous"].keys() == {"BTCUSDT"}
    assert json.loads(data["ambiguous-1"])["ambiguous"].keys() == {"NEWUSDT"}
    assert store_of(shard1).load() == Remembered({"NEWUSDT": NEW})


@pytest.mark.parametrize(
    "value",
    ["{not json", "[]", '{"ambiguous": {"BTCUSDT": {"sent_at": "yesterday"}}}', "", '{"ambiguous": []}'],
)
def test_a_corrupt_value_is_one_warning_and_empty(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    put_value(apiserver, {"ambiguous-0": value})
    guard = guard_for()
    guard.acquire()

    assert store_of(guard).load() == Remembered()

    (warning,) = warnings(caplog)
    assert 'clave "ambiguous-0"' in warning and "no es válido" in warning and "se trata como vacío" in warning


def test_forbidden_get_is_one_warning_naming_the_verb(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture
) -> None:
    """A Role from an older chart (configmaps patch only): the pass goes on with an empty memory."""
    apiserver.emulator.forbidden = {("get", "configmaps")}
    guard = guard_for()
    guard.acquire()
    store = store_of(guard)

    assert store.load() == Remembered()
    store.save(Remembered({"BTCUSDT": BTC}))  # patch is still allowed
    guard.finish(make_report(*OK_REPORT))

    (warning,) = warnings(caplog)
    assert 'falta el verbo "get" sobre configmaps "coin-sync-status"' in warning and "se trata como vacío" in warning
    assert set(stored(apiserver)) == {"shard-0", "ambiguous-0"}


def test_no_store_without_the_lease(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "busy-pod_7", 5))
    guard = guard_for()
    assert isinstance(guard, KubeGuard)
    assert guard.state_store() is None  # before acquire
    assert guard.acquire().state == "held"
    assert guard.state_store() is None  # the live holder's memory is not ours


def test_api_down_after_the_lock_costs_one_warning_and_no_further_call(
    tmp_path: Path, opened: list[PassGuard], caplog: pytest.LogCaptureFixture
) -> None:
    """The API answered the Lease, then died: the load is one WARNING and an empty state;
    the save and the guard's finish make no call (each would only add its timeout)."""
    caplog.set_level(logging.DEBUG)
    server = ApiServer().start()
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, NAMESPACE)
        settings, env = settings_and_env({})
        guard = open_guard(settings, LOG, {"KUBECONFIG": str(kubeconfig)} | env, required=False)
        opened.append(guard)
        assert guard.acquire().state == "acquired"
        store = store_of(guard)
    finally:
        server.stop()

    assert store.load() == Remembered()
    store.save(Remembered({"BTCUSDT": BTC}))
    guard.finish(make_report(*OK_REPORT))

    (warning,) = warnings(caplog)
    assert "inalcanzable" in warning and 'configmaps "coin-sync-status"' in warning
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Se omite")]
    assert skipped == [
        'Se omite guardar el estado (ConfigMap coin/coin-sync-status, clave "ambiguous-0"): '
        "la API de Kubernetes no responde",
        "Se omite liberar el cerrojo: la API de Kubernetes no responde",
        "Se omite escribir el estado: la API de Kubernetes no responde",
        "Se omite publicar el Event: la API de Kubernetes no responde",
    ]


def test_a_store_told_the_api_is_down_makes_no_call(
    tmp_path: Path, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The guard's knowledge, handed over: a Reachability already down means no request."""
    kubeconfig = write_kubeconfig(tmp_path / "down", f"http://127.0.0.1:{free_port}")
    client, _ = load_api_client({"KUBECONFIG": str(kubeconfig)})
    reach = Reachability()
    api = KubeApi(client, NAMESPACE, ApiTimeouts(connect=0.2, read=0.2, connect_retries=0))
    store = ConfigMapStateStore(api, "coin-sync-status", 0, LOG, reach)

    assert store.load() == Remembered()  # refused: one WARNING, and now it knows
    assert reach.down
    store.save(Remembered({"BTCUSDT": BTC}))
    assert store.load() == Remembered()
    assert len(warnings(caplog)) == 1
    api.close()
