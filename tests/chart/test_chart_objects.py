"""Assertions on the rendered objects: every value ends up where it should."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from coin_sync.config import load_settings

from .helm import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    Doc,
    Helm,
    container,
    find_all,
    find_one,
    job_spec,
    pod_spec,
)

FULLNAME = f"{RELEASE}-coin-sync"
CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
APP_VERSION = CHART["appVersion"]
CHART_VERSION = CHART["version"]
REPOSITORY = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["image"]["repository"]
CI = CHART_DIR / "ci"

DEFAULT_ENV = {
    "BACKEND_URL": "http://backend:8888",
    "SHARD_COUNT": "1",
    "LOG_LEVEL": "INFO",
    "LOG_DIR": "/logs",
    "LOG_FORMAT": "text",
    "HTTP_TIMEOUT": "300",
    "MAX_RETRIES": "3",
    "RETRY_DELAY_SECONDS": "10",
    "RETRY_MAX_DELAY_SECONDS": "60",
    "SYMBOLS_TO_SYNC": "",
    "SYMBOLS_INCLUDE": "",
    "SYMBOLS_EXCLUDE": "",
    "SYNC_CONCURRENCY": "auto",
    "SYNC_CONCURRENCY_MAX": "64",
    "PASS_BUDGET_SECONDS": "50",  # 5/6 of a minute: the pass fits its schedule
    "BACKEND_WAIT_SECONDS": "60",
    "PASS_DEADLINE_SECONDS": "0",
    "SHUTDOWN_GRACE_SECONDS": "20",
    "SUMMARY_FILE": "",
    "STALE_AFTER_SECONDS": "180",
    "FAIL_ON_STALE": "false",
    "K8S_INTEGRATION": "auto",
    "K8S_LOCK_REQUIRED": "false",
    "LEASE_NAME": f"{FULLNAME}-lock",
    "LEASE_DURATION_SECONDS": "60",
    "STATUS_CONFIGMAP": f"{FULLNAME}-status",
}


def env_configmap(docs: list[Doc], fullname: str = FULLNAME) -> dict[str, str]:
    data: dict[str, str] = find_one(docs, "ConfigMap", f"{fullname}-env")["data"]
    return data


def env_list(docs: list[Doc]) -> dict[str, Any]:
    """The container's `env` by name (value or valueFrom)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs).get("env", [])}


def volumes(docs: list[Doc]) -> dict[str, Doc]:
    return {v["name"]: v for v in pod_spec(docs)["volumes"]}


def mounts(docs: list[Doc]) -> dict[str, Doc]:
    return {m["name"]: m for m in container(docs)["volumeMounts"]}


def fail_rule(docs: list[Doc]) -> Doc:
    rule: Doc = job_spec(docs)["podFailurePolicy"]["rules"][0]
    return rule


# --------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------


def test_default_objects(default_docs: list[Doc]) -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in default_docs)
    assert kinds == sorted(
        [
            f"ServiceAccount/{FULLNAME}",
            f"ConfigMap/{FULLNAME}-env",
            f"Role/{FULLNAME}",
            f"RoleBinding/{FULLNAME}",
            f"CronJob/{FULLNAME}",
            f"Pod/{FULLNAME}-test",
        ]
    )


def test_default_labels_follow_helm_create(default_docs: list[Doc]) -> None:
    for doc in default_docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "coin-sync"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/version"] == APP_VERSION
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"coin-sync-{CHART_VERSION}"
    pod_labels = job_spec(default_docs)["template"]["metadata"]["labels"]
    assert pod_labels == {
        "app.kubernetes.io/name": "coin-sync",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "sync",
    }


def test_default_cronjob(default_docs: list[Doc]) -> None:
    spec = find_one(default_docs, "CronJob")["spec"]
    assert spec["schedule"] == "* * * * *"
    assert "timeZone" not in spec
    assert spec["suspend"] is False
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 60
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 3


def test_default_job(default_docs: list[Doc]) -> None:
    job = job_spec(default_docs)
    assert job["backoffLimit"] == 2
    assert job["activeDeadlineSeconds"] == 900
    assert job["ttlSecondsAfterFinished"] == 3600
    for key in ("completionMode", "completions", "parallelism", "backoffLimitPerIndex"):
        assert key not in job
    pod = pod_spec(default_docs)
    assert pod["restartPolicy"] == "Never"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["terminationGracePeriodSeconds"] > int(DEFAULT_ENV["SHUTDOWN_GRACE_SECONDS"])
    assert pod["serviceAccountName"] == FULLNAME
    for key in (
        "nodeSelector",
        "tolerations",
        "affinity",
        "imagePullSecrets",
        "priorityClassName",
        "topologySpreadConstraints",
    ):
        assert key not in pod


