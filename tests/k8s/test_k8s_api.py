"""KubeApi against the API emulator: each failure raised as its own ApiError subclass,
worded for the log."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from kube_api import NAMESPACE, ApiServer, write_kubeconfig

from coin_sync.k8s.api import DEFAULT_TIMEOUTS, ApiTimeouts, ApiUnreachable, Conflict, Forbidden, KubeApi, NotFound
from coin_sync.k8s.loading import load_api_client

MakeApi = Callable[..., KubeApi]


@pytest.fixture
def api_at(tmp_path: Path) -> MakeApi:
    def make(url: str, timeouts: ApiTimeouts = DEFAULT_TIMEOUTS) -> KubeApi:
        client, namespace = load_api_client({"KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", url))})
        return KubeApi(client, namespace, timeouts)

    return make


def lease(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"holderIdentity": "someone_1"}}


def test_a_missing_lease_is_none_and_a_second_create_conflicts(apiserver: ApiServer, api_at: MakeApi) -> None:
    api = api_at(apiserver.url)
    assert api.namespace == NAMESPACE
    assert api.get_lease("coin-sync-lock") is None
    created = api.create_lease(lease("coin-sync-lock"))
    assert api.get_lease("coin-sync-lock") == created
    with pytest.raises(Conflict) as conflict:
        api.create_lease(lease("coin-sync-lock"))
    assert conflict.value.status == 409
    stale = {**created, "metadata": {**created["metadata"], "resourceVersion": "0"}}
    with pytest.raises(Conflict):
        api.replace_lease("coin-sync-lock", stale)


def test_patching_a_missing_configmap_is_not_found(apiserver: ApiServer, api_at: MakeApi) -> None:
    with pytest.raises(NotFound) as missing:
        api_at(apiserver.url).patch_configmap("coin-sync-status", {"data": {"shard-0": "{}"}})
    assert missing.value.status == 404 and 'configmaps "coin-sync-status"' in str(missing.value)


def test_forbidden_names_the_verb_and_the_object(apiserver: ApiServer, api_at: MakeApi) -> None:
    apiserver.emulator.forbidden = {("update", "leases")}
    with pytest.raises(Forbidden) as forbidden:
        api_at(apiserver.url).replace_lease("coin-sync-lock", lease("coin-sync-lock"))
    assert str(forbidden.value).startswith(
        f'sin permiso RBAC: falta el verbo "update" sobre leases.coordination.k8s.io "coin-sync-lock" '
        f'en el namespace "{NAMESPACE}" (HTTP 403: '
    )


def test_refused_is_unreachable(api_at: MakeApi, free_port: int) -> None:
    with pytest.raises(ApiUnreachable) as down:
        api_at(f"http://127.0.0.1:{free_port}").create_event({"metadata": {"name": "e"}})
    assert f"inalcanzable en http://127.0.0.1:{free_port} (create events)" in str(down.value)


def test_black_holed_is_unreachable_once_the_read_times_out(api_at: MakeApi) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads
        api = api_at(f"http://127.0.0.1:{silent.getsockname()[1]}", ApiTimeouts(connect=0.5, read=0.3))
        with pytest.raises(ApiUnreachable) as silence:
            api.get_lease("coin-sync-lock")
    assert "timed out" in str(silence.value).lower()
