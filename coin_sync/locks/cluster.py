"""Whether a pass takes the Kubernetes Lease: K8S_INTEGRATION, the environment and the
service-account token a pod gets mounted.

Below coin_sync.k8s on purpose: the session asks this before importing that package, so a
pass outside a cluster never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ServiceAccountFiles:
    """What Kubernetes mounts in a pod that has a service-account token."""

    token: Path = SA_DIR / "token"
    ca: Path = SA_DIR / "ca.crt"
    namespace: Path = SA_DIR / "namespace"


IN_CLUSTER = ServiceAccountFiles()


def integration_active(mode: str, required: bool, environ: Mapping[str, str], token_file: Path) -> bool:
    """mode (K8S_INTEGRATION) on: always; off: never; auto: in a cluster
    (KUBERNETES_SERVICE_HOST set) with a token. required: K8S_LOCK_REQUIRED."""
    if mode == "off":
        return False
    if mode == "on":
        return True
    if not environ.get("KUBERNETES_SERVICE_HOST", "").strip():
        return False
    # A pod without a service-account token (automountServiceAccountToken: false, as the
    # chart renders it with the integration disabled) chose not to talk to the API: with
    # "auto" that is not an error worth a WARNING every pass. Unless the lock is required.
    return required or token_file.exists()
