"""The Kubernetes integration: RBAC, env and token mount when on; none of it when off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .helm import NAMESPACE, RELEASE, Doc, Helm, container, find_all, find_one, pod_spec

FULLNAME = f"{RELEASE}-coin-sync"
INTEGRATION_KEYS = {
    "K8S_INTEGRATION",
    "K8S_LOCK_REQUIRED",
    "LEASE_NAME",
    "LEASE_DURATION_SECONDS",
    "STATUS_CONFIGMAP",
}
DOWNWARD = {
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "JOB_NAME": "metadata.labels['batch.kubernetes.io/job-name']",
    "JOB_UID": "metadata.labels['batch.kubernetes.io/controller-uid']",
    "POD_UID": "metadata.uid",
}


def rules_by_resource(role: Doc) -> dict[tuple[str, str, bool], Doc]:
    out = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out[(group, resource, "resourceNames" in rule)] = rule
    return out


def test_role_is_least_privilege(default_docs: list[Doc]) -> None:
    role = find_one(default_docs, "Role", FULLNAME)
    rules = rules_by_resource(role)
    assert set(rules) == {
        ("coordination.k8s.io", "leases", True),
        ("coordination.k8s.io", "leases", False),
        ("", "events", False),
        ("", "configmaps", True),
        ("", "configmaps", False),
    }
    named_leases = rules[("coordination.k8s.io", "leases", True)]
    assert named_leases["resourceNames"] == [f"{FULLNAME}-lock"]
    # exactly the calls coin_sync/k8s/lease.py makes, nothing more
    assert named_leases["verbs"] == ["get", "update"]
    # create cannot be limited by resourceNames: its own rule, with nothing else.
    assert rules[("coordination.k8s.io", "leases", False)]["verbs"] == ["create"]
    assert rules[("", "events", False)]["verbs"] == ["create"]
    named_cms = rules[("", "configmaps", True)]
    assert named_cms["resourceNames"] == [f"{FULLNAME}-status"]
    # get: a pass reads its shard's ambiguous syncs (key ambiguous-<index>) from the status
    # ConfigMap once at its start (coin_sync/k8s/state.py); patch: its own keys at the end.
    assert named_cms["verbs"] == ["get", "patch"]
    assert rules[("", "configmaps", False)]["verbs"] == ["create"]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert not {"delete", "list", "watch", "deletecollection"} & set(rule["verbs"])


def test_rolebinding(default_docs: list[Doc]) -> None:
    binding = find_one(default_docs, "RoleBinding", FULLNAME)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_integration_on_mounts_token_and_sets_env(default_docs: list[Doc]) -> None:
    assert pod_spec(default_docs)["automountServiceAccountToken"] is True
    assert find_one(default_docs, "ServiceAccount")["automountServiceAccountToken"] is True
    env = {e["name"]: e for e in container(default_docs)["env"]}
    for name, field in DOWNWARD.items():
        assert env[name]["valueFrom"] == {"fieldRef": {"fieldPath": field}}
    data = find_one(default_docs, "ConfigMap", f"{FULLNAME}-env")["data"]
    assert set(data) >= INTEGRATION_KEYS
    assert data["K8S_INTEGRATION"] == "auto"
    assert data["K8S_LOCK_REQUIRED"] == "false"
    assert data["LEASE_NAME"] == f"{FULLNAME}-lock"
    assert data["LEASE_DURATION_SECONDS"] == "60"
    assert data["STATUS_CONFIGMAP"] == f"{FULLNAME}-status"


def test_integration_values(helm: Helm) -> None:
    docs = helm.render(
        set_values=[
            "kubernetes.integration.mode=on",
            "kubernetes.integration.lockRequired=true",
            "kubernetes.integration.leaseDurationSeconds=120",
        ]
    )
    data = find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]
    assert data["K8S_INTEGRATION"] == "on"
    assert data["K8S_LOCK_REQUIRED"] == "true"
    assert data["LEASE_DURATION_SECONDS"] == "120"


@pytest.mark.parametrize("shards", [2, 5])
def test_sharded_lease_names_in_rbac(helm: Helm, shards: int) -> None:
    docs = helm.render(set_values=[f"shards={shards}"])
    role = find_one(docs, "Role")
    named = rules_by_resource(role)[("coordination.k8s.io", "leases", True)]
    assert named["resourceNames"] == [f"{FULLNAME}-lock"] + [f"{FULLNAME}-lock-{i}" for i in range(shards)]
    data = find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]
    assert data["LEASE_NAME"] == f"{FULLNAME}-lock"  # the program appends -<index>


def test_integration_off(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["integration-off-values"]
    assert find_all(docs, "Role") == []
    assert find_all(docs, "RoleBinding") == []
    assert pod_spec(docs)["automountServiceAccountToken"] is False
    assert find_one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    env_names = {e["name"] for e in container(docs).get("env", [])}
    assert not env_names & set(DOWNWARD)
    data = find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]
    # Only K8S_INTEGRATION=off, so that "auto" does not try the API in every pass.
    assert data["K8S_INTEGRATION"] == "off"
    assert not (INTEGRATION_KEYS - {"K8S_INTEGRATION"}) & set(data)
    # The NetworkPolicy keeps DNS and the backend, without the API server rule.
    egress = find_one(docs, "NetworkPolicy")["spec"]["egress"]
    assert len(egress) == 2
    assert all(p["port"] not in (443, 6443) for rule in egress for p in rule["ports"])


def test_integration_on_network_policy_reaches_api_server(helm: Helm) -> None:
    docs = helm.render(
        set_values=["networkPolicy.enabled=true"],
        set_json=[
            'networkPolicy.apiServer.cidrs=["172.20.0.1/32"]',
            'networkPolicy.backend.to=[{"podSelector":{"matchLabels":{"app":"backend"}}}]',
        ],
    )
    api = find_one(docs, "NetworkPolicy")["spec"]["egress"][2]
    assert api == {
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
        "to": [{"ipBlock": {"cidr": "172.20.0.1/32"}}],
    }


def test_rbac_create_false_keeps_the_rest(helm: Helm) -> None:
    docs = helm.render(set_values=["kubernetes.integration.rbac.create=false"])
    assert find_all(docs, "Role") == [] and find_all(docs, "RoleBinding") == []
    assert pod_spec(docs)["automountServiceAccountToken"] is True
    assert "LEASE_NAME" in find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]


def test_integration_off_by_set(helm: Helm) -> None:
    docs = helm.render(set_values=["kubernetes.integration.enabled=false"])
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap", "CronJob", "Pod"}
    assert "env" not in container(docs)  # nothing else to set without a token


# --------------------------------------------------------------------------------------
# mode: off is the integration disabled; RBAC never lands on the `default` account
# --------------------------------------------------------------------------------------


def assert_integration_absent(docs: list[Doc]) -> None:
    assert find_all(docs, "Role") == [] and find_all(docs, "RoleBinding") == []
    assert pod_spec(docs)["automountServiceAccountToken"] is False
    for sa in find_all(docs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    env_names = {e["name"] for e in container(docs).get("env", [])}
    assert not env_names & set(DOWNWARD)
    data = find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]
    assert data["K8S_INTEGRATION"] == "off"
    assert not (INTEGRATION_KEYS - {"K8S_INTEGRATION"}) & set(data)


def test_mode_off_is_the_integration_disabled(helm: Helm) -> None:
    docs = helm.render(set_values=["kubernetes.integration.mode=off"])
    assert_integration_absent(docs)
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap", "CronJob", "Pod"}
    # The same objects as enabled=false.
    disabled = helm.render(set_values=["kubernetes.integration.enabled=false"])
    assert docs == disabled


def test_mode_off_network_policy_has_no_api_server_rule(helm: Helm) -> None:
    docs = helm.render(
        set_values=["kubernetes.integration.mode=off", "networkPolicy.enabled=true"],
        set_json=['networkPolicy.backend.to=[{"podSelector":{"matchLabels":{"app":"backend"}}}]'],
    )
    egress = find_one(docs, "NetworkPolicy")["spec"]["egress"]
    assert len(egress) == 2  # DNS and the backend; no API server CIDRs needed
    assert all(p["port"] not in (443, 6443) for rule in egress for p in rule["ports"])


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_modes_auto_and_on_keep_the_integration(helm: Helm, mode: str) -> None:
    docs = helm.render(set_values=[f"kubernetes.integration.mode={mode}"])
    assert find_one(docs, "Role") and find_one(docs, "RoleBinding")
    assert pod_spec(docs)["automountServiceAccountToken"] is True
    assert find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]["K8S_INTEGRATION"] == mode


def test_rbac_is_never_bound_to_the_default_service_account(helm: Helm) -> None:
    result = helm.template(set_values=["serviceAccount.create=false"])
    assert result.returncode != 0, "el Role acabaría en la ServiceAccount default"
    assert "serviceAccount.name" in result.stderr
    assert "`default`" in result.stderr
    assert "kubernetes.integration.rbac.create" in result.stderr


@pytest.mark.parametrize(
    "values",
    [
        ["serviceAccount.create=false", "serviceAccount.name=ops"],
        ["serviceAccount.create=false", "kubernetes.integration.rbac.create=false"],
        ["serviceAccount.create=false", "kubernetes.integration.enabled=false"],
        ["serviceAccount.create=false", "kubernetes.integration.mode=off"],
    ],
)
def test_no_service_account_is_fine_without_a_default_binding(helm: Helm, values: list[str]) -> None:
    docs = helm.render(set_values=values)
    for binding in find_all(docs, "RoleBinding"):
        assert binding["subjects"][0]["name"] != "default"


def test_unquoted_yaml_off_and_on(helm: Helm, values_file: Callable[..., Path]) -> None:
    """`mode: off` unquoted in a values file is the YAML 1.1 boolean false."""
    docs = helm.render(values_file("kubernetes:\n  integration:\n    mode: off\n", "off.yaml"))
    assert_integration_absent(docs)
    docs = helm.render(values_file("kubernetes:\n  integration:\n    mode: on\n", "on.yaml"))
    assert find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]["K8S_INTEGRATION"] == "on"
    assert find_one(docs, "Role")
