"""Fixtures of the cluster tier: the image and chart published to a local OCI registry
(tests/cluster/publish.py), one real control plane and one test node per session
(run this folder with `-n 0`: each xdist worker would start its own), a namespace per
test, and a check after every test that the node ran each pod it was given."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

# Same trick as tests/container/conftest.py: this folder is not a package, and putting
# it on sys.path makes its modules importable under any pytest import mode.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import pytest  # noqa: E402
from chart.helm import Helm, HelmNotFound, find_helm  # noqa: E402
from control_plane import ControlPlane, missing_binaries  # noqa: E402
from node_agent import Kube, NodeAgent, Podman, wait_for  # noqa: E402
from publish import (  # noqa: E402
    PublishedChart,
    PublishedImage,
    coin_sync_image,
    oci_helm,
    published_chart,
    registry,
)
from release import RELEASE, Release, ensure_namespace  # noqa: E402
from required import missing  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
# The image and chart as a user gets them, from the local OCI registry (publish.py).
__all__ = ["coin_sync_image", "oci_helm", "published_chart", "registry"]


def kube_bin_dir() -> Path:
    """$KUBE_BIN_DIR, else the repo's .venv/bin (where .ci/get-kubernetes links them)."""
    return Path(os.environ.get("KUBE_BIN_DIR") or REPO_ROOT / ".venv" / "bin")


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    bin_dir = kube_bin_dir()
    absent = missing_binaries(bin_dir)
    if absent:
        missing(f"faltan {', '.join(absent)} en {bin_dir}: ejecuta `.ci/get-kubernetes .venv/bin`")
    plane = ControlPlane(bin_dir, tmp_path_factory.mktemp("control-plane"))
    try:
        yield plane.start()
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    return Kube(control_plane.url, control_plane.token, control_plane.ca_file)


@pytest.fixture(scope="session")
def node_podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """The test node's container runtime, its images and containers its own."""
    if not shutil.which("podman"):
        missing("falta podman: ejecuta `bash .ci/get-podman .venv/bin`")
    runtime = Podman(tmp_path_factory.mktemp("node-podman"))
    yield runtime
    # Its storage stays mounted (overlay) until podman itself lets go of it.
    runtime.run("system", "reset", "--force", timeout=120)


@pytest.fixture(scope="session")
def node(
    kube: Kube, control_plane: ControlPlane, node_podman: Podman, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeAgent]:
    agent = NodeAgent(kube, node_podman, tmp_path_factory.mktemp("node"), control_plane.port).start()

    def schedulable() -> bool:
        # The node lifecycle controller lifts the not-ready taint once it sees Ready.
        node = kube.request("GET", f"/api/v1/nodes/{agent.name}")
        return not node["spec"].get("taints")

    try:
        wait_for(schedulable, 60, "el nodo de pruebas sigue con taints")
        yield agent
    finally:
        agent.stop()


@pytest.fixture(autouse=True)
def node_ran_every_pod(request: pytest.FixtureRequest) -> Iterator[None]:
    """A pod the test node refused or could not run fails the test that made it (a test
    that expects a refusal takes the problem itself)."""
    if "node" not in request.fixturenames:
        yield
        return
    agent: NodeAgent = request.getfixturevalue("node")
    agent.take_problems()
    yield
    problems = agent.take_problems()
    if problems:
        pytest.fail("el nodo de pruebas no ejecutó pods como un kubelet:\n" + "\n".join(problems))


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    ensure_namespace(kube, name)
    wait_for(
        lambda: kube.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        30,
        f"la ServiceAccount default de {name}",
    )
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def helm(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The real helm, its kubeconfig the test cluster's admin."""
    try:
        tool = Helm(find_helm(), tmp_path_factory.mktemp("helm"))
    except HelmNotFound as exc:
        missing(str(exc))
    control_plane.write_kubeconfig(tool.kubeconfig, control_plane.token)
    return tool


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The kubectl of the control plane's own release (.ci/get-kubernetes)."""
    path = kube_bin_dir() / "kubectl"
    if not os.access(path, os.X_OK):
        missing(f"falta {path}: ejecuta `.ci/get-kubernetes .venv/bin`")
    return str(path)


@pytest.fixture
def release(
    *,
    helm: Helm,
    kube: Kube,
    kubectl: str,
    namespace: str,
    published_chart: PublishedChart,
    coin_sync_image: PublishedImage,
) -> Iterator[Release]:
    """A release of the chart from the registry (not installed yet) in the test's namespace."""
    yield Release(helm, kube, kubectl, helm.kubeconfig, namespace, published_chart, coin_sync_image)
    helm.run("uninstall", RELEASE, "--namespace", namespace, "--wait", timeout=120)
