"""The chart installed from the OCI registry onto the real control plane, its image by
digest, its passes run by the test node against the fake backend: what the API server,
the CronJob and Job controllers and RBAC make of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chart.helm import CI_VALUES
from control_plane import ControlPlane
from node_agent import Kube, NodeAgent, wait_for
from pod_plan import Doc
from release import Release, ensure_namespace
from required import shared_schema_path

from fake_backend import FakeBackend, error500, exchange_error

# Everything a user's install would name differently: where the backend is, and no
# wait for a /health that is down (exit 3 comes at once).
E2E_VALUES = ("config.BACKEND_WAIT_SECONDS=2", "config.MAX_RETRIES=0")
PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "CronJob": "cronjobs",
    "Job": "jobs",
    "Pod": "pods",
    "NetworkPolicy": "networkpolicies",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PrometheusRule": "prometheusrules",
    "Lease": "leases",
}


def object_path(doc: Doc, namespace: str) -> str:
    version = doc["apiVersion"]
    base = f"/api/{version}" if "/" not in version else f"/apis/{version}"
    return f"{base}/namespaces/{namespace}/{PLURALS[doc['kind']]}"


@pytest.fixture(scope="session")
def prometheus_rule_crd(kube: Kube) -> None:
    """The Prometheus Operator's CRD, so the API server validates the chart's PrometheusRule."""
    import yaml

    crd = yaml.safe_load(shared_schema_path("prometheusrule-crd-v0.93.1.yaml").read_text())
    kube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    wait_for(lambda: kube.request("GET", "/apis/monitoring.coreos.com/v1"), 30, "la API monitoring.coreos.com/v1")


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: "default" if v is None else v.name)
def test_every_object_passes_strict_server_side_validation_and_installs_from_the_registry(
    values: Path | None, release: Release, prometheus_rule_crd: None
) -> None:
    files = (values,) if values else ()
    sets = ("backend.url=http://127.0.0.1:9", "suspend=true")
    rendered = release.template(*files, set_values=sets, api_versions=("monitoring.coreos.com/v1/PrometheusRule",))
    for doc in rendered:
        if doc["metadata"].get("annotations", {}).get("helm.sh/hook"):
            continue  # `helm test`'s pod: made only by `helm test`
        # An object the chart puts elsewhere (the dashboard, in Grafana's namespace) stays there.
        namespace = doc["metadata"].get("namespace") or release.namespace
        ensure_namespace(release.kube, namespace)
        path = object_path(doc, namespace) + "?dryRun=All&fieldValidation=Strict"
        placed = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
        release.kube.request("POST", path, placed)  # any 4xx raises: an unknown field is one
    release.install(*files, set_values=sets)
    listed = release.helm.run("status", release.name, "--namespace", release.namespace, "-o", "json").check()
    assert json.loads(listed.stdout)["info"]["status"] == "deployed"
    release.uninstall()


def test_the_cronjob_runs_a_pass_on_schedule_and_kubectl_a_manual_one_then_upgrade_and_uninstall_leave_nothing(
    release: Release, fake_backend: FakeBackend, node: NodeAgent, control_plane: ControlPlane
) -> None:
    # The API server admits the chart's pods under the Pod Security Standard "restricted".
    labels = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    release.kube.request("PATCH", f"/api/v1/namespaces/{release.namespace}", labels, "application/merge-patch+json")
    release.install(set_values=(f"backend.url={fake_backend.url}", *E2E_VALUES))
    # The CronJob controller starts the first pass within a minute of `* * * * *`.
    scheduled = wait_for(lambda: [j["metadata"]["name"] for j in release.jobs()], 90, "el CronJob no crea un Job")[0]
    assert release.finished(scheduled) == "Complete"
    # No more scheduled passes from here: the manual one must be alone.
    release.upgrade(set_values=(f"backend.url={fake_backend.url}", *E2E_VALUES, "suspend=true"))
    release.create_job("manual-1")
    assert release.finished("manual-1") == "Complete"

    for job in (scheduled, "manual-1"):
        [(code, summary)] = release.ends(job)
        assert code == 0
        assert summary["exit_code"] == 0 and summary["reason"] == "ok", summary
        assert summary["ok"] == 3, summary
        uid = release.get(f"/apis/batch/v1/namespaces/{{ns}}/jobs/{job}")["metadata"]["uid"]
        assert [e["reason"] for e in release.events_of(uid)] == ["SyncSucceeded"]
    assert {c.path for c in fake_backend.calls if c.method == "POST"} == {"/api/sync"}
    assert len(fake_backend.sync_calls()) == 6  # three symbols, two passes

    lease = release.lease()
    assert not lease["spec"].get("holderIdentity"), lease  # released at the end
    assert lease["spec"].get("leaseTransitions", 0) >= 1
    record = release.status_record()["shard-0"]
    assert record["exit_code"] == 0 and record["job"] == "manual-1"

    # The chart's Role, with its ServiceAccount's own token: what it grants, and no more.
    token = service_account_token(release, release.fullname)
    with control_plane.session(token) as http:
        ns = release.namespace
        lease_url = f"{control_plane.url}/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{release.fullname}-lock"
        status_url = f"{control_plane.url}/api/v1/namespaces/{ns}/configmaps/{release.fullname}-status"
        assert http.get(lease_url, timeout=10).status_code == 200
        assert http.get(status_url, timeout=10).status_code == 200
        refused = {
            "delete lease": http.delete(lease_url, timeout=10),
            "list configmaps": http.get(f"{control_plane.url}/api/v1/namespaces/{ns}/configmaps", timeout=10),
            "get secrets": http.get(f"{control_plane.url}/api/v1/namespaces/{ns}/secrets", timeout=10),
            "delete status": http.delete(status_url, timeout=10),
            "list pods": http.get(f"{control_plane.url}/api/v1/namespaces/{ns}/pods", timeout=10),
        }
    assert {what: r.status_code for what, r in refused.items()} == dict.fromkeys(refused, 403)

    release.uninstall()
    assert_only_documented_leftovers(release, shards=1)


def service_account_token(release: Release, service_account: str) -> str:
    review = release.kube.request(
        "POST",
        f"/api/v1/namespaces/{release.namespace}/serviceaccounts/{service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}},
    )
    return str(review["status"]["token"])


def assert_only_documented_leftovers(release: Release, shards: int) -> None:
    """After `helm uninstall`: only what the chart's README says stays (the program's
    Lease(s) and status ConfigMap; Events expire by themselves)."""

    def ours() -> dict[str, list[str]]:
        found = {}
        for kind in ("ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "CronJob", "Job", "Pod", "Lease"):
            version = {"Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1"}.get(
                kind, {"CronJob": "batch/v1", "Job": "batch/v1", "Lease": "coordination.k8s.io/v1"}.get(kind, "v1")
            )
            items = release.get(object_path({"apiVersion": version, "kind": kind}, "{ns}"))["items"]
            names = sorted(
                i["metadata"]["name"] for i in items if i["metadata"]["name"] not in ("default", "kube-root-ca.crt")
            )
            if names:
                found[kind] = names
        return found

    suffixes = [""] if shards == 1 else [f"-{i}" for i in range(shards)]
    documented = {
        "ConfigMap": [f"{release.fullname}-status"],
        "Lease": sorted(f"{release.fullname}-lock{s}" for s in suffixes),
    }
    # Jobs and their pods go with the CronJob (garbage collection, in the background).
    wait_for(lambda: ours() == documented, 60, f"quedan objetos tras helm uninstall: {ours()}")


def test_exit_codes_drive_the_job_as_the_chart_says(
    release: Release, fake_backend: FakeBackend, node: NodeAgent
) -> None:
    release.install(set_values=(f"backend.url={fake_backend.url}", *E2E_VALUES, "suspend=true", "backoffLimit=1"))
    pfp = failure_policy(release)
    assert pfp == {2: "FailJob", 4: "FailJob"}, pfp  # what the rest of this test relies on

    def run(job: str) -> tuple[str, list[int]]:
        release.create_job(job)
        outcome = release.finished(job)
        return outcome, [code for code, _ in release.ends(job)]

    # 0: Complete. First: after the quota halt below, the next pass waits for its probe
    # (a minute after the halt, README «Presupuesto del exchange»), past its budget.
    assert run("exit-0") == ("Complete", [0])
    # 1: a symbol failed. Counted: one retry (backoffLimit 1), then the Job fails.
    fake_backend.script("BTCUSDT", error500("boom"))  # every attempt
    assert run("exit-1") == ("Failed:BackoffLimitExceeded", [1, 1])
    fake_backend.script("BTCUSDT")
    # 3: the backend never gets healthy. Counted as well.
    fake_backend.set_healthy(False)
    assert run("exit-3") == ("Failed:BackoffLimitExceeded", [3, 3])
    fake_backend.set_healthy(True)
    # 4: the exchange limits the backend: the Job fails at once, no new pod.
    for symbol in fake_backend.symbols:
        fake_backend.script(symbol, exchange_error("rate_limited", symbol))
    assert run("exit-4") == ("Failed:PodFailurePolicy", [4])
    for symbol in fake_backend.symbols:
        fake_backend.script(symbol)
    # 2: a configuration error (a user's edit of the env ConfigMap): fails at once too.
    env_cm = f"/api/v1/namespaces/{release.namespace}/configmaps/{release.fullname}-env"
    release.kube.request("PATCH", env_cm, {"data": {"HTTP_TIMEOUT": "abc"}}, "application/merge-patch+json")
    outcome, codes = run("exit-2")
    assert (outcome, codes) == ("Failed:PodFailurePolicy", [2])
    [(_, summary)] = release.ends("exit-2")
    assert "HTTP_TIMEOUT" in json.dumps(summary, ensure_ascii=False)  # the message names the culprit
    release.kube.request("PATCH", env_cm, {"data": {"HTTP_TIMEOUT": "300"}}, "application/merge-patch+json")


def test_a_pass_killed_by_sigterm_is_counted_and_the_next_pod_syncs(
    release: Release, fake_backend: FakeBackend, node: NodeAgent
) -> None:
    """143: the pod deleted mid-pass. The pass releases its Lease on the way out, the
    Job controller counts the failure (backoffLimit) and its next pod syncs."""
    sets = ("suspend=true", "backoffLimit=1", "config.SHUTDOWN_GRACE_SECONDS=2")
    release.install(set_values=(f"backend.url={fake_backend.url}", *E2E_VALUES, *sets))
    fake_backend.pause_syncs()
    try:
        release.create_job("sigterm")
        holder = wait_for(lambda: release_lease_holder(release), 60, "la pasada no toma el Lease")
        pod = holder.rsplit("_", 1)[0]  # <pod>_<pid>
        deleted = release.run_kubectl("delete", "pod", pod, "--wait=false")
        assert deleted.returncode == 0, deleted.stderr
        wait_for(lambda: not release_lease_holder(release), 60, "la pasada terminada no suelta el Lease")
    finally:
        fake_backend.resume_syncs()
    assert release.finished("sigterm") == "Complete"
    job = release.get("/apis/batch/v1/namespaces/{ns}/jobs/sigterm")
    assert (job["status"].get("failed"), job["status"].get("succeeded")) == (1, 1)
    told = sorted(e["message"].split()[0] for e in release.events_of(job["metadata"]["uid"]))
    assert told == ["exit=0", "exit=143"]  # each pass's own Event: the SIGTERM'd one said so
    [(code, summary)] = release.ends("sigterm")  # the deleted pod is gone
    assert code == 0 and summary["reason"] == "ok", summary


def failure_policy(release: Release) -> dict[int, str]:
    """The installed CronJob's podFailurePolicy: exit code -> action."""
    cronjob = release.get(f"/apis/batch/v1/namespaces/{{ns}}/cronjobs/{release.fullname}")
    rules = cronjob["spec"]["jobTemplate"]["spec"].get("podFailurePolicy", {}).get("rules", [])
    return {code: r["action"] for r in rules if "onExitCodes" in r for code in r["onExitCodes"]["values"]}