def test_default_pod_failure_policy(default_docs: list[Doc]) -> None:
    assert job_spec(default_docs)["podFailurePolicy"] == {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "coin-sync", "operator": "In", "values": [2, 4]},
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def test_default_container(default_docs: list[Doc]) -> None:
    c = container(default_docs)
    assert c["image"] == f"{REPOSITORY}:{APP_VERSION}"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["args"] == ["run"]
    assert "command" not in c
    assert c["envFrom"] == [{"configMapRef": {"name": f"{FULLNAME}-env"}}]
    assert c["resources"] == {
        "requests": {"cpu": "100m", "memory": "96Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_default_security(default_docs: list[Doc]) -> None:
    pod = pod_spec(default_docs)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(default_docs)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_default_env_configmap(default_docs: list[Doc]) -> None:
    assert env_configmap(default_docs) == DEFAULT_ENV


def test_default_volumes(default_docs: list[Doc]) -> None:
    assert volumes(default_docs) == {
        "logs": {"name": "logs", "emptyDir": {"sizeLimit": "256Mi"}},
        "tmp": {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    }
    assert mounts(default_docs) == {
        "logs": {"name": "logs", "mountPath": "/logs"},
        "tmp": {"name": "tmp", "mountPath": "/tmp"},
    }


def test_helm_test_pod_runs_check(default_docs: list[Doc]) -> None:
    pod = find_one(default_docs, "Pod", f"{FULLNAME}-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    (c,) = spec["containers"]
    assert c["args"] == ["check"]
    assert c["image"] == f"{REPOSITORY}:{APP_VERSION}"
    assert c["envFrom"] == [{"configMapRef": {"name": f"{FULLNAME}-env"}}]
    assert {"name": "K8S_INTEGRATION", "value": "off"} in c["env"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/logs", "/tmp"}


def test_no_optional_objects_by_default(default_docs: list[Doc]) -> None:
    for kind in ("Secret", "PersistentVolumeClaim", "NetworkPolicy"):
        assert find_all(default_docs, kind) == []
    assert "BACKEND_TOKEN" not in env_list(default_docs)
    assert "CONFIG_FILE" not in env_list(default_docs)


# --------------------------------------------------------------------------------------
# ci/full-values.yaml: every optional feature
# --------------------------------------------------------------------------------------

FULL = f"{RELEASE}-coinsync"
# ci/full-values.yaml's commonAnnotations, on every object next to its own.
FULL_COMMON_ANNOTATIONS = {"example.com/contact": "markets@example.com"}


@pytest.fixture(scope="module")
def full(helm: Helm) -> list[Doc]:
    return helm.render(CI / "full-values.yaml", kube_version="1.31.0")


def test_full_names_and_labels(full: list[Doc]) -> None:
    cronjob = find_one(full, "CronJob")
    assert cronjob["metadata"]["name"] == FULL
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/name"] == "coinsync"
    assert cronjob["metadata"]["labels"]["tier"] == "sync"
    common = FULL_COMMON_ANNOTATIONS
    assert cronjob["metadata"]["annotations"] == {"owner": "markets-team", **common}
    job_meta = cronjob["spec"]["jobTemplate"]["metadata"]
    assert job_meta["labels"]["example.com/kind"] == "sync-pass"
    assert job_meta["annotations"] == {"example.com/job": "yes", **common}
    pod_meta = job_spec(full)["template"]["metadata"]
    assert pod_meta["labels"]["team"] == "markets"
    assert pod_meta["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        **common,
    }


def test_full_schedule_fields(full: list[Doc]) -> None:
    spec = find_one(full, "CronJob")["spec"]
    assert spec["schedule"] == "*/5 * * * *"
    assert spec["timeZone"] == "Europe/Madrid"
    assert spec["suspend"] is True
    assert spec["concurrencyPolicy"] == "Replace"
    assert spec["startingDeadlineSeconds"] == 120
    assert spec["successfulJobsHistoryLimit"] == 5
    assert spec["failedJobsHistoryLimit"] == 7


def test_full_job_fields(full: list[Doc]) -> None:
    job = job_spec(full)
    assert job["activeDeadlineSeconds"] == 1800
    assert job["ttlSecondsAfterFinished"] == 86400
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == 3
    assert job["backoffLimitPerIndex"] == 2
    assert job["maxFailedIndexes"] == 1
    assert "backoffLimit" not in job  # per index instead
    assert pod_spec(full)["terminationGracePeriodSeconds"] == 45


def test_full_pod_failure_policy(full: list[Doc]) -> None:
    assert job_spec(full)["podFailurePolicy"]["rules"] == [
        {
            "action": "FailIndex",
            "onExitCodes": {"containerName": "coin-sync", "operator": "In", "values": [2, 130]},
        },
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {
            "action": "Ignore",
            "onExitCodes": {"containerName": "coin-sync", "operator": "In", "values": [143]},
        },
        {
            "action": "Count",
            "onExitCodes": {"containerName": "coin-sync", "operator": "In", "values": [1, 3]},
        },
    ]


def test_full_pod_scheduling(full: list[Doc]) -> None:
    pod = pod_spec(full)
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["priorityClassName"] == "batch-low"
    assert pod["serviceAccountName"] == "coin-sync-runner"


def test_full_container(full: list[Doc]) -> None:
    c = container(full)
    assert c["image"] == (
        "registry.example.com/coin-sync@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert c["imagePullPolicy"] == "Always"
    assert c["args"] == ["run", "--log-level", "DEBUG"]
    assert c["envFrom"] == [
        {"configMapRef": {"name": f"{FULL}-env"}},
        {"secretRef": {"name": "coin-sync-extra", "optional": True}},
    ]
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    env = env_list(full)
    assert env["BACKEND_TOKEN_FILE"] == "/var/run/secrets/coin-sync/token"
    assert "BACKEND_TOKEN" not in env
    assert env["CONFIG_FILE"] == "/etc/coin-sync/config.yaml"
    assert env["TZ"] == "Europe/Madrid"
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_full_env_configmap(full: list[Doc]) -> None:
    assert env_configmap(full, FULL) == {
        "BACKEND_URL": "https://backend.markets.svc.cluster.local",
        "SHARD_COUNT": "3",
        "LOG_LEVEL": "DEBUG",
        "LOG_DIR": "/var/log/coin-sync",
        "LOG_FORMAT": "json",
        "HTTP_TIMEOUT": "120.5",
        # MAX_RETRIES and RETRY_MAX_DELAY_SECONDS are in configFile: the file wins.
        "RETRY_DELAY_SECONDS": "0.5",
        "SYMBOLS_TO_SYNC": "BTCUSDT,ETHUSDT,币安人生USDT",
        "SYMBOLS_INCLUDE": "NEWCOINUSDT",
        "SYMBOLS_EXCLUDE": "LUNAUSDT,USTCUSDT",
        "AMBIGUOUS_HOLD_SECONDS": "900",
        "SYNC_CONCURRENCY": "16",
        "SYNC_CONCURRENCY_MAX": "64",
        "PASS_BUDGET_SECONDS": "250",  # 5/6 of "*/5 * * * *"
        "BACKEND_WAIT_SECONDS": "90",
        "PASS_DEADLINE_SECONDS": "1200",
        "SHUTDOWN_GRACE_SECONDS": "25",
        "SUMMARY_FILE": "/var/log/coin-sync/summary.json",
        "STALE_AFTER_SECONDS": "300.5",
        "FAIL_ON_STALE": "true",
        "K8S_INTEGRATION": "on",
        "K8S_LOCK_REQUIRED": "true",
        "LEASE_NAME": f"{FULL}-lock",
        "LEASE_DURATION_SECONDS": "90",
        "STATUS_CONFIGMAP": f"{FULL}-status",
    }


def test_full_config_file(full: list[Doc]) -> None:
    cm = find_one(full, "ConfigMap", f"{FULL}-config")
    assert yaml.safe_load(cm["data"]["config.yaml"]) == {
        "MAX_RETRIES": 6,
        "RETRY_MAX_DELAY_SECONDS": 45,
    }
    assert volumes(full)["config-file"]["configMap"] == {
        "name": f"{FULL}-config",
        "items": [{"key": "config.yaml", "path": "config.yaml"}],
    }
    assert mounts(full)["config-file"] == {
        "name": "config-file",
        "mountPath": "/etc/coin-sync",
        "readOnly": True,
    }


def test_full_token_secret_as_file(full: list[Doc]) -> None:
    secret = find_one(full, "Secret", FULL)
    assert base64.b64decode(secret["data"]["BACKEND_TOKEN"]).decode() == "s3cr3t-t0ken"
    assert volumes(full)["backend-token"]["secret"] == {
        "secretName": FULL,
        # Readable whatever the container's UID/GID: no reliance on fsGroup.
        "defaultMode": 0o444,
        "items": [{"key": "BACKEND_TOKEN", "path": "token"}],
    }
    assert mounts(full)["backend-token"]["mountPath"] == "/var/run/secrets/coin-sync"
    test_pod = find_one(full, "Pod", f"{FULL}-test")
    (token_volume,) = [v for v in test_pod["spec"]["volumes"] if v["name"] == "backend-token"]
    assert token_volume["secret"]["defaultMode"] == 0o444


def test_token_file_mode_does_not_rely_on_fs_group(helm: Helm) -> None:
    """Without fsGroup the secret's files are root:root: 0444 keeps them readable."""
    docs = helm.render(
        set_values=["backend.existingSecret.name=creds", "backend.tokenAsFile=true", "podSecurityContext.fsGroup=null"]
    )
    assert "fsGroup" not in pod_spec(docs)["securityContext"]
    mode = volumes(docs)["backend-token"]["secret"]["defaultMode"]
    assert mode == 0o444
    assert mode & 0o004, "others (any UID without the group) must be able to read the token"


def test_token_never_outside_the_secret(helm: Helm) -> None:
    for extra in ([], ["backend.tokenAsFile=true"]):
        result = helm.template(set_values=["backend.token=tok-XYZ-123", *extra]).check()
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        for doc in docs:
            if doc["kind"] == "Secret":
                continue
            assert "tok-XYZ-123" not in yaml.safe_dump(doc, allow_unicode=True), doc["kind"]
            assert "dG9rLVhZWi0xMjM=" not in yaml.safe_dump(doc), doc["kind"]
        env = env_list(docs)
        if extra:
            assert "BACKEND_TOKEN" not in env
        else:
            assert env["BACKEND_TOKEN"] == {"secretKeyRef": {"name": FULLNAME, "key": "BACKEND_TOKEN"}}


def test_full_logs_persistence(full: list[Doc]) -> None:
    pvc = find_one(full, "PersistentVolumeClaim", f"{FULL}-logs")
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep", **FULL_COMMON_ANNOTATIONS}
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "5Gi"}},
    }
    assert volumes(full)["logs"] == {
        "name": "logs",
        "persistentVolumeClaim": {"claimName": f"{FULL}-logs"},
    }
    assert mounts(full)["logs"]["mountPath"] == "/var/log/coin-sync"
    assert volumes(full)["tmp"]["emptyDir"] == {"sizeLimit": "32Mi"}
    assert volumes(full)["ca-bundle"] == {"name": "ca-bundle", "configMap": {"name": "ca-bundle"}}
    assert mounts(full)["ca-bundle"]["mountPath"] == "/etc/ssl/custom"


def test_full_helm_test_pod_shares_settings(full: list[Doc]) -> None:
    pod = find_one(full, "Pod", f"{FULL}-test")
    (c,) = pod["spec"]["containers"]
    assert c["args"] == ["check"]
    assert c["image"] == container(full)["image"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["K8S_INTEGRATION"] == "off"
    assert env["BACKEND_TOKEN_FILE"] == "/var/run/secrets/coin-sync/token"
    assert env["CONFIG_FILE"] == "/etc/coin-sync/config.yaml"
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["logs"] == {"name": "logs", "emptyDir": {"sizeLimit": "128Mi"}}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_full_service_account(full: list[Doc]) -> None:
    sa = find_one(full, "ServiceAccount", "coin-sync-runner")
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/coin-sync",
        **FULL_COMMON_ANNOTATIONS,
    }
    binding = find_one(full, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coin-sync-runner", "namespace": NAMESPACE}]


def test_full_network_policy(full: list[Doc]) -> None:
    policy = find_one(full, "NetworkPolicy", FULL)["spec"]
    assert policy["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "coinsync", "app.kubernetes.io/instance": RELEASE}
    }
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy
    dns, backend, api, extra = policy["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert backend["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}]
    assert backend["to"][0]["podSelector"] == {"matchLabels": {"app": "backend"}}
    assert api == {
        "ports": [{"protocol": "TCP", "port": 443}],
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "fd00::1/128"}}],
    }
    assert extra["ports"] == [{"port": 9090, "protocol": "TCP"}]


