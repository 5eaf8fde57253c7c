"""The test cluster's one node, in place of a kubelet (which would probe addresses
outside this machine): it registers a Ready Node, renews its node Lease, and runs each
pod bound to it once, with podman, from the pod's image in the local registry, as
tests/cluster/pod_plan.py plans it. The container's exit code and termination message go
into the pod's status, so the real Job controller decides what happens next.

A pod it cannot run as a kubelet would is failed with reason UnsupportedPodSpec and
recorded in `problems`, which the cluster tests' fixture turns into a failed test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from pod_plan import ContainerPlan, Doc, UnsupportedPod, plan_pod

TERMINATION_MESSAGE_LIMIT = 4096  # what a kubelet keeps of the file
FALLBACK_LOG_LINES = 80  # FallbackToLogsOnError: a kubelet's tail of the log...
FALLBACK_LOG_BYTES = 2048  # ...capped at this many bytes
LEASE_SECONDS = 40
RENEW_SECONDS = 10


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Podman:
    """podman as this machine allows it: runc with cgroupfs (crun refuses this machine's
    hybrid cgroups; there is no systemd), native overlay storage, every state file under
    `root` (the node pulls its images from the registry like a kubelet's runtime)."""

    root: Path

    def base(self) -> list[str]:
        return [
            "podman",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--tmpdir",
            str(self.root / "tmp"),
            "--storage-driver",
            "overlay",
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def run_args(plan: ContainerPlan, name: str, host_paths: dict[str, Path], termination_file: Path) -> list[str]:
    """`podman run` arguments for a plan (after the global ones), volumes already on the host."""
    args = [
        "run",
        "--name",
        name,
        "--rm",
        "--network=host",
        "--hostname",
        plan.hostname,
        "--pull=never",
        # Without CAP_SYS_RESOURCE here, runc cannot raise the limits to podman's
        # defaults; these stay under the machine's own.
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "--stop-timeout",
        str(plan.grace_seconds),
        "-v",
        f"{termination_file}:{plan.termination_path}:rw",
    ]
    for key, value in plan.env.items():
        args += ["--env", f"{key}={value}"]
    for mount in plan.mounts:
        source = host_paths[mount.volume] / mount.sub_path if mount.sub_path else host_paths[mount.volume]
        args += ["-v", f"{source}:{mount.path}:{'ro' if mount.read_only else 'rw'}"]
    if plan.user is not None:
        args += ["--user", f"{plan.user}:{plan.group if plan.group is not None else 0}"]
    for group in plan.groups:
        args += ["--group-add", str(group)]
    if plan.read_only_root:
        args += ["--read-only", "--read-only-tmpfs=false"]
    if plan.no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if plan.seccomp_unconfined:
        args += ["--security-opt", "seccomp=unconfined"]
    args += [f"--cap-drop={c.lower()}" for c in plan.cap_drop]
    args += [f"--cap-add={c.lower()}" for c in plan.cap_add]
    if plan.memory_limit is not None:
        args += ["--memory", str(plan.memory_limit)]
    if plan.cpu_limit is not None:
        args += ["--cpus", str(plan.cpu_limit)]
    if plan.working_dir:
        args += ["--workdir", plan.working_dir]
    for host, ip in plan.hosts:
        args += ["--add-host", f"{host}:{ip}"]
    args += [f"--dns={d}" for d in plan.dns] + [f"--dns-search={d}" for d in plan.dns_search]
    args += [f"--dns-option={o}" for o in plan.dns_options]
    if plan.entrypoint is not None:
        args += ["--entrypoint", json.dumps(plan.entrypoint)]
    args.append(plan.image)
    if plan.args is not None:
        args += plan.args
    elif plan.entrypoint is not None:
        args += []  # a command without args drops the image's CMD, as in Kubernetes
    return args


def termination_message(written: str, log: str, exit_code: int, fallback_to_logs: bool) -> str:
    """A kubelet's rule: the file (4096 bytes at most); with FallbackToLogsOnError and a
    failed container whose file is empty, the log's tail instead."""
    if written or not fallback_to_logs or exit_code == 0:
        return written[:TERMINATION_MESSAGE_LIMIT]
    tail = "\n".join(log.splitlines()[-FALLBACK_LOG_LINES:])
    return tail.encode()[-FALLBACK_LOG_BYTES:].decode(errors="ignore")


class Kube:
    """The admin's view of the API server (what the node writes with)."""

    def __init__(self, url: str, token: str, ca_file: Path) -> None:
        self.url, self.token, self.ca_file = url, token, ca_file

    def session(self) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.token}"
        http.verify = str(self.ca_file)
        # REQUESTS_CA_BUNDLE and proxies from the environment would override `verify`.
        http.trust_env = False
        return http

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        with self.session() as http:
            data = None if body is None else json.dumps(body)
            r = http.request(method, self.url + path, data=data, headers={"Content-Type": content_type}, timeout=30)
        if r.status_code == 404 and method == "GET":
            return None
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json()


@dataclass
class ClusterReader:
    """pod_plan.ClusterView over the API server."""

    kube: Kube
    api_host: str
    api_port: int

    def config_map(self, namespace: str, name: str) -> Doc | None:
        return self.kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")  # type: ignore[no-any-return]

    def secret(self, namespace: str, name: str) -> Doc | None:
        return self.kube.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")  # type: ignore[no-any-return]

    def token(self, pod: Doc, service_account: str, audience: str | None, expiration: int) -> str:
        meta = pod["metadata"]
        review = self.kube.request(
            "POST",
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "audiences": [audience] if audience else [],
                    "expirationSeconds": expiration,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
                },
            },
        )
        return str(review["status"]["token"])