def test_two_passes_at_once_one_holds_the_lease_the_other_ends_held(
    release: Release, fake_backend: FakeBackend, node: NodeAgent
) -> None:
    release.install(set_values=(f"backend.url={fake_backend.url}", *E2E_VALUES, "suspend=true"))
    fake_backend.pause_syncs()
    try:
        release.create_job("first")
        holder = wait_for(lambda: release_lease_holder(release), 60, "la primera pasada no toma el Lease")
        assert holder.startswith("first-")
        release.create_job("second")
        assert release.finished("second") == "Complete"
    finally:
        fake_backend.resume_syncs()
    assert release.finished("first") == "Complete"
    [(_, held)] = release.ends("second")
    assert held["reason"] == "lock_held" and held["exit_code"] == 0, held
    [(_, ran)] = release.ends("first")
    assert ran["reason"] == "ok" and ran["ok"] == 3, ran


def release_lease_holder(release: Release) -> str:
    lease = release.get(f"/apis/coordination.k8s.io/v1/namespaces/{{ns}}/leases/{release.fullname}-lock")
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def test_three_shards_are_an_indexed_job_whose_pods_each_sync_their_share(release: Release, node: NodeAgent) -> None:
    with FakeBackend(symbols=9) as backend:
        release.install(set_values=(f"backend.url={backend.url}", *E2E_VALUES, "suspend=true", "shards=3"))
        release.create_job("sharded")
        assert release.finished("sharded") == "Complete"
        pods = release.pods_of("sharded")
        indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
        assert indexes == ["0", "1", "2"]
        records = release.status_record()
        assert sorted(records) == ["shard-0", "shard-1", "shard-2"]
        assert len({r["pod"] for r in records.values()}) == 3
        assert sum(r["ok"] for r in records.values()) == 9
        synced = [c.symbol for c in backend.sync_calls()]
        assert sorted(synced) == sorted(backend.symbols)  # each once: the shards do not overlap
        assert all(0 < r["ok"] < 9 for r in records.values()), records
    release.uninstall()
    assert_only_documented_leftovers(release, shards=3)
