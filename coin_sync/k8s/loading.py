"""The API client, and who this pass is (whether the integration is on: coin_sync/locks/cluster.py).

Read at the edge, once: the environment (KUBERNETES_SERVICE_HOST, KUBECONFIG and the
downward-API variables the chart sets), the service-account files and the kubeconfig.
The file paths are a `ServiceAccountFiles` value, so tests pass their own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coin_sync.locks.cluster import IN_CLUSTER, ServiceAccountFiles


@dataclass(frozen=True)
class Identity:
    """Who this pass is, from the downward API (the chart sets the env)."""

    namespace: str
    pod: str
    job: str = ""
    job_uid: str = ""  # lets `kubectl describe job` find our Events (it filters by uid)
    pod_uid: str = ""
    pid: int = field(default_factory=os.getpid)

    @property
    def holder(self) -> str:
        """The Lease holder: the pid tells apart two passes in one pod or host."""
        return f"{self.pod}_{self.pid}"


def identity_from(environ: Mapping[str, str], namespace_file: Path, kubeconfig_namespace: str = "") -> Identity:
    """POD_NAMESPACE, else the service account's namespace, else the kubeconfig's, else "default"."""

    def env(name: str) -> str:
        return environ.get(name, "").strip()

    namespace = env("POD_NAMESPACE") or _read_text(namespace_file) or kubeconfig_namespace or "default"
    return Identity(
        namespace=namespace,
        # In a pod the hostname is the pod name; elsewhere it still names the machine.
        pod=env("POD_NAME") or socket.gethostname(),
        job=env("JOB_NAME"),
        job_uid=env("JOB_UID"),
        pod_uid=env("POD_UID"),
    )


def load_api_client(environ: Mapping[str, str], files: ServiceAccountFiles = IN_CLUSTER) -> tuple[Any, str]:
    """(ApiClient, namespace of the kubeconfig context or ""). Raises on a config it cannot load.

    In a cluster (KUBERNETES_SERVICE_HOST set) the service account; elsewhere the
    kubeconfig (KUBECONFIG, else ~/.kube/config).
    """
    import kubernetes
    import urllib3

    configuration = kubernetes.client.Configuration()
    namespace = ""
    if environ.get("KUBERNETES_SERVICE_HOST", "").strip():
        kubernetes.config.incluster_config.InClusterConfigLoader(
            token_filename=str(files.token), cert_filename=str(files.ca), environ=environ
        ).load_and_set(configuration)
    else:
        config_file = environ.get("KUBECONFIG", "").strip() or None
        kubernetes.config.load_kube_config(
            config_file=config_file, client_configuration=configuration, persist_config=False
        )
        _, context = kubernetes.config.list_kube_config_contexts(config_file)
        namespace = str(((context or {}).get("context") or {}).get("namespace") or "")
    # No urllib3 retries: KubeApi retries connection failures itself, quietly.
    configuration.retries = urllib3.Retry(total=0, redirect=0)
    return kubernetes.client.ApiClient(configuration), namespace


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
