"""The test node's reading of a pod spec (tests/cluster/pod_plan.py), without a cluster:
what it runs, with which env, files and security, and what it refuses."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from node_agent import run_args, termination_message
from pod_plan import Doc, File, UnsupportedPod, plan_pod, quantity


@dataclass
class FakeCluster:
    """pod_plan.ClusterView from dicts."""

    config_maps: dict[str, Doc] = field(default_factory=dict)
    secrets: dict[str, Doc] = field(default_factory=dict)
    api_host: str = "127.0.0.1"
    api_port: int = 6443
    tokens: list[tuple[str, str | None, int]] = field(default_factory=list)

    def config_map(self, namespace: str, name: str) -> Doc | None:
        data = self.config_maps.get(name)
        return None if data is None else {"kind": "ConfigMap", "data": data}

    def secret(self, namespace: str, name: str) -> Doc | None:
        data = self.secrets.get(name)
        if data is None:
            return None
        return {"kind": "Secret", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}

    def token(self, pod: Doc, service_account: str, audience: str | None, expiration: int) -> str:
        self.tokens.append((service_account, audience, expiration))
        return f"token-of-{service_account}"


def a_pod(**container: Any) -> Doc:
    """A pod as the API server returns one the chart's Job made (defaults included)."""
    c = {
        "name": "coin-sync",
        "image": "127.0.0.1:5000/coin-sync@sha256:abc",
        "imagePullPolicy": "IfNotPresent",
        "args": ["run"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "96Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "logs", "mountPath": "/logs"},
            {
                "name": "kube-api-access-x",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            },
        ],
    } | container
    return {
        "metadata": {
            "name": "rel-coin-sync-1-abcde",
            "namespace": "ns",
            "uid": "u-1",
            "labels": {"batch.kubernetes.io/job-name": "rel-coin-sync-1"},
            "annotations": {"batch.kubernetes.io/job-completion-index": "2"},
        },
        "spec": {
            "containers": [c],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "rel-coin-sync",
            "serviceAccount": "rel-coin-sync",
            "nodeName": "node-1",
            "enableServiceLinks": False,
            "schedulerName": "default-scheduler",
            "priority": 0,
            "preemptionPolicy": "PreemptLowerThan",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
            "securityContext": {"runAsUser": 10001, "fsGroup": 10001, "fsGroupChangePolicy": "OnRootMismatch"},
            "volumes": [
                {"name": "logs", "emptyDir": {"sizeLimit": "256Mi"}},
                {
                    "name": "kube-api-access-x",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {
                                "downwardAPI": {
                                    "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                                }
                            },
                        ],
                    },
                },
            ],
        },
    }


def cluster() -> FakeCluster:
    return FakeCluster(
        config_maps={"kube-root-ca.crt": {"ca.crt": "PEM"}, "env": {"BACKEND_URL": "http://127.0.0.1:1", "X": "cm"}},
        secrets={"tok": {"BACKEND_TOKEN": "s3cr3t"}},
    )


def test_the_charts_pod_is_planned_with_its_env_security_and_token_volume() -> None:
    view = cluster()
    pod = a_pod(
        envFrom=[{"configMapRef": {"name": "env"}}],
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "JOB_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}},
            },
            {
                "name": "JOB_COMPLETION_INDEX",
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
                },
            },
            {"name": "BACKEND_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "BACKEND_TOKEN"}}},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "env", "key": "X"}}},
            {"name": "X", "value": "literal wins over envFrom"},
            {"name": "URL2", "value": "$(BACKEND_URL)/x $$(BACKEND_URL) $(NOPE)"},
        ],
    )
    plan = plan_pod(pod, view)
    assert plan.env == {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "BACKEND_URL": "http://127.0.0.1:1",
        "X": "literal wins over envFrom",
        "POD_NAME": "rel-coin-sync-1-abcde",
        "JOB_NAME": "rel-coin-sync-1",
        "JOB_COMPLETION_INDEX": "2",
        "BACKEND_TOKEN": "s3cr3t",
        "FROM_CM": "cm",
        "URL2": "http://127.0.0.1:1/x $(BACKEND_URL) $(NOPE)",
    }
    assert (plan.user, plan.group, plan.fs_group, plan.groups) == (10001, 10001, 10001, [10001])
    assert plan.read_only_root and plan.no_new_privileges and plan.cap_drop == ["ALL"]
    assert plan.memory_limit == 256 * 2**20 and plan.cpu_limit is None
    assert plan.fallback_to_logs and plan.termination_path == "/dev/termination-log"
    token_volume = {v.name: v for v in plan.volumes}["kube-api-access-x"]
    assert token_volume.files is not None
    assert {k: (f.data, f.mode) for k, f in token_volume.files.items()} == {
        "token": (b"token-of-rel-coin-sync", 0o644),
        "ca.crt": (b"PEM", 0o644),
        "namespace": (b"ns", 0o644),
    }
    assert view.tokens == [("rel-coin-sync", None, 3607)]
    assert {v.name: v.files for v in plan.volumes}["logs"] is None  # an emptyDir


