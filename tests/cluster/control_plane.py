"""A real Kubernetes control plane on 127.0.0.1 for the cluster tests: etcd,
kube-apiserver, kube-controller-manager and kube-scheduler built by .ci/get-kubernetes.

RBAC on, anonymous requests refused, an admin token in a token file, ServiceAccount
tokens signed with a key made here; every state file lives in `workdir`, every process is
stopped by its pid. No kubelet: tests/cluster/node_agent.py plays the node.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# What the API server calls itself inside pods and puts in ServiceAccount tokens.
ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.0.0.0/24"


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def missing_binaries(bin_dir: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]


@dataclass
class ControlPlane:
    bin_dir: Path
    workdir: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA of the API server's serving certificate (every pod's ca.crt)."""
        return self.workdir / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def start(self, timeout: float = 120) -> ControlPlane:
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_keys()
        sa_key = self.workdir / "sa.key"
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.token},admin,admin,system:masters\n")
        tokens.chmod(0o600)

        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--listen-metrics-urls=",
            # A test cluster's data need not survive a crash; fsync is most of etcd's time.
            "--unsafe-no-fsync",
        )
        self.port = free_port()
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={self.workdir / 'apiserver.crt'}",
            f"--tls-private-key-file={self.workdir / 'apiserver.key'}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={self.workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={sa_key}",
            f"--api-audiences={ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            # The `kubernetes` Service cannot have a loopback endpoint: no reconciling it.
            "--endpoint-reconciler-type=none",
        )
        self._wait("/readyz", timeout, began)
        self.write_kubeconfig(self.kubeconfig, self.token)
        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={self.ca_file}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            # Finished pods are collected at once rather than past 12,500 of them.
            "--terminated-pod-gc-threshold=100",
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        )
        # Ready for the tests: RBAC's bootstrap roles are in, and the controllers run
        # (the ServiceAccount controller made `default` and the root CA publisher its
        # kube-root-ca.crt, which every pod's token volume needs).
        for path in (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            "/api/v1/namespaces/default/serviceaccounts/default",
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
        ):
            self._wait(path, timeout, began)
        self.started_seconds = time.monotonic() - began
        return self

    def _make_keys(self) -> None:
        """A CA, the API server's certificate from it (for 127.0.0.1 and the names pods
        use), and the ServiceAccount token signing key."""

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.workdir)

        openssl("genrsa", "-out", "sa.key", "2048")
        openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=coin-sync-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
                "-subj", "/CN=kube-apiserver")  # fmt: skip
        names = "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1"
        (self.workdir / "apiserver.ext").write_text(
            f"subjectAltName={names}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "authorityKeyIdentifier=keyid\n"
            "subjectKeyIdentifier=hash\n"
        )
        openssl(
            "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "apiserver.crt", "-days", "2", "-extfile", "apiserver.ext",
        )  # fmt: skip

    def write_kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "test", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}
                    ],
                    "users": [{"name": "test", "user": {"token": token}}],
                    "contexts": [
                        {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}
                    ],
                    "current-context": "test",
                }
            )
        )
        path.chmod(0o600)
        return path

    def session(self, token: str | None = None) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token or self.token}"
        http.verify = str(self.ca_file)
        # REQUESTS_CA_BUNDLE and proxies from the environment would override `verify`.
        http.trust_env = False
        return http

    def stop(self) -> None:
        """SIGTERM each process by pid, newest first; SIGKILL what outlives 10 s."""
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self, name: str, *args: str) -> None:
        with (self.workdir / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                # Out of the test's process group: a Ctrl-C reaches pytest, whose
                # teardown stops them in order.
                start_new_session=True,
            )

    def _wait(self, path: str, timeout: float, began: float) -> None:
        def ready() -> bool:
            with contextlib.suppress(requests.RequestException):
                return self.session().get(self.url + path, timeout=5).status_code == 200
            return False

        self._until(ready, timeout, began, path)

    def _until(self, ready: Callable[[], bool], timeout: float, began: float, what: str) -> None:
        while not ready():
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise ControlPlaneError(f"{name} terminó con {proc.returncode}:\n{self.log_tail(name)}")
            if time.monotonic() - began > timeout:
                tails = "\n".join(f"--- {n}\n{self.log_tail(n, 10)}" for n in self.processes)
                raise ControlPlaneError(f"el plano de control no está listo ({what}) tras {timeout} s\n{tails}")
            time.sleep(0.2)