# --------------------------------------------------------------------------------------
# ci/zero-values.yaml: 0 and false render as given
# --------------------------------------------------------------------------------------


def test_zero_values_render_as_zero(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["zero-values"]
    spec = find_one(docs, "CronJob")["spec"]
    assert spec["suspend"] is False
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        assert spec[key] == 0 and type(spec[key]) is int, key
    job = job_spec(docs)
    for key in ("ttlSecondsAfterFinished", "backoffLimit"):
        assert job[key] == 0 and type(job[key]) is int, key
    # null: not rendered (no deadline); the schema forbids 0 for these two.
    assert "startingDeadlineSeconds" not in spec
    assert "activeDeadlineSeconds" not in job
    assert "podFailurePolicy" not in job
    data = env_configmap(docs)
    for key in (
        "MAX_RETRIES",
        "RETRY_DELAY_SECONDS",
        "RETRY_MAX_DELAY_SECONDS",
        "BACKEND_WAIT_SECONDS",
        "PASS_DEADLINE_SECONDS",
        "SHUTDOWN_GRACE_SECONDS",
    ):
        assert data[key] == "0", key
    assert data["K8S_LOCK_REQUIRED"] == "false"


def test_zero_values_optional_objects_off(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["zero-values"]
    kinds = {d["kind"] for d in docs}
    assert kinds == {"ConfigMap", "CronJob"}  # no SA, no RBAC, no test pod
    pod = pod_spec(docs)
    assert pod["serviceAccountName"] == "default"
    assert pod["automountServiceAccountToken"] is True  # the integration is still on
    assert volumes(docs)["logs"] == {"name": "logs", "emptyDir": {}}
    assert volumes(docs)["tmp"] == {"name": "tmp", "emptyDir": {}}


def test_zero_backoff_limit_with_set(helm: Helm) -> None:
    docs = helm.render(
        set_values=[
            "backoffLimit=0",
            "ttlSecondsAfterFinished=0",
            "successfulJobsHistoryLimit=0",
            "failedJobsHistoryLimit=0",
        ]
    )
    assert job_spec(docs)["backoffLimit"] == 0
    assert job_spec(docs)["ttlSecondsAfterFinished"] == 0
    assert find_one(docs, "CronJob")["spec"]["successfulJobsHistoryLimit"] == 0
    assert find_one(docs, "CronJob")["spec"]["failedJobsHistoryLimit"] == 0


def test_null_ttl_is_not_rendered(helm: Helm) -> None:
    docs = helm.render(set_values=["ttlSecondsAfterFinished=null"])
    assert "ttlSecondsAfterFinished" not in job_spec(docs)


# --------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", ["1.29.0", "1.31.0", "1.34.0"])
def test_shards_with_backoff_limit_per_index(helm: Helm, kube_version: str) -> None:
    docs = helm.render(CI / "sharded-values.yaml", kube_version=kube_version)
    job = job_spec(docs)
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == 4
    assert job["backoffLimitPerIndex"] == 1
    assert job["maxFailedIndexes"] == 2
    assert "backoffLimit" not in job
    # FailIndex requires backoffLimitPerIndex; it fails the shard at once.
    assert fail_rule(docs)["action"] == "FailIndex"
    assert fail_rule(docs)["onExitCodes"]["values"] == [2, 4]
    assert env_configmap(docs)["SHARD_COUNT"] == "4"
    assert "JOB_COMPLETION_INDEX" not in env_configmap(docs)  # Kubernetes sets it
    assert "SHARD_INDEX" not in env_configmap(docs)


@pytest.mark.parametrize("kube_version", ["1.27.0", "1.28.9"])
def test_shards_before_backoff_limit_per_index(helm: Helm, kube_version: str) -> None:
    docs = helm.render(CI / "sharded-values.yaml", kube_version=kube_version)
    job = job_spec(docs)
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == 4
    assert "backoffLimitPerIndex" not in job
    assert "maxFailedIndexes" not in job
    assert job["backoffLimit"] == 2
    assert fail_rule(docs)["action"] == "FailJob"


def test_shards_without_per_index_when_null(helm: Helm) -> None:
    docs = helm.render(set_values=["shards=3", "backoffLimitPerIndex=null"], kube_version="1.31.0")
    job = job_spec(docs)
    assert job["completions"] == 3
    assert "backoffLimitPerIndex" not in job
    assert job["backoffLimit"] == 2
    assert fail_rule(docs)["action"] == "FailJob"


def test_one_shard_is_a_plain_job(helm: Helm) -> None:
    docs = helm.render(set_values=["shards=1"], kube_version="1.31.0")
    job = job_spec(docs)
    for key in ("completionMode", "completions", "parallelism", "backoffLimitPerIndex"):
        assert key not in job
    assert fail_rule(docs)["action"] == "FailJob"


def test_sharded_logs_on_existing_claim(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["sharded-values"]
    assert find_all(docs, "PersistentVolumeClaim") == []
    assert volumes(docs)["logs"]["persistentVolumeClaim"] == {"claimName": "coin-sync-logs"}


def test_sharded_network_policy_derives_backend_port(ci_docs: dict[str, list[Doc]]) -> None:
    policy = find_one(ci_docs["sharded-values"], "NetworkPolicy")["spec"]
    _dns, backend, api = policy["egress"]
    assert backend == {
        "ports": [{"protocol": "TCP", "port": 8888}],
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "markets"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "backend"}},
            }
        ],
    }
    assert api == {
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
    }


