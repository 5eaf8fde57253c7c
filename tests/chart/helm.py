"""Helpers of the chart tests: the real helm binary, renders, and the CronJob as a process.

`job_command_and_env` turns a rendered CronJob into the argv and environment its
container would get in Kubernetes, so a test can run the same pass as a subprocess.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "chart"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*.yaml"))
RELEASE = "rel"
NAMESPACE = "coin-ns"
# What `helm template --api-versions` needs for .Capabilities.APIVersions.Has
# "monitoring.coreos.com/v1/PrometheusRule" to be true offline: both forms.
MONITORING_API: tuple[str, ...] = ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1/PrometheusRule")
# ../shared sits beside the repository in CI and on the developers' machines; its
# schemas are read from there, never copied in.
# The image's ENTRYPOINT, ["python", "-m", "coin_sync"], as run from this checkout.
LOCAL_ENTRYPOINT: tuple[str, ...] = (sys.executable, "-m", "coin_sync")
# The image's default CMD (one pass), used when the container sets no args.
IMAGE_CMD: tuple[str, ...] = ("run",)

Doc = dict[str, Any]


class HelmNotFound(RuntimeError):
    pass


def find_tool(name: str, env_var: str) -> str | None:
    """$env_var, else `name` on PATH, else the repo's .venv/bin/name (where .ci/run puts
    helm, promtool, prometheus and pushgateway)."""
    for candidate in (os.environ.get(env_var), shutil.which(name), str(REPO_ROOT / ".venv" / "bin" / name)):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def find_helm() -> str:
    """$HELM, else `helm` on PATH, else the repo's .venv/bin/helm (installed by .ci/get-helm)."""
    explicit = os.environ.get("HELM")
    if explicit and not shutil.which(explicit):
        raise HelmNotFound(f"HELM={explicit} no existe o no es ejecutable")
    found = find_tool("helm", "HELM")
    if not found:
        raise HelmNotFound(
            "no encuentro helm (ni $HELM, ni en PATH, ni .venv/bin/helm): ejecuta "
            "`.ci/get-helm .venv/bin` o define HELM=/ruta/a/helm"
        )
    return found


@dataclass(frozen=True)
class HelmResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> HelmResult:
        if self.returncode != 0:
            raise AssertionError(f"helm {' '.join(self.args)} salió con {self.returncode}:\n{self.stderr}{self.stdout}")
        return self


class Helm:
    """The real helm binary, with its config, cache and kubeconfig kept in `home`."""

    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = home / "kubeconfig"
        self.use_kube_api("http://127.0.0.1:9")  # nothing listens there
        version = self.run("version", "--template", "{{ .Version }}").check().stdout.strip()
        match = re.match(r"v(\d+)\.(\d+)", version)
        if not match:
            raise HelmNotFound(f"{binary}: versión de helm inesperada {version!r}")
        self.version = version
        self.major = int(match.group(1))
        self._renders: dict[tuple[str, ...], HelmResult] = {}

    def use_kube_api(self, server: str) -> None:
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "test", "cluster": {"server": server}}],
                    "users": [{"name": "test", "user": {}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                    "current-context": "test",
                }
            )
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
        env.update(
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
            KUBECONFIG=str(self.kubeconfig),
        )
        return env

    def run(self, *args: str, timeout: float = 60) -> HelmResult:
        proc = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=REPO_ROOT,
            timeout=timeout,
            check=False,
        )
        return HelmResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def template(
        self,
        *values_files: str | Path,
        set_values: Sequence[str] = (),
        set_json: Sequence[str] = (),
        kube_version: str | None = None,
        release: str = RELEASE,
        api_versions: Sequence[str] = (),
    ) -> HelmResult:
        """`helm template` (cached: the chart does not change during a session)."""
        args = ["template", release, str(CHART_DIR), "--namespace", NAMESPACE]
        for f in values_files:
            args += ["--values", str(f)]
        for s in set_values:
            args += ["--set", s]
        for s in set_json:
            args += ["--set-json", s]
        if kube_version:
            args += ["--kube-version", kube_version]
        for api in api_versions:
            args += ["--api-versions", api]
        key = tuple(args)
        if key not in self._renders:
            self._renders[key] = self.run(*args)
        return self._renders[key]

    def render(
        self,
        *values_files: str | Path,
        set_values: Sequence[str] = (),
        set_json: Sequence[str] = (),
        kube_version: str | None = None,
        release: str = RELEASE,
        api_versions: Sequence[str] = (),
    ) -> list[Doc]:
        result = self.template(
            *values_files,
            set_values=set_values,
            set_json=set_json,
            kube_version=kube_version,
            release=release,
            api_versions=api_versions,
        ).check()
        return parse_docs(result.stdout)