def test_podman_arguments_carry_the_plan(tmp_path: Path) -> None:
    pod = a_pod()
    pod["spec"]["hostname"] = "rel-coin-sync-1-2"  # an Indexed Job's pod
    plan = plan_pod(pod, cluster())
    paths = {"logs": tmp_path / "logs", "kube-api-access-x": tmp_path / "sa"}
    args = run_args(plan, "k8s_ns_pod", paths, tmp_path / "termination-log")
    joined = " ".join(args)
    assert "--user 10001:10001" in joined
    assert "--group-add 10001" in joined
    assert "--read-only --read-only-tmpfs=false" in joined
    assert "--security-opt no-new-privileges" in joined
    assert "--cap-drop=all" in args
    assert "--network=host" in args
    assert "--hostname rel-coin-sync-1-2" in joined
    assert f"{tmp_path / 'termination-log'}:/dev/termination-log:rw" in args
    assert f"{tmp_path / 'sa'}:/var/run/secrets/kubernetes.io/serviceaccount:ro" in args
    assert f"{tmp_path / 'logs'}:/logs:rw" in args
    assert "--memory" in args and args[args.index("--memory") + 1] == str(256 * 2**20)
    # The image, then the pod's args in place of the image's CMD.
    assert args[-2:] == ["127.0.0.1:5000/coin-sync@sha256:abc", "run"]


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        (lambda p: p["spec"]["containers"][0].update(livenessProbe={"exec": {"command": ["true"]}}), "livenessProbe"),
        (lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": 80}]), "ports"),
        (lambda p: p["spec"].update(restartPolicy="OnFailure"), "restartPolicy"),
        (lambda p: p["spec"].update(initContainers=[{"name": "i", "image": "x"}]), "initContainers"),
        (lambda p: p["spec"].update(enableServiceLinks=True), "enableServiceLinks"),
        (lambda p: p["spec"].update(hostNetwork=True), "hostNetwork"),
        (lambda p: p["spec"]["volumes"].append({"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}}), "pvc"),
        (lambda p: p["spec"]["volumes"].append({"name": "m", "emptyDir": {"medium": "Memory"}}), "medium"),
        (lambda p: p["spec"]["securityContext"].update(sysctls=[{"name": "a", "value": "1"}]), "sysctls"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (
            lambda p: p["spec"]["containers"][0].update(
                env=[{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
            ),
            "resourceFieldRef",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(
                env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}}]
            ),
            "status.podIPs",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(
                env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
            ),
            "absent",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(
                env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "other"}}}]
            ),
            "other",
        ),
        (lambda p: p["spec"]["containers"].append({"name": "sidecar", "image": "x"}), "contenedores"),
    ],
)
def test_what_the_node_cannot_honour_refuses_the_pod_naming_it(change: Any, culprit: str) -> None:
    pod = copy.deepcopy(a_pod())
    change(pod)
    with pytest.raises(UnsupportedPod, match=culprit):
        plan_pod(pod, cluster())


def test_optional_sources_that_are_absent_are_skipped() -> None:
    pod = a_pod(
        envFrom=[{"secretRef": {"name": "absent", "optional": True}}],
        env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}}}],
    )
    assert "A" not in plan_pod(pod, cluster()).env


def test_termination_message_is_the_file_else_the_log_tail_on_error() -> None:
    assert termination_message("summary", "log", 1, fallback_to_logs=True) == "summary"
    assert termination_message("x" * 5000, "", 0, fallback_to_logs=False) == "x" * 4096
    log = "\n".join(f"line {i}" for i in range(200))
    tail = termination_message("", log, 3, fallback_to_logs=True)
    assert tail.endswith("line 199") and "line 119" not in tail and len(tail.encode()) <= 2048
    assert termination_message("", log, 0, fallback_to_logs=True) == ""
    assert termination_message("", log, 3, fallback_to_logs=False) == ""


def test_quantities() -> None:
    assert quantity("256Mi") == 256 * 2**20
    assert quantity("100m") == 0.1
    assert quantity("1") == 1
    assert quantity("1G") == 10**9
    with pytest.raises(UnsupportedPod):
        quantity("1 gig")


def test_secret_and_config_map_volumes_become_files_with_their_modes() -> None:
    pod = a_pod(volumeMounts=[{"name": "token", "mountPath": "/run/token", "readOnly": True}])
    pod["spec"]["volumes"] = [
        {
            "name": "token",
            "secret": {"secretName": "tok", "defaultMode": 0o444, "items": [{"key": "BACKEND_TOKEN", "path": "token"}]},
        },
        {"name": "conf", "configMap": {"name": "env", "items": [{"key": "X", "path": "x.yaml", "mode": 0o400}]}},
    ]
    files = {v.name: v.files for v in plan_pod(pod, cluster()).volumes}
    assert files["token"] == {"token": File(b"s3cr3t", 0o444)}
    assert files["conf"] == {"x.yaml": File(b"cm", 0o400)}
    pod["spec"]["volumes"][1]["configMap"]["items"][0]["key"] = "absent"
    with pytest.raises(UnsupportedPod, match="absent"):
        plan_pod(pod, cluster())