@pytest.mark.parametrize(
    ("url", "port"),
    [("http://backend", 80), ("https://api.example.com/base", 443), ("http://[::1]:9000", 9000)],
)
def test_network_policy_backend_port_from_url(helm: Helm, url: str, port: int) -> None:
    docs = helm.render(
        set_values=["networkPolicy.enabled=true", f"backend.url={url}", "kubernetes.integration.enabled=false"],
        set_json=['networkPolicy.backend.to=[{"ipBlock":{"cidr":"203.0.113.10/32"}}]'],
    )
    backend = find_one(docs, "NetworkPolicy")["spec"]["egress"][1]
    assert backend["ports"] == [{"protocol": "TCP", "port": port}]
    assert backend["to"] == [{"ipBlock": {"cidr": "203.0.113.10/32"}}]


# --------------------------------------------------------------------------------------
# Secret / existingSecret
# --------------------------------------------------------------------------------------


def test_existing_secret(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["existing-secret-values"]
    assert find_all(docs, "Secret") == []
    assert find_one(docs, "CronJob")["metadata"]["name"] == "markets-sync"
    assert env_list(docs)["BACKEND_TOKEN"] == {"secretKeyRef": {"name": "backend-credentials", "key": "api-token"}}
    test_pod = find_one(docs, "Pod")
    assert {
        "name": "BACKEND_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "backend-credentials", "key": "api-token"}},
    } in test_pod["spec"]["containers"][0]["env"]
    assert "BACKEND_TOKEN" not in env_configmap(docs, "markets-sync")


def test_existing_secret_as_file(helm: Helm) -> None:
    docs = helm.render(
        set_values=[
            "backend.existingSecret.name=creds",
            "backend.existingSecret.key=tok",
            "backend.tokenAsFile=true",
        ]
    )
    assert find_all(docs, "Secret") == []
    assert volumes(docs)["backend-token"]["secret"]["secretName"] == "creds"
    assert volumes(docs)["backend-token"]["secret"]["items"] == [{"key": "tok", "path": "token"}]
    assert env_list(docs)["BACKEND_TOKEN_FILE"] == "/var/run/secrets/coin-sync/token"


def test_token_and_existing_secret_are_exclusive(helm: Helm) -> None:
    result = helm.template(set_values=["backend.token=x", "backend.existingSecret.name=y"])
    assert result.returncode != 0
    assert "excluyentes" in result.stderr


# --------------------------------------------------------------------------------------
# Other values
# --------------------------------------------------------------------------------------


def test_image_tag_and_pull_policy(helm: Helm) -> None:
    docs = helm.render(set_values=["image.repository=ghcr.io/x/coin-sync", "image.tag=1.2.3", "image.pullPolicy=Never"])
    assert container(docs)["image"] == "ghcr.io/x/coin-sync:1.2.3"
    assert container(docs)["imagePullPolicy"] == "Never"


def test_symbols_to_sync_as_text(helm: Helm) -> None:
    docs = helm.render(set_values=["config.symbolsToSync=BTCUSDT\\,ETHUSDT"])
    assert env_configmap(docs)["SYMBOLS_TO_SYNC"] == "BTCUSDT,ETHUSDT"


def test_big_and_fractional_numbers_render_plainly(helm: Helm, values_file: Callable[..., Path]) -> None:
    path = values_file(
        "config:\n  httpTimeout: 1000000\n  retryDelaySeconds: 0.25\n"
        "kubernetes:\n  integration:\n    leaseDurationSeconds: 3600\n"
        "activeDeadlineSeconds: 10000000\nterminationGracePeriodSeconds: 2000000\n"
    )
    docs = helm.render(path)
    data = env_configmap(docs)
    assert data["HTTP_TIMEOUT"] == "1000000"  # not 1e+06
    assert data["RETRY_DELAY_SECONDS"] == "0.25"
    assert data["LEASE_DURATION_SECONDS"] == "3600"
    assert job_spec(docs)["activeDeadlineSeconds"] == 10000000
    assert pod_spec(docs)["terminationGracePeriodSeconds"] == 2000000
    docs = helm.render(set_values=["config.httpTimeout=1000000"])
    assert env_configmap(docs)["HTTP_TIMEOUT"] == "1000000"


def test_config_file_keys_leave_the_env(helm: Helm) -> None:
    docs = helm.render(set_values=["configFile.HTTP_TIMEOUT=120", "configFile.LOG_LEVEL=DEBUG"])
    data = env_configmap(docs)
    assert "HTTP_TIMEOUT" not in data and "LOG_LEVEL" not in data
    assert data["MAX_RETRIES"] == "3"
    content = find_one(docs, "ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"]
    assert yaml.safe_load(content) == {"HTTP_TIMEOUT": 120, "LOG_LEVEL": "DEBUG"}
    assert env_list(docs)["CONFIG_FILE"] == "/etc/coin-sync/config.yaml"


GRACE_MESSAGE = "debe ser al menos config.shutdownGraceSeconds"


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        # The defaults, 30 vs 20: exactly the 10 s the pass needs after its grace.
        ([], True),
        (["config.shutdownGraceSeconds=20"], True),
        (["config.shutdownGraceSeconds=21"], False),
        (["config.shutdownGraceSeconds=20.5"], False),  # --set: the string "20.5"
        (["config.shutdownGraceSeconds=19.5"], True),
        (["terminationGracePeriodSeconds=29"], False),
        (["terminationGracePeriodSeconds=31", "config.shutdownGraceSeconds=21"], True),
        (["terminationGracePeriodSeconds=10", "config.shutdownGraceSeconds=0"], True),
        (["terminationGracePeriodSeconds=9", "config.shutdownGraceSeconds=0"], False),
        # The configFile value counts too (it wins over config.*).
        (["configFile.SHUTDOWN_GRACE_SECONDS=21"], False),
        (["configFile.SHUTDOWN_GRACE_SECONDS=20", "config.shutdownGraceSeconds=25"], True),
    ],
)
def test_termination_grace_covers_shutdown_grace_plus_ten(helm: Helm, values: list[str], ok: bool) -> None:
    """After SHUTDOWN_GRACE_SECONDS the pass still releases its Lease, posts its Event and
    writes its status: terminationGracePeriodSeconds >= shutdownGraceSeconds + 10."""
    result = helm.template(set_values=values)
    if ok:
        result.check()
    else:
        assert result.returncode != 0, values
        assert "terminationGracePeriodSeconds" in result.stderr
        assert GRACE_MESSAGE in result.stderr, result.stderr