def parse_docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def find_all(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def find_one(docs: Sequence[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in find_all(docs, kind) if name is None or d["metadata"]["name"] == name]
    names = [f"{d['kind']}/{d['metadata']['name']}" for d in docs]
    assert len(found) == 1, f"se esperaba un {kind} {name or ''}, hay {len(found)} en {names}"
    return found[0]


def job_spec(docs: Sequence[Doc]) -> Doc:
    spec: Doc = find_one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]
    return spec


def pod_spec(docs: Sequence[Doc]) -> Doc:
    spec: Doc = job_spec(docs)["template"]["spec"]
    return spec


def container(docs: Sequence[Doc], name: str = "coin-sync") -> Doc:
    for c in pod_spec(docs)["containers"]:
        if c["name"] == name:
            result: Doc = c
            return result
    raise AssertionError(f"no hay contenedor {name!r} en el CronJob")


# --------------------------------------------------------------------------------------
# The CronJob as a subprocess
# --------------------------------------------------------------------------------------

#: Values of the downward API fields a pod would see.
FAKE_FIELDS: Mapping[str, str] = {
    "metadata.name": "coin-sync-28000000-abcde",
    "metadata.namespace": NAMESPACE,
    "metadata.uid": "00000000-0000-0000-0000-000000000000",
    "metadata.labels['batch.kubernetes.io/job-name']": "coin-sync-28000000",
    "metadata.labels['job-name']": "coin-sync-28000000",
    "metadata.labels['batch.kubernetes.io/controller-uid']": "11111111-1111-1111-1111-111111111111",
    "spec.nodeName": "node-1",
    "spec.serviceAccountName": "default",
    "status.hostIP": "10.0.0.10",
    "status.podIP": "10.1.0.10",
}

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion ($$ escapes; unknown references stay as written)."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, value)


def _object_data(docs: Sequence[Doc], kind: str, name: str) -> dict[str, str] | None:
    for d in find_all(docs, kind):
        if d["metadata"]["name"] != name:
            continue
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
            data.update(d.get("stringData") or {})
            return data
        return {k: str(v) for k, v in (d.get("data") or {}).items()}
    return None


def _ref_data(docs: Sequence[Doc], kind: str, ref: Mapping[str, Any]) -> dict[str, str] | None:
    data = _object_data(docs, kind, ref["name"])
    if data is None and not ref.get("optional", False):
        raise LookupError(
            f"{kind} {ref['name']!r} no está en lo renderizado: añádelo a los documentos "
            "(p. ej. un Secret falso para backend.existingSecret)"
        )
    return data


def job_command_and_env(
    rendered_docs: Sequence[Doc],
    *,
    entrypoint: Sequence[str] = LOCAL_ENTRYPOINT,
    files_root: Path | None = None,
    completion_index: int = 0,
    fields: Mapping[str, str] = FAKE_FIELDS,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of the CronJob's container, as Kubernetes would build them.

    - argv: `entrypoint` (the image's ENTRYPOINT, mapped to this checkout) + the
      container's args (the image's CMD when it sets none). A container `command`
      replaces the entrypoint, as in Kubernetes.
    - env: `envFrom` sources in order (ConfigMaps/Secrets looked up in `rendered_docs`;
      a missing one raises unless optional), then `env` (value, configMapKeyRef,
      secretKeyRef, fieldRef from `fields`), with $(VAR) expansion.
      JOB_COMPLETION_INDEX is set for Indexed Jobs, as Kubernetes does.
    - files_root: when given, each volume mount is made a directory under it (ConfigMap
      and Secret volumes get their files) and env values and args under a mount path are
      rewritten to the local path, e.g. LOG_DIR=/logs -> files_root/logs.
    Only the environment the container gets is returned: add PATH etc. to run it.
    """
    spec = job_spec(rendered_docs)
    pod = spec["template"]["spec"]
    c = pod["containers"][0]

    env: dict[str, str] = {}
    for source in c.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                data = _ref_data(rendered_docs, kind, source[key]) or {}
                env.update({prefix + k: v for k, v in data.items()})
    if spec.get("completionMode") == "Indexed":
        env["JOB_COMPLETION_INDEX"] = str(completion_index)
    for var in c.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = _expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom") or {}
        value: str | None
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path not in fields:
                raise LookupError(f"fieldRef {path!r} sin valor falso: pásalo en fields=")
            value = fields[path]
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind, ref = (
                ("ConfigMap", source["configMapKeyRef"])
                if "configMapKeyRef" in source
                else ("Secret", source["secretKeyRef"])
            )
            ref_data = _ref_data(rendered_docs, kind, ref)
            value = None if ref_data is None else ref_data.get(ref["key"])
            if value is None and not ref.get("optional", False):
                raise LookupError(f"{kind} {ref['name']!r} no tiene la clave {ref['key']!r}")
        elif "resourceFieldRef" in source:
            value = "0"
        else:
            raise LookupError(f"variable {name!r}: valueFrom no soportado {source!r}")
        if value is not None:
            env[name] = value

    args = [_expand(str(a), env) for a in (c.get("args") if "args" in c else IMAGE_CMD)]
    argv = [*(c["command"] if c.get("command") else entrypoint), *args]

    if files_root is not None:
        mounts = _materialize_volumes(rendered_docs, pod, c, files_root)
        env = {k: _rewrite_path(v, mounts) for k, v in env.items()}
        argv = [argv[0], *(_rewrite_path(a, mounts) for a in argv[1:])]
    return argv, env


def _materialize_volumes(docs: Sequence[Doc], pod: Doc, c: Doc, files_root: Path) -> dict[str, Path]:
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts: dict[str, Path] = {}
    for mount in c.get("volumeMounts") or []:
        mount_path: str = mount["mountPath"]
        local = files_root / mount_path.lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        mounts[mount_path.rstrip("/") or "/"] = local
        volume = volumes[mount["name"]]
        for kind, key, name_key in (
            ("ConfigMap", "configMap", "name"),
            ("Secret", "secret", "secretName"),
        ):
            if key not in volume:
                continue
            source = volume[key]
            data = _ref_data(docs, kind, {"name": source[name_key], **source}) or {}
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                target = local / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]], encoding="utf-8")
    return mounts


def _rewrite_path(value: str, mounts: Mapping[str, Path]) -> str:
    # Longest mount path first: /var/log/coin-sync before /var.
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(mounts[mount_path]) + value[len(mount_path) :]
    return value


# --------------------------------------------------------------------------------------
# A fake Kubernetes API for `helm install --dry-run=client` with helm v3
# --------------------------------------------------------------------------------------

# helm v3 contacts the cluster even with --dry-run=client (helm/helm#13144, fixed in
# v4): it needs /version and the discovery documents to map the chart's kinds. This
# server answers those, the `objects` it was given (by path, for the chart's `lookup`
# under --dry-run=server) and 404 to everything else; it records the paths it was asked.
_CORE = {
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "serviceaccounts": "ServiceAccount",
    "pods": "Pod",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "events": "Event",
    "endpoints": "Endpoints",
}
_GROUPS = {
    "batch": {"cronjobs": "CronJob", "jobs": "Job"},
    "rbac.authorization.k8s.io": {"roles": "Role", "rolebindings": "RoleBinding"},
    "networking.k8s.io": {"networkpolicies": "NetworkPolicy"},
    "coordination.k8s.io": {"leases": "Lease"},
    "events.k8s.io": {"events": "Event"},
    "discovery.k8s.io": {"endpointslices": "EndpointSlice"},
    # The Prometheus Operator's CRD, as on a cluster that has it installed.
    "monitoring.coreos.com": {"prometheusrules": "PrometheusRule"},
}


def _resource_list(group_version: str, resources: Mapping[str, str]) -> Doc:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": n, "singularName": "", "namespaced": True, "kind": k, "verbs": verbs} for n, k in resources.items()
        ],
    }


def _discovery(path: str) -> Doc | None:
    if path == "/version":
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/api/v1":
        return _resource_list("v1", _CORE)
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                }
                for g in _GROUPS
            ],
        }
    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "apis" and parts[1] in _GROUPS and parts[2] == "v1":
        return _resource_list(f"{parts[1]}/v1", _GROUPS[parts[1]])
    return None


@dataclass
class FakeKubeApi:
    url: str
    requests: list[str]


@contextmanager
def fake_kube_api(objects: Mapping[str, Doc] | None = None) -> Iterator[FakeKubeApi]:
    """Serve the fake API on localhost while the block runs.

    objects: API path -> object, e.g.
    {"/api/v1/namespaces/default/endpoints/kubernetes": {...}}.
    """
    api = FakeKubeApi(url="", requests=[])
    served = dict(objects or {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            api.requests.append(path)
            body = served.get(path) or _discovery(path)
            status = 200
            if body is None:
                status = 404
                body = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                }
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