@dataclass
class PodRun:
    pod: Doc
    container: str
    started: str = ""
    stopping: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class NodeAgent:
    kube: Kube
    podman: Podman
    workdir: Path
    api_port: int
    name: str = "node-1"
    registry_insecure: bool = True
    problems: list[str] = field(default_factory=list)
    runs: dict[str, PodRun] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- lifecycle -------------------------------------------------------------
    def start(self) -> NodeAgent:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register()
        for target in (self._renew_forever, self._watch_forever):
            thread = threading.Thread(target=target, name=f"node-agent-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            run.stopping = True
            self.podman.run("stop", "-t", "2", run.container, timeout=60)
        for run in runs:
            run.done.wait(30)
        for thread in self._threads:
            thread.join(15)

    def take_problems(self) -> list[str]:
        with self._lock:
            found, self.problems[:] = list(self.problems), []
        return found

    def log_of(self, namespace: str, pod: str) -> str:
        path = self.workdir / namespace / pod / "container.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- node ------------------------------------------------------------------
    def _register(self) -> None:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": labels}}
        if self.kube.request("GET", f"/api/v1/nodes/{self.name}") is None:
            self.kube.request("POST", "/api/v1/nodes", node)
        self._node_status()
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": self._micro()},
        }
        if self.kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"):
            return
        self.kube.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)

    @staticmethod
    def _micro() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _node_status(self) -> None:
        stamp = now()
        conditions = [
            {"type": t, "status": "False", "reason": f"KubeletHas{r}", "lastHeartbeatTime": stamp}
            for t, r in (
                ("MemoryPressure", "SufficientMemory"),
                ("DiskPressure", "NoDiskPressure"),
                ("PIDPressure", "SufficientPID"),
            )
        ]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": stamp})
        capacity = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
        status = {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.name},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v0.0.0-coin-sync-node-agent",
                    "containerRuntimeVersion": "podman://",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kernelVersion": os.uname().release,
                    "osImage": "",
                    "kubeProxyVersion": "",
                },
            }
        }
        self.kube.request(
            "PATCH", f"/api/v1/nodes/{self.name}/status", status, "application/strategic-merge-patch+json"
        )

    def _renew_forever(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        beats = 0
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self.kube.request("PATCH", path, {"spec": {"renewTime": self._micro()}}, "application/merge-patch+json")
                beats += 1
                if beats % 4 == 0:  # the Ready condition's heartbeat, as a kubelet's every ~40 s
                    self._node_status()
            except (requests.RequestException, RuntimeError) as exc:
                if not self._stop.is_set():
                    self._problem(f"renovar el Lease del nodo: {exc}")

    # --- pods ------------------------------------------------------------------
    def _watch_forever(self) -> None:
        while not self._stop.is_set():
            try:
                for pod in self._pods():
                    self._on_pod(pod)
            except (requests.RequestException, RuntimeError, json.JSONDecodeError):
                pass  # a dropped or refused watch: list again
            except Exception as exc:  # a bug here would leave every pod Pending, unexplained
                self._problem(f"vigilar los pods: {type(exc).__name__}: {exc}")
            if self._stop.wait(0.5):
                return

    def _pods(self) -> Iterator[Doc]:
        """Every pod bound to this node: a list, then a watch from its resourceVersion."""
        selector = f"spec.nodeName={self.name}"
        listed = self.kube.request("GET", f"/api/v1/pods?fieldSelector={selector}")
        yield from listed["items"]
        version = listed["metadata"]["resourceVersion"]
        with self.kube.session() as http:
            r = http.get(
                f"{self.kube.url}/api/v1/pods",
                params={"watch": "1", "fieldSelector": selector, "resourceVersion": version, "timeoutSeconds": "60"},
                stream=True,
                timeout=(10, 90),
            )
            r.raise_for_status()
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                event = json.loads(line)
                if event["type"] in ("ADDED", "MODIFIED"):
                    yield event["object"]
                elif event["type"] == "DELETED":
                    self._deleted(event["object"])
                elif event["type"] == "ERROR":
                    return

    def _on_pod(self, pod: Doc) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            run = self.runs.get(uid)
        if pod["metadata"].get("deletionTimestamp"):
            if run is None:
                self._delete_now(pod)
            elif not run.stopping:
                run.stopping = True
                threading.Thread(target=self._stop_pod, args=(run, pod), daemon=True).start()
            return
        if run is not None or pod.get("status", {}).get("phase") not in (None, "Pending"):
            return
        with self._lock:
            if uid in self.runs:
                return
            container = f"k8s_{pod['metadata']['namespace']}_{pod['metadata']['name']}_{uid[:8]}"
            run = self.runs[uid] = PodRun(pod, container)
        threading.Thread(target=self._run_pod, args=(run,), name=f"pod-{uid[:8]}", daemon=True).start()

    def _deleted(self, pod: Doc) -> None:
        with self._lock:
            run = self.runs.get(pod["metadata"]["uid"])
        if run is not None and not run.stopping:
            run.stopping = True
            self.podman.run("stop", "-t", "0", run.container, timeout=60)

    def _stop_pod(self, run: PodRun, deleted: Doc) -> None:
        """A deleted pod's container: SIGTERM, SIGKILL after the deletion's grace period."""
        grace = int(deleted["metadata"].get("deletionGracePeriodSeconds") or 0)
        self.podman.run("stop", "-t", str(grace), run.container, timeout=grace + 60)
        run.done.wait(grace + 60)
        self._delete_now(deleted)

    def _delete_now(self, pod: Doc) -> None:
        """What a kubelet does once a deleted pod's containers are gone."""
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        with contextlib.suppress(RuntimeError):
            self.kube.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body)

    def _run_pod(self, run: PodRun) -> None:
        pod = run.pod
        meta = pod["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        try:
            reader = ClusterReader(self.kube, "127.0.0.1", self.api_port)
            try:
                plan = plan_pod(pod, reader)
                self._check_user(plan)
            except UnsupportedPod as exc:
                self._problem(f"pod {where}: {exc}")
                self._fail_unstarted(pod, "UnsupportedPodSpec", str(exc))
                return
            pull = self._pull(plan)
            if pull:
                self._problem(f"pod {where}: {pull}")
                self._fail_unstarted(pod, "ErrImagePull", pull)
                return
            self._run_container(run, plan)
        except Exception as exc:  # the test must see it, not a silent thread death
            self._problem(f"pod {where}: {type(exc).__name__}: {exc}")
        finally:
            run.done.set()

    def _check_user(self, plan: ContainerPlan) -> None:
        """runAsNonRoot as a kubelet checks it: the UID, else the image's USER, must be
        a number other than 0."""
        if not plan.run_as_non_root or plan.user not in (None, 0):
            return
        user = ""
        if plan.user is None:
            self._pull(plan)
            user = self.podman.run("image", "inspect", "--format", "{{.Config.User}}", plan.image).stdout.strip()
        uid = user.split(":")[0]
        if not uid.isdigit() or int(uid) == 0:
            raise UnsupportedPod(f"runAsNonRoot y la imagen se ejecuta como {user or 'root'!r}")

    def _pull(self, plan: ContainerPlan) -> str:
        """'' when the image is there (pulled per its policy), else why not."""
        present = self.podman.run("image", "exists", plan.image).returncode == 0
        if present and plan.pull_policy != "Always":
            return ""
        if plan.pull_policy == "Never":
            return f"la imagen {plan.image} no está y imagePullPolicy es Never"
        tls = "--tls-verify=false" if self.registry_insecure else "--tls-verify=true"
        pulled = self.podman.run("pull", "--quiet", tls, plan.image)
        return "" if pulled.returncode == 0 else f"podman pull {plan.image}: {pulled.stderr.strip()[-500:]}"

    def _materialize(self, plan: ContainerPlan, pod_dir: Path) -> dict[str, Path]:
        paths = {}
        gid = plan.fs_group if plan.fs_group is not None else 0
        for volume in plan.volumes:
            path = pod_dir / "volumes" / volume.name
            path.mkdir(parents=True)
            os.chown(path, 0, gid)
            if volume.files is None:
                path.chmod(0o777)
            else:
                path.chmod(0o755)
                for rel, f in volume.files.items():
                    target = path / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(f.data)
                    os.chown(target, 0, gid)
                    target.chmod(f.mode)
            paths[volume.name] = path
        return paths

    def _run_container(self, run: PodRun, plan: ContainerPlan) -> None:
        pod = run.pod
        meta = pod["metadata"]
        pod_dir = self.workdir / meta["namespace"] / meta["name"]
        if pod_dir.exists():
            shutil.rmtree(pod_dir)
        pod_dir.mkdir(parents=True)
        paths = self._materialize(plan, pod_dir)
        termination = pod_dir / "termination-log"
        termination.touch()
        termination.chmod(0o666)  # any UID writes it, as with a kubelet's
        args = run_args(plan, run.container, paths, termination)
        run.started = now()
        self._status(pod, "Running", self._container_status(plan, {"running": {"startedAt": run.started}}, ready=True))
        with (pod_dir / "container.log").open("wb") as log:
            proc = subprocess.run(
                [*self.podman.base(), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        code = proc.returncode
        log_text = (pod_dir / "container.log").read_text(errors="replace")
        if code in (125, 126, 127) and self._podman_failed(log_text):
            self._problem(f"pod {meta['namespace']}/{meta['name']}: podman run salió con {code}: {log_text[-800:]}")
        written = termination.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(errors="replace")
        message = termination_message(written, log_text, code, plan.fallback_to_logs)
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.started,
            "finishedAt": now(),
            "containerID": f"podman://{run.container}",
        }
        if message:
            terminated["message"] = message
        phase = "Succeeded" if code == 0 else "Failed"
        self._status(pod, phase, self._container_status(plan, {"terminated": terminated}, ready=False))

    @staticmethod
    def _podman_failed(log_text: str) -> bool:
        return any(marker in log_text for marker in ("Error: ", "OCI runtime", "crun:", "runc:"))

    @staticmethod
    def _container_status(plan: ContainerPlan, state: Doc, ready: bool) -> Doc:
        return {
            "name": plan.name,
            "image": plan.image,
            "imageID": plan.image,
            "ready": ready,
            "started": ready,
            "restartCount": 0,
            "state": state,
        }

    def _fail_unstarted(self, pod: Doc, reason: str, message: str) -> None:
        """A pod the node will not run: Failed, with the reason, so nothing waits on it."""
        container = pod["spec"]["containers"][0]
        waiting = {"waiting": {"reason": reason, "message": message[:1000]}}
        status = {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": waiting,
        }
        self._status(pod, "Failed", status, reason=reason, message=message[:1000])

    def _status(self, pod: Doc, phase: str, container: Doc, reason: str = "", message: str = "") -> None:
        meta = pod["metadata"]
        stamp = now()
        running = phase == "Running"
        conditions = [
            {"type": t, "status": "True" if ok else "False", "lastTransitionTime": stamp}
            for t, ok in (
                ("PodReadyToStartContainers", True),
                ("Initialized", True),
                ("ContainersReady", running),
                ("Ready", running),
            )
        ]
        status: Doc = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": pod.get("status", {}).get("startTime") or stamp,
            "conditions": conditions,
            "containerStatuses": [container],
        }
        if reason:
            status.update(reason=reason, message=message)
        self.kube.request(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            {"status": status},
            "application/strategic-merge-patch+json",
        )

    def _problem(self, text: str) -> None:
        with self._lock:
            self.problems.append(text)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"tras {timeout} s: {what}")
        time.sleep(every)