def test_termination_grace_check_uses_the_values_file_numbers(helm: Helm, values_file: Callable[..., Path]) -> None:
    # Distinct file names: helm.template caches by its arguments.
    ok = values_file("terminationGracePeriodSeconds: 45\nconfig:\n  shutdownGraceSeconds: 35\n", "ok.yaml")
    helm.template(ok).check()
    short = values_file("terminationGracePeriodSeconds: 45\nconfig:\n  shutdownGraceSeconds: 35.5\n", "short.yaml")
    result = helm.template(short)
    assert result.returncode != 0 and GRACE_MESSAGE in result.stderr


def test_pass_deadline_must_be_below_active_deadline(helm: Helm) -> None:
    result = helm.template(set_values=["config.passDeadlineSeconds=900"])
    assert result.returncode != 0
    assert "activeDeadlineSeconds" in result.stderr
    helm.template(set_values=["config.passDeadlineSeconds=600"]).check()
    helm.template(set_values=["config.passDeadlineSeconds=5000", "activeDeadlineSeconds=null"]).check()


def test_max_failed_indexes_below_shards(helm: Helm) -> None:
    result = helm.template(set_values=["shards=2", "maxFailedIndexes=2"], kube_version="1.31.0")
    assert result.returncode != 0
    assert "maxFailedIndexes" in result.stderr


