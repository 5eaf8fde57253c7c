"""The chart as a user installs it on the test cluster: helm and kubectl against the real
API server, and what the tests read back (Jobs, their pods' ends, the program's Lease,
Events and status record)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chart.helm import Helm, HelmResult, parse_docs
from node_agent import Kube, wait_for
from pod_plan import Doc
from publish import PublishedChart, PublishedImage

RELEASE = "rel"


def ensure_namespace(kube: Kube, name: str) -> None:
    if kube.request("GET", f"/api/v1/namespaces/{name}") is None:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        kube.request("POST", "/api/v1/namespaces", namespace)


@dataclass
class Release:
    helm: Helm
    kube: Kube
    kubectl: str
    kubeconfig: Path
    namespace: str
    chart: PublishedChart
    image: PublishedImage
    name: str = RELEASE

    @property
    def fullname(self) -> str:
        return f"{self.name}-coin-sync"

    def install(self, *values: str | Path, set_values: tuple[str, ...] = (), command: str = "install") -> HelmResult:
        return self.helm.run(*self._args(command, values, set_values), timeout=120).check()

    def template(
        self, *values: str | Path, set_values: tuple[str, ...] = (), api_versions: tuple[str, ...] = ()
    ) -> list[Doc]:
        """What `helm install` would send, rendered from the registry's chart."""
        extra = [arg for api in api_versions for arg in ("--api-versions", api)]
        result = self.helm.run(*self._args("template", values, set_values), *extra, timeout=120).check()
        return parse_docs(result.stdout)

    def _args(self, command: str, values: tuple[str | Path, ...], set_values: tuple[str, ...]) -> list[str]:
        args = [command, self.name, *self.chart.helm_args(), "--namespace", self.namespace]
        for f in values:
            args += ["--values", str(f)]
        for s in (*self.image.helm_set_values, *set_values):
            args += ["--set", s]
        return args

    def upgrade(self, *values: str | Path, set_values: tuple[str, ...] = ()) -> HelmResult:
        return self.install(*values, set_values=set_values, command="upgrade")

    def uninstall(self) -> HelmResult:
        return self.helm.run("uninstall", self.name, "--namespace", self.namespace, "--wait", timeout=120).check()

    def run_kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl, "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def create_job(self, name: str) -> None:
        """What a user does for a manual pass: `kubectl create job --from=cronjob/...`."""
        made = self.run_kubectl("create", "job", name, f"--from=cronjob/{self.fullname}")
        assert made.returncode == 0, made.stderr

    # --- reading back ----------------------------------------------------------
    def get(self, path: str) -> Any:
        return self.kube.request("GET", f"{path.replace('{ns}', self.namespace)}")

    def jobs(self) -> list[Doc]:
        return list(self.get("/apis/batch/v1/namespaces/{ns}/jobs")["items"])

    def pods_of(self, job: str) -> list[Doc]:
        found = self.get(f"/api/v1/namespaces/{{ns}}/pods?labelSelector=batch.kubernetes.io/job-name={job}")
        return sorted(found["items"], key=lambda p: p["metadata"]["creationTimestamp"])

    def finished(self, job: str, timeout: float = 180) -> str:
        """The Job's end: "Complete" or "Failed:<reason>"."""

        def end() -> str | None:
            got = self.get(f"/apis/batch/v1/namespaces/{{ns}}/jobs/{job}")
            for cond in (got or {}).get("status", {}).get("conditions") or []:
                if cond["type"] == "Complete" and cond["status"] == "True":
                    return "Complete"
                if cond["type"] == "Failed" and cond["status"] == "True":
                    return f"Failed:{cond.get('reason', '')}"
            return None

        outcome: str = wait_for(end, timeout, f"el Job {job} no termina")
        return outcome

    def ends(self, job: str) -> list[tuple[int, Doc]]:
        """Each pod's exit code and termination message (parsed JSON when it is)."""
        found = []
        for pod in self.pods_of(job):
            state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
            message = state.get("message", "")
            try:
                summary = json.loads(message)
            except json.JSONDecodeError:
                summary = {"raw": message}
            found.append((state["exitCode"], summary))
        return found

    def lease(self, suffix: str = "") -> Doc:
        lease: Doc = self.get(f"/apis/coordination.k8s.io/v1/namespaces/{{ns}}/leases/{self.fullname}-lock{suffix}")
        return lease

    def status_record(self) -> dict[str, Doc]:
        cm = self.get(f"/api/v1/namespaces/{{ns}}/configmaps/{self.fullname}-status")
        return {k: json.loads(v) for k, v in (cm or {}).get("data", {}).items() if k.startswith("shard-")}

    def events_of(self, uid: str) -> list[Doc]:
        """The program's Events (not the Job controller's) on the object with this uid."""
        found = self.get(f"/api/v1/namespaces/{{ns}}/events?fieldSelector=involvedObject.uid={uid}")
        return [e for e in found["items"] if e.get("reportingComponent") == "coin-sync"]
