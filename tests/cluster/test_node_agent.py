"""The test node on the real control plane, with a stand-in image of the host's own
shell (no base image can be pulled here): what a pod's container gets, and how its end
reaches the Job controller."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from typing import Any

import pytest
from control_plane import ControlPlane
from node_agent import Kube, NodeAgent, Podman, wait_for
from pod_plan import Doc

# What the probe prints into its termination log: a pod's view of itself.
PROBE_SCRIPT = r"""
echo "host=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
echo "pod=$POD_NAME ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"
echo "note=$NOTE secret=$SECRET_VALUE"
while read -r key value rest; do [ "$key" = "Uid:" ] && echo "uid=$value"; done < /proc/self/status
[ -s /var/run/secrets/kubernetes.io/serviceaccount/token ] && echo token=yes
[ -s /var/run/secrets/kubernetes.io/serviceaccount/ca.crt ] && echo ca=yes
echo "cm=$(cat /config/greeting)"
(echo x > /rootfile) 2>/dev/null || echo root=ro
echo x > /scratch/file && echo scratch=rw
"""


@pytest.fixture(scope="session")
def probe_image(node_podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """localhost/probe:1: the host's dash and cat with their libraries, nothing else."""
    root = tmp_path_factory.mktemp("probe-rootfs")
    for binary, target in (
        (shutil.which("dash") or "/bin/sh", "bin/sh"),
        (shutil.which("cat") or "/bin/cat", "bin/cat"),
    ):
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(binary, root / target)
        libs = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for lib in (w for w in libs.split() if w.startswith("/")):
            (root / lib.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(lib, root / lib.lstrip("/"))
    tar = root.parent / "probe.tar"
    with tarfile.open(tar, "w") as out:
        out.add(root, arcname=".")
    imported = node_podman.run("import", "--change", 'CMD ["/bin/sh"]', str(tar), "localhost/probe:1")
    assert imported.returncode == 0, imported.stderr
    return "localhost/probe:1"


def job(name: str, image: str, script: str, **spec: Any) -> Doc:
    container = {
        "name": "probe",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["/bin/sh", "-c", script],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    container.update(spec.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "enableServiceLinks": False, "containers": [container]}
    pod_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}} | spec,
    }


def create(kube: Kube, namespace: str, obj: Doc) -> Doc:
    plural = {"Job": "jobs", "ConfigMap": "configmaps", "Secret": "secrets"}[obj["kind"]]
    group = "/apis/batch/v1" if obj["kind"] == "Job" else "/api/v1"
    return kube.request("POST", f"{group}/namespaces/{namespace}/{plural}", obj)  # type: ignore[no-any-return]


def finished(kube: Kube, namespace: str, name: str, timeout: float = 90) -> tuple[str, Doc]:
    """The Job's final condition type (Complete or Failed) and its one pod."""

    def final() -> str | None:
        got = kube.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
        for cond in got["status"].get("conditions") or []:
            if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
                return f"{cond['type']}:{cond.get('reason', '')}"
        return None

    outcome: str = wait_for(final, timeout, f"el Job {name} no termina")
    pods = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=batch.kubernetes.io/job-name={name}")
    assert len(pods["items"]) == 1, [p["metadata"]["name"] for p in pods["items"]]
    return outcome, pods["items"][0]


def terminated(pod: Doc) -> Doc:
    state: Doc = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_a_pod_gets_its_env_token_volumes_and_security_and_its_end_completes_the_job(
    kube: Kube, node: NodeAgent, control_plane: ControlPlane, namespace: str, probe_image: str
) -> None:
    create(
        kube,
        namespace,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"greeting": "hola"}},
    )
    create(
        kube,
        namespace,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"v": "s3cr3t"}},
    )
    probe = job(
        "probe",
        probe_image,
        f"({PROBE_SCRIPT}) > /dev/termination-log",
        container={
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
                {"name": "SECRET_VALUE", "valueFrom": {"secretKeyRef": {"name": "s", "key": "v"}}},
            ],
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "readOnlyRootFilesystem": True},
            "volumeMounts": [
                {"name": "config", "mountPath": "/config", "readOnly": True},
                {"name": "scratch", "mountPath": "/scratch"},
            ],
            "terminationMessagePolicy": "File",
        },
        pod={"volumes": [{"name": "config", "configMap": {"name": "cm"}}, {"name": "scratch", "emptyDir": {}}]},
    )
    probe["spec"]["template"]["metadata"] = {"annotations": {"note": "anotada"}}
    create(kube, namespace, probe)
    outcome, pod = finished(kube, namespace, "probe")
    assert outcome.startswith("Complete"), outcome
    end = terminated(pod)
    assert end["exitCode"] == 0 and end["reason"] == "Completed"
    seen = dict(line.split("=", 1) for line in end["message"].split() if "=" in line)
    assert seen == {
        "host": f"127.0.0.1:{control_plane.port}",
        "pod": pod["metadata"]["name"],
        "ns": namespace,
        "note": "anotada",
        "secret": "s3cr3t",
        "uid": "10001",
        "token": "yes",
        "ca": "yes",
        "cm": "hola",
        "root": "ro",
        "scratch": "rw",
    }, end["message"]
    # The token the pod got is a real one for its ServiceAccount, bound to the pod.
    token_file = node.workdir / namespace / pod["metadata"]["name"] / "volumes"
    token = next(token_file.glob("kube-api-access-*/token")).read_text()
    with control_plane.session(token) as http:
        review = http.get(f"{control_plane.url}/api/v1/namespaces/{namespace}/secrets", timeout=10)
    assert review.status_code == 403, review.text
    assert f"system:serviceaccount:{namespace}:default" in review.text


def test_an_exit_code_and_the_log_tail_reach_the_job_controller(
    kube: Kube, node: NodeAgent, namespace: str, probe_image: str
) -> None:
    # Exit 2 under a FailJob rule: the Job controller fails the Job at once, by the rule.
    rule = {"action": "FailJob", "onExitCodes": {"containerName": "probe", "operator": "In", "values": [2]}}
    create(
        kube, namespace, job("fail-job", probe_image, "echo 'sin mensaje'; exit 2", podFailurePolicy={"rules": [rule]})
    )
    outcome, pod = finished(kube, namespace, "fail-job")
    assert outcome == "Failed:PodFailurePolicy"
    end = terminated(pod)
    assert (end["exitCode"], end["reason"]) == (2, "Error")
    assert end["message"] == "sin mensaje"  # FallbackToLogsOnError: the log, the file being empty
    assert pod["status"]["phase"] == "Failed"


def test_a_pod_the_node_cannot_honour_fails_with_the_reason(
    kube: Kube, node: NodeAgent, namespace: str, probe_image: str
) -> None:
    probe = {"exec": {"command": ["/bin/sh", "-c", "true"]}}
    create(kube, namespace, job("probed", probe_image, "exit 0", container={"livenessProbe": probe}))
    outcome, pod = finished(kube, namespace, "probed")
    assert outcome.startswith("Failed")
    assert pod["status"]["reason"] == "UnsupportedPodSpec"
    assert "livenessProbe" in pod["status"]["message"]
    problems = node.take_problems()  # expected here; any other test would fail on it
    assert len(problems) == 1 and "livenessProbe" in problems[0]