def test_exit_codes_sorted_and_conflicts_rejected(helm: Helm) -> None:
    docs = helm.render(set_json=["podFailurePolicy.failOnExitCodes=[3,2]"])
    assert fail_rule(docs)["onExitCodes"]["values"] == [2, 3]
    result = helm.template(set_json=["podFailurePolicy.ignoreExitCodes=[2]"])
    assert result.returncode != 0
    assert "failOnExitCodes" in result.stderr


def test_pod_failure_policy_without_disruption_rule(helm: Helm) -> None:
    docs = helm.render(set_values=["podFailurePolicy.ignoreDisruptions=false"])
    assert job_spec(docs)["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onExitCodes": {"containerName": "coin-sync", "operator": "In", "values": [2, 4]}}
    ]
    docs = helm.render(set_values=["podFailurePolicy.enabled=false"])
    assert "podFailurePolicy" not in job_spec(docs)


def test_storage_class_dash_means_empty(helm: Helm) -> None:
    docs = helm.render(set_values=["logs.persistence.enabled=true", "logs.persistence.storageClass=-"])
    assert find_one(docs, "PersistentVolumeClaim")["spec"]["storageClassName"] == ""
    docs = helm.render(set_values=["logs.persistence.enabled=true"])
    assert "storageClassName" not in find_one(docs, "PersistentVolumeClaim")["spec"]


def test_service_account_name_without_create(helm: Helm) -> None:
    docs = helm.render(set_values=["serviceAccount.create=false", "serviceAccount.name=ops"])
    assert find_all(docs, "ServiceAccount") == []
    assert pod_spec(docs)["serviceAccountName"] == "ops"
    assert find_one(docs, "RoleBinding")["subjects"][0]["name"] == "ops"


def test_fullname_is_truncated_for_cronjob_names(helm: Helm) -> None:
    release = "a-very-long-release-name-for-a-cronjob-that-goes-on"
    docs = helm.render(release=release)
    name = find_one(docs, "CronJob")["metadata"]["name"]
    assert len(name) <= 52 and not name.endswith("-")
    docs = helm.render(set_values=["fullnameOverride=coin-sync"], release="prod")
    assert find_one(docs, "CronJob")["metadata"]["name"] == "coin-sync"


