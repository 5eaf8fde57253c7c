"""What the test node does with a pod, decided without running anything: the pod spec,
as the API server returns it, becomes a ContainerPlan (the container's argv, env, files
and security settings) or an UnsupportedPod naming the field it cannot honour.

Only what this project's pods use is understood; any other field, or value, refuses the
pod (a pod the node would run differently from a kubelet must never run at all). The one
deliberate difference: every container shares the host's network namespace, because
traffic is allowed only to 127.0.0.0/8 here and the API server, the registry and the fake
backend all listen there (the pod sees them at 127.0.0.1 like a kubelet's pod sees the
cluster's Service addresses).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Doc = dict[str, Any]

DEFAULT_TERMINATION_PATH = "/dev/termination-log"

# Pod spec fields and how each is honoured. Fields a scheduler or admission plugin has
# already acted on (affinity, tolerations, priority...) need nothing from a node.
SCHEDULING_ONLY = frozenset(
    {
        "nodeName",
        "nodeSelector",
        "affinity",
        "tolerations",
        "topologySpreadConstraints",
        "schedulerName",
        "priority",
        "priorityClassName",
        "preemptionPolicy",
        "serviceAccount",
        "automountServiceAccountToken",
        # No credentials are needed by the local registry the images come from.
        "imagePullSecrets",
        "os",
    }
)
POD_FIELDS = SCHEDULING_ONLY | {
    "containers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "dnsPolicy",
    "dnsConfig",
    "hostAliases",
    # An Indexed Job's pods are named `<job>-<index>` here; subdomain only names them in
    # a cluster DNS, which this machine has not.
    "hostname",
    "subdomain",
    "serviceAccountName",
    "securityContext",
    "enableServiceLinks",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
}
CONTAINER_FIELDS = frozenset(
    {
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "workingDir",
        "env",
        "envFrom",
        "resources",
        "volumeMounts",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "securityContext",
        "stdin",
        "stdinOnce",
        "tty",
    }
)
POD_SECURITY_FIELDS = frozenset(
    {
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "fsGroup",
        "fsGroupChangePolicy",
        "supplementalGroups",
        "seccompProfile",
    }
)
CONTAINER_SECURITY_FIELDS = frozenset(
    {
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "readOnlyRootFilesystem",
        "allowPrivilegeEscalation",
        "capabilities",
        "privileged",
        "seccompProfile",
        "procMount",
    }
)
VOLUME_MOUNT_FIELDS = frozenset({"name", "mountPath", "readOnly", "subPath"})
_LABEL_PATH = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]$")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_FACTORS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class UnsupportedPod(Exception):
    """The pod asks for something the test node cannot do as a kubelet would."""


class ClusterView(Protocol):
    """What planning a pod reads from the cluster."""

    api_host: str
    api_port: int

    def config_map(self, namespace: str, name: str) -> Doc | None: ...

    def secret(self, namespace: str, name: str) -> Doc | None: ...

    def token(self, pod: Doc, service_account: str, audience: str | None, expiration: int) -> str: ...


@dataclass(frozen=True)
class File:
    data: bytes
    mode: int


@dataclass(frozen=True)
class Volume:
    """A volume as files on the host: `files` None is an emptyDir (a directory, 0777)."""

    name: str
    files: Mapping[str, File] | None


@dataclass(frozen=True)
class Mount:
    volume: str
    path: str
    read_only: bool
    sub_path: str = ""


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    image: str
    pull_policy: str
    entrypoint: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    volumes: list[Volume]
    mounts: list[Mount]
    user: int | None
    group: int | None
    run_as_non_root: bool
    groups: list[int]
    fs_group: int | None
    read_only_root: bool
    no_new_privileges: bool
    cap_drop: list[str]
    cap_add: list[str]
    seccomp_unconfined: bool
    memory_limit: int | None
    cpu_limit: float | None
    working_dir: str | None
    hostname: str
    hosts: list[tuple[str, str]]
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    termination_path: str = DEFAULT_TERMINATION_PATH
    fallback_to_logs: bool = False
    grace_seconds: int = 30


def plan_pod(pod: Doc, cluster: ClusterView) -> ContainerPlan:
    """The plan for the pod's one container, or UnsupportedPod naming the culprit."""
    spec: Doc = pod["spec"]
    _only(spec, POD_FIELDS, "spec")
    if spec.get("restartPolicy", "Always") != "Never":
        # A kubelet restarts the container in place; this node runs each pod once.
        raise UnsupportedPod(f"spec.restartPolicy={spec.get('restartPolicy')!r}: solo se admite Never")
    for flag in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        if spec.get(flag):
            raise UnsupportedPod(f"spec.{flag}=true no está soportado")
    if spec.get("enableServiceLinks", True):
        raise UnsupportedPod("spec.enableServiceLinks=true: las variables de Services no se generan")
    containers = spec["containers"]
    if len(containers) != 1:
        raise UnsupportedPod(f"spec.containers: {len(containers)} contenedores, solo se admite uno")
    c: Doc = containers[0]
    _only(c, CONTAINER_FIELDS, "spec.containers[0]")
    for flag in ("stdin", "stdinOnce", "tty"):
        if c.get(flag):
            raise UnsupportedPod(f"spec.containers[0].{flag}=true no está soportado")

    pod_sc: Doc = spec.get("securityContext") or {}
    _only(pod_sc, POD_SECURITY_FIELDS, "spec.securityContext")
    sc: Doc = c.get("securityContext") or {}
    _only(sc, CONTAINER_SECURITY_FIELDS, "spec.containers[0].securityContext")
    if sc.get("privileged"):
        raise UnsupportedPod("spec.containers[0].securityContext.privileged=true no está soportado")
    if sc.get("procMount", "Default") != "Default":
        raise UnsupportedPod(f"securityContext.procMount={sc['procMount']!r} no está soportado")
    caps: Doc = sc.get("capabilities") or {}
    _only(caps, frozenset({"add", "drop"}), "spec.containers[0].securityContext.capabilities")
    seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {"type": "RuntimeDefault"}
    if seccomp.get("type") not in ("RuntimeDefault", "Unconfined"):
        raise UnsupportedPod(f"seccompProfile {seccomp!r}: solo RuntimeDefault o Unconfined")

    env = _env(pod, c, cluster)
    volumes = [_volume(pod, v, cluster) for v in spec.get("volumes") or []]
    known = {v.name for v in volumes}
    mounts = []
    for i, m in enumerate(c.get("volumeMounts") or []):
        _only(m, VOLUME_MOUNT_FIELDS, f"spec.containers[0].volumeMounts[{i}]")
        if m["name"] not in known:
            raise UnsupportedPod(f"volumeMounts[{i}]: el volumen {m['name']!r} no existe")
        mounts.append(Mount(m["name"], m["mountPath"], bool(m.get("readOnly")), m.get("subPath", "")))

    limits: Doc = (c.get("resources") or {}).get("limits") or {}
    _only(limits, frozenset({"cpu", "memory"}), "spec.containers[0].resources.limits")
    dns_config: Doc = spec.get("dnsConfig") or {}
    _only(dns_config, frozenset({"nameservers", "searches", "options"}), "spec.dnsConfig")
    if spec.get("dnsPolicy", "ClusterFirst") not in ("ClusterFirst", "Default", "None"):
        raise UnsupportedPod(f"spec.dnsPolicy={spec['dnsPolicy']!r} no está soportado")

    expand = _expander(env)
    return ContainerPlan(
        name=c["name"],
        image=c["image"],
        pull_policy=c.get("imagePullPolicy", "IfNotPresent"),
        entrypoint=[expand(a) for a in c["command"]] if "command" in c else None,
        args=[expand(a) for a in c["args"]] if "args" in c else None,
        env=env,
        volumes=volumes,
        mounts=mounts,
        user=sc.get("runAsUser", pod_sc.get("runAsUser")),
        group=sc.get("runAsGroup", pod_sc.get("runAsGroup")),
        run_as_non_root=bool(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))),
        groups=[*([pod_sc["fsGroup"]] if "fsGroup" in pod_sc else []), *pod_sc.get("supplementalGroups", [])],
        fs_group=pod_sc.get("fsGroup"),
        read_only_root=bool(sc.get("readOnlyRootFilesystem")),
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
        cap_drop=list(caps.get("drop") or []),
        cap_add=list(caps.get("add") or []),
        seccomp_unconfined=seccomp["type"] == "Unconfined",
        memory_limit=int(quantity(limits["memory"])) if "memory" in limits else None,
        cpu_limit=quantity(limits["cpu"]) if "cpu" in limits else None,
        working_dir=c.get("workingDir"),
        hostname=spec.get("hostname") or pod["metadata"]["name"][:63],
        hosts=[(h, a["ip"]) for a in spec.get("hostAliases") or [] for h in a["hostnames"]],
        dns=list(dns_config.get("nameservers") or []),
        dns_search=list(dns_config.get("searches") or []),
        dns_options=[o["name"] + (f":{o['value']}" if "value" in o else "") for o in dns_config.get("options") or []],
        termination_path=c.get("terminationMessagePath", DEFAULT_TERMINATION_PATH),
        fallback_to_logs=c.get("terminationMessagePolicy") == "FallbackToLogsOnError",
        grace_seconds=int(spec.get("terminationGracePeriodSeconds", 30)),
    )


def quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity ("256Mi", "100m", "1") as a number."""
    match = _QUANTITY.match(str(text))
    if not match:
        raise UnsupportedPod(f"cantidad de recursos {text!r} no reconocida")
    number, suffix = float(match.group(1)), match.group(2) or ""
    return number / 1000 if suffix == "m" else number * _FACTORS[suffix]


def _only(doc: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise UnsupportedPod(f"{where}: campos que el nodo de pruebas no sabe honrar: {', '.join(unknown)}")


def field_value(pod: Doc, path: str, where: str) -> str:
    """A downward API fieldRef."""
    meta: Doc = pod["metadata"]
    simple: dict[str, Callable[[], str]] = {
        "metadata.name": lambda: meta["name"],
        "metadata.namespace": lambda: meta["namespace"],
        "metadata.uid": lambda: meta["uid"],
        "spec.nodeName": lambda: pod["spec"]["nodeName"],
        "spec.serviceAccountName": lambda: pod["spec"].get("serviceAccountName", "default"),
        "status.hostIP": lambda: "127.0.0.1",
    }
    if path in simple:
        return simple[path]()
    match = _LABEL_PATH.match(path)
    if match:
        # An absent label or annotation is the empty string, as in a kubelet.
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise UnsupportedPod(f"{where}: fieldRef {path!r} no está soportado")


def _data(obj: Doc | None) -> dict[str, bytes]:
    if obj is None:
        return {}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()} if obj.get("kind") == "ConfigMap" else {}
    if obj.get("kind") == "Secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _source(cluster: ClusterView, namespace: str, kind: str, name: str, *, optional: bool, where: str) -> Doc | None:
    obj = cluster.config_map(namespace, name) if kind == "ConfigMap" else cluster.secret(namespace, name)
    if obj is None and not optional:
        # A kubelet keeps such a pod in CreateContainerConfigError: never runs it.
        raise UnsupportedPod(f"{where}: {kind} {namespace}/{name} no existe")
    return obj


def _env(pod: Doc, c: Doc, cluster: ClusterView) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    env = {"KUBERNETES_SERVICE_HOST": cluster.api_host, "KUBERNETES_SERVICE_PORT": str(cluster.api_port)}
    for i, source in enumerate(c.get("envFrom") or []):
        where = f"envFrom[{i}]"
        _only(source, frozenset({"configMapRef", "secretRef", "prefix"}), where)
        ref, kind = (
            (source["configMapRef"], "ConfigMap") if "configMapRef" in source else (source["secretRef"], "Secret")
        )
        obj = _source(cluster, namespace, kind, ref["name"], optional=bool(ref.get("optional")), where=where)
        for key, value in _data(obj).items():
            env[source.get("prefix", "") + key] = value.decode()
    for i, var in enumerate(c.get("env") or []):
        where = f"env[{i}] ({var['name']})"
        if "valueFrom" not in var:
            env[var["name"]] = _expander(env)(var.get("value", ""))
            continue
        source = var["valueFrom"]
        _only(source, frozenset({"fieldRef", "secretKeyRef", "configMapKeyRef"}), where)
        if "fieldRef" in source:
            env[var["name"]] = field_value(pod, source["fieldRef"]["fieldPath"], where)
            continue
        ref, kind = (
            (source["secretKeyRef"], "Secret") if "secretKeyRef" in source else (source["configMapKeyRef"], "ConfigMap")
        )
        data = _data(_source(cluster, namespace, kind, ref["name"], optional=bool(ref.get("optional")), where=where))
        if ref["key"] in data:
            env[var["name"]] = data[ref["key"]].decode()
        elif not ref.get("optional"):
            raise UnsupportedPod(f"{where}: la clave {ref['key']!r} no está en {kind} {ref['name']}")
    return env


def _expander(env: Mapping[str, str]) -> Callable[[str], str]:
    """Kubernetes' $(VAR) references: defined names expand, $$ escapes, others stay."""

    def expand(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            return env.get(m.group(1), m.group(0))

        return _VAR_REF.sub(one, text)

    return expand


def _items(
    data: Mapping[str, bytes], items: list[Doc] | None, mode: int, where: str, optional: bool
) -> dict[str, File]:
    if not items:
        return {k: File(v, mode) for k, v in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise UnsupportedPod(f"{where}: la clave {item['key']!r} no existe")
        files[item["path"]] = File(data[item["key"]], item.get("mode", mode))
    return files


def _volume(pod: Doc, v: Doc, cluster: ClusterView) -> Volume:
    namespace = pod["metadata"]["namespace"]
    name = v["name"]
    kinds = set(v) - {"name"}
    where = f"spec.volumes[{name}]"
    if kinds == {"emptyDir"}:
        empty: Doc = v["emptyDir"] or {}
        _only(empty, frozenset({"medium", "sizeLimit"}), where)
        if empty.get("medium"):
            raise UnsupportedPod(f"{where}: emptyDir.medium={empty['medium']!r} no está soportado")
        # sizeLimit: a kubelet enforces it by evicting the pod, after the fact; a pass
        # that fills its logs volume is not what these tests look at.
        return Volume(name, None)
    if kinds in ({"configMap"}, {"secret"}):
        kind = "ConfigMap" if "configMap" in v else "Secret"
        src: Doc = v["configMap"] if kind == "ConfigMap" else v["secret"]
        _only(src, frozenset({"name", "secretName", "items", "defaultMode", "optional"}), where)
        optional = bool(src.get("optional"))
        obj = _source(cluster, namespace, kind, src.get("name") or src["secretName"], optional=optional, where=where)
        return Volume(name, _items(_data(obj), src.get("items"), src.get("defaultMode", 0o644), where, optional))
    if kinds == {"projected"}:
        projected: Doc = v["projected"]
        _only(projected, frozenset({"sources", "defaultMode"}), where)
        mode = projected.get("defaultMode", 0o644)
        files: dict[str, File] = {}
        for source in projected["sources"]:
            _only(source, frozenset({"serviceAccountToken", "configMap", "secret", "downwardAPI"}), where)
            if "serviceAccountToken" in source:
                tok: Doc = source["serviceAccountToken"]
                _only(tok, frozenset({"path", "expirationSeconds", "audience"}), where)
                sa = pod["spec"].get("serviceAccountName", "default")
                token = cluster.token(pod, sa, tok.get("audience"), int(tok.get("expirationSeconds", 3600)))
                files[tok["path"]] = File(token.encode(), mode)
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    _only(item, frozenset({"path", "fieldRef", "mode"}), where)
                    value = field_value(pod, item["fieldRef"]["fieldPath"], where)
                    files[item["path"]] = File(value.encode(), item.get("mode", mode))
            else:
                kind = "ConfigMap" if "configMap" in source else "Secret"
                ref: Doc = source["configMap"] if kind == "ConfigMap" else source["secret"]
                optional = bool(ref.get("optional"))
                obj = _source(cluster, namespace, kind, ref["name"], optional=optional, where=where)
                files.update(_items(_data(obj), ref.get("items"), mode, where, optional))
        return Volume(name, files)
    raise UnsupportedPod(f"{where}: tipo de volumen {', '.join(sorted(kinds))} no soportado")