def test_log_dir_moves_the_logs_mount(helm: Helm) -> None:
    docs = helm.render(set_values=["config.logDir=/data/logs"])
    assert mounts(docs)["logs"]["mountPath"] == "/data/logs"
    assert env_configmap(docs)["LOG_DIR"] == "/data/logs"


def test_helm_test_pod_can_be_disabled(helm: Helm) -> None:
    docs = helm.render(set_values=["tests.enabled=false"])
    assert find_all(docs, "Pod") == []


# --------------------------------------------------------------------------------------
# Values as `--set` types them (strvals: 5326041 is an int64, 0.5 the string "0.5")
# --------------------------------------------------------------------------------------


def test_all_digit_image_tag(helm: Helm, values_file: Callable[..., Path]) -> None:
    """skaffold passes `--set image.tag=<short git sha>`; 5326041 arrives as a number."""
    docs = helm.render(set_values=["image.tag=5326041"])
    assert container(docs)["image"] == f"{REPOSITORY}:5326041"
    test_pod = find_one(docs, "Pod", f"{FULLNAME}-test")
    assert test_pod["spec"]["containers"][0]["image"] == f"{REPOSITORY}:5326041"
    # From a values file the number is a float64: still the digits, not 5.326041e+06.
    docs = helm.render(values_file("image:\n  tag: 5326041\n"))
    assert container(docs)["image"] == f"{REPOSITORY}:5326041"
    # A leading zero keeps it a string for --set; the string pattern still applies.
    docs = helm.render(set_values=["image.tag=0326041"])
    assert container(docs)["image"] == f"{REPOSITORY}:0326041"
    docs = helm.render(set_values=["image.repository=registry.example:5000/coin-sync", "image.tag=123456789012"])
    assert container(docs)["image"] == "registry.example:5000/coin-sync:123456789012"


# (value, env var, --set value, rendered)
FRACTIONAL = [
    ("config.httpTimeout", "HTTP_TIMEOUT", "0.5", "0.5"),
    ("config.retryDelaySeconds", "RETRY_DELAY_SECONDS", "0.25", "0.25"),
    ("config.retryMaxDelaySeconds", "RETRY_MAX_DELAY_SECONDS", "7.5", "7.5"),
    ("config.backendWaitSeconds", "BACKEND_WAIT_SECONDS", "2.5", "2.5"),
    ("config.passDeadlineSeconds", "PASS_DEADLINE_SECONDS", "600.5", "600.5"),
    ("config.shutdownGraceSeconds", "SHUTDOWN_GRACE_SECONDS", "19.5", "19.5"),
    ("config.httpTimeout", "HTTP_TIMEOUT", "120", "120"),  # an int64 from --set
]


@pytest.mark.parametrize(("value", "env", "given", "rendered"), FRACTIONAL)
def test_fractional_seconds_with_set(helm: Helm, value: str, env: str, given: str, rendered: str) -> None:
    """`--set config.httpTimeout=0.5` hands the schema the string "0.5" (helm v3 and v4):
    accepted as a number and rendered as given (quoted) in the ConfigMap."""
    docs = helm.render(set_values=[f"{value}={given}"])
    assert env_configmap(docs)[env] == rendered


def test_fractional_seconds_with_set_in_config_file(helm: Helm) -> None:
    docs = helm.render(set_values=["configFile.HTTP_TIMEOUT=0.5", "configFile.SHUTDOWN_GRACE_SECONDS=19.5"])
    content = find_one(docs, "ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"]
    # The program reads every value of the file as text, as it reads the environment.
    assert {k: str(v) for k, v in yaml.safe_load(content).items()} == {
        "HTTP_TIMEOUT": "0.5",
        "SHUTDOWN_GRACE_SECONDS": "19.5",
    }
    assert "HTTP_TIMEOUT" not in env_configmap(docs)


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("config.httpTimeout=0.0", "/config/httpTimeout"),  # must be > 0
        ("config.httpTimeout=00", "/config/httpTimeout"),
        ("config.httpTimeout=fast", "/config/httpTimeout"),
        ("config.httpTimeout=1e3", "/config/httpTimeout"),
        ("config.retryDelaySeconds=-0.5", "/config/retryDelaySeconds"),
        ("config.shutdownGraceSeconds=.5", "/config/shutdownGraceSeconds"),
        ("configFile.HTTP_TIMEOUT=0.0", "/configFile/HTTP_TIMEOUT"),
        ("configFile.BACKEND_WAIT_SECONDS=soon", "/configFile/BACKEND_WAIT_SECONDS"),
    ],
)
def test_numeric_strings_must_be_numbers(helm: Helm, setting: str, path: str) -> None:
    result = helm.template(set_values=[setting])
    assert result.returncode != 0, setting
    assert path in result.stderr, result.stderr


# --------------------------------------------------------------------------------------
# Checks the schema cannot express
# --------------------------------------------------------------------------------------

FAIL_INDEX_RULE = (
    'podFailurePolicy.extraRules=[{"action":"FailIndex","onExitCodes":'
    '{"containerName":"coin-sync","operator":"In","values":[4]}}]'
)


@pytest.mark.parametrize(
    ("values", "kube_version"),
    [
        ([], "1.31.0"),  # one shard: not an Indexed Job
        (["shards=3"], "1.28.0"),  # no backoffLimitPerIndex before 1.29
        (["shards=3", "backoffLimitPerIndex=null"], "1.31.0"),
    ],
)
def test_fail_index_rule_needs_backoff_limit_per_index(helm: Helm, values: list[str], kube_version: str) -> None:
    result = helm.template(set_values=values, set_json=[FAIL_INDEX_RULE], kube_version=kube_version)
    assert result.returncode != 0, "Kubernetes rechazaría FailIndex sin backoffLimitPerIndex"
    assert "podFailurePolicy.extraRules" in result.stderr
    assert "FailIndex" in result.stderr and "backoffLimitPerIndex" in result.stderr


def test_fail_index_rule_with_backoff_limit_per_index(helm: Helm) -> None:
    docs = helm.render(set_values=["shards=3"], set_json=[FAIL_INDEX_RULE], kube_version="1.31.0")
    assert job_spec(docs)["backoffLimitPerIndex"] == 1
    assert job_spec(docs)["podFailurePolicy"]["rules"][-1]["action"] == "FailIndex"
    # Not rendered at all without the policy: nothing to reject.
    docs = helm.render(set_values=["podFailurePolicy.enabled=false"], set_json=[FAIL_INDEX_RULE])
    assert "podFailurePolicy" not in job_spec(docs)


@pytest.mark.parametrize(
    "modes",
    [
        None,  # the default, [ReadWriteOnce]
        ["ReadWriteOnce"],
        ["ReadWriteOncePod"],
        ["ReadOnlyMany"],
        ["ReadWriteOnce", "ReadOnlyMany"],
        ["ReadWriteMany", "ReadWriteOncePod"],  # ReadWriteOncePod blocks whatever else
    ],
)
def test_sharded_persistent_logs_need_read_write_many(helm: Helm, modes: list[str] | None) -> None:
    """Parallel shards on different nodes cannot mount a ReadWriteOnce PVC."""
    set_json = [f"logs.persistence.accessModes={json.dumps(modes)}"] if modes else []
    result = helm.template(set_values=["shards=2", "logs.persistence.enabled=true"], set_json=set_json)
    assert result.returncode != 0, modes
    assert "logs.persistence" in result.stderr and "ReadWriteMany" in result.stderr
    assert "shards = 2" in result.stderr


def test_persistent_logs_access_modes_that_work(helm: Helm) -> None:
    docs = helm.render(
        set_values=["shards=2", "logs.persistence.enabled=true"],
        set_json=['logs.persistence.accessModes=["ReadWriteMany"]'],
    )
    assert find_one(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    # One shard: a single pod, any mode.
    for modes in (["ReadWriteOnce"], ["ReadWriteOncePod"]):
        docs = helm.render(
            set_values=["logs.persistence.enabled=true"], set_json=[f"logs.persistence.accessModes={json.dumps(modes)}"]
        )
        assert find_one(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == modes
    # An existing claim's modes are unknown to the chart: NOTES warns instead.
    docs = helm.render(
        set_values=["shards=2", "logs.persistence.enabled=true", "logs.persistence.existingClaim=shared-logs"]
    )
    assert find_all(docs, "PersistentVolumeClaim") == []
    assert volumes(docs)["logs"]["persistentVolumeClaim"] == {"claimName": "shared-logs"}


def test_declared_symbols_and_the_hold_reach_the_program(helm: Helm) -> None:
    docs = helm.render(
        set_values=[
            "config.symbolsInclude={NEWCOINUSDT,OTHERUSDT}",
            "config.symbolsExclude=LUNAUSDT",
            "config.ambiguousHoldSeconds=0",
        ]
    )
    env = env_configmap(docs)
    assert (env["SYMBOLS_INCLUDE"], env["SYMBOLS_EXCLUDE"]) == ("NEWCOINUSDT,OTHERUSDT", "LUNAUSDT")
    assert env["AMBIGUOUS_HOLD_SECONDS"] == "0"  # zero renders: it means "no hold"
    settings = load_settings({}, env)
    assert settings.sync.include == ("NEWCOINUSDT", "OTHERUSDT") and settings.sync.ambiguous_hold_seconds == 0
    assert "AMBIGUOUS_HOLD_SECONDS" not in env_configmap(helm.render())  # null: the program's 2 × HTTP_TIMEOUT


@pytest.mark.parametrize(
    ("values", "budget"),
    [
        ([], "50"),
        (["schedule=*/10 * * * *"], "500"),
        (["schedule=@hourly"], "3000"),
        (["schedule=0 3 * * 1"], None),  # no interval to derive: no budget
        (["schedule=0 3 * * 1", "config.passBudgetSeconds=120"], "120"),
        (["config.passBudgetSeconds=0"], "0"),  # zero renders: "no budget"
    ],
)
def test_the_pass_budget_follows_the_schedule(helm: Helm, values: list[str], budget: str | None) -> None:
    assert env_configmap(helm.render(set_values=values)).get("PASS_BUDGET_SECONDS") == budget


def test_adaptive_concurrency_and_no_service_links_by_default(helm: Helm, default_docs: list[Doc]) -> None:
    env = env_configmap(default_docs)
    settings = load_settings({}, env)
    assert (settings.sync.concurrency, settings.sync.concurrency_max) == ("auto", 64)
    assert pod_spec(default_docs)["enableServiceLinks"] is False
    fixed = env_configmap(helm.render(set_values=["config.syncConcurrency=12", "enableServiceLinks=true"]))
    assert load_settings({}, fixed).sync.concurrency == 12
