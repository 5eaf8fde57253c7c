"""The install path a user takes, built for real: the image from the Dockerfile (podman,
over the local python stand-in of .ci/python-stand-in), pushed with the packaged chart
to a local OCI registry (Debian's docker-registry on 127.0.0.1, plain HTTP: podman
needs `--tls-verify=false`, helm `--plain-http`).

Session fixtures (per pytest-xdist worker: each has its own registry; the image is built
once per machine state, the other workers find podman's layer cache warm):
- `registry`         Registry: `.host` is "127.0.0.1:<port>"
- `coin_sync_image`  PublishedImage: `.ref` is "127.0.0.1:<port>/coin-sync@sha256:..."
- `published_chart`  PublishedChart: `.ref` is "oci://127.0.0.1:<port>/charts/coin-sync",
                     `.version` the chart's version

The tools come from .ci/get-podman (podman configured for these machines, and
docker-registry) and .ci/get-helm; missing, they follow tests/required.py's rule.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chart.helm import CHART_DIR, Helm, find_helm
from required import REPO_ROOT, missing

# The label .ci/python-stand-in puts on the base it builds.
STAND_IN_LABEL = "dev.coin-sync.stand-in"
IMAGE_NAME = "coin-sync"
CHARTS_PATH = "charts"
# The build's RUN steps reach PyPI through whatever this machine trusts (a proxy's CA, on
# these machines): the stand-in's pip (Debian's) reads the system CA bundle, and the
# host's is bind-mounted over the image's for those steps. Same path, so the layers keep
# no trace of it (a mount point that does not exist in the image would stay in it).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def find_repo_tool(name: str, env_var: str) -> str | None:
    """$env_var, else the repo's .venv/bin/name (where the .ci scripts put it, podman
    with its configuration), else `name` on PATH."""
    for candidate in (os.environ.get(env_var), str(REPO_ROOT / ".venv" / "bin" / name), shutil.which(name)):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def require_tool(name: str, env_var: str, script: str) -> str:
    found = find_repo_tool(name, env_var)
    if found is None:
        missing(f"no encuentro {name} (ni ${env_var}, ni .venv/bin, ni PATH): ejecuta `{script}`")
    return found


@dataclass(frozen=True)
class Podman:
    binary: str

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} salió con {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc


def podman() -> Podman:
    return Podman(require_tool("podman", "PODMAN", "bash .ci/get-podman .venv/bin"))


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:<port>
    data: Path
    pid: int
    log: Path

    def repository(self, name: str) -> str:
        return f"{self.host}/{name}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def running_registry(binary: str, root: Path, attempts: int = 3) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1:<a free port>, its data under root; stopped by pid."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = root / "registry.log"
    for _ in range(attempts):
        port = _free_port()
        config = root / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "version": 0.1,
                    "log": {"level": "warn", "accesslog": {"disabled": True}},
                    "storage": {"filesystem": {"rootdirectory": str(data)}, "delete": {"enabled": True}},
                    # A fixed secret silences the registry's warning about a random one.
                    "http": {"addr": f"127.0.0.1:{port}", "secret": "coin-sync-tests"},
                }
            )
        )
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline and not _answers(f"http://127.0.0.1:{port}/v2/"):
            time.sleep(0.05)
        if proc.poll() is None and _answers(f"http://127.0.0.1:{port}/v2/"):
            break
        _stop(proc)  # the port was taken meanwhile, or it never answered: try another
    else:
        raise AssertionError(f"docker-registry no arrancó:\n{log.read_text(errors='replace')[-3000:]}")
    try:
        yield Registry(host=f"127.0.0.1:{port}", data=data, pid=proc.pid, log=log)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --------------------------------------------------------------------------------------
# The image
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedImage:
    repository: str  # 127.0.0.1:<port>/coin-sync
    digest: str  # sha256:<64 hex>: the manifest's, as the registry serves it
    image_id: str  # podman's local id of the built image (hex, no sha256: prefix)

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def helm_set_values(self) -> tuple[str, ...]:
        """The chart values that point the CronJob at this image, by digest."""
        return (f"image.repository={self.repository}", f"image.digest={self.digest}")


def dockerfile_base() -> str:
    """The one image every FROM of the Dockerfile names, as podman stores it."""
    bases = {
        line.split()[1]
        for line in (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.upper().startswith("FROM ")
    }
    assert len(bases) == 1, f"el Dockerfile usa varias bases: {sorted(bases)}"
    base = bases.pop()
    return base if "/" in base.split(":")[0] else f"docker.io/library/{base}"


def project_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert match, "pyproject.toml sin version"
    return match.group(1)


@contextmanager
def _machine_lock(name: str) -> Iterator[None]:
    """One holder at a time across processes (pytest-xdist workers, parallel sessions)."""
    key = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"coin-sync-{name}-{key}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_image(tool: Podman, work: Path, *, target: str = "runtime") -> str:
    """`podman build` of the real Dockerfile over the local stand-in base; the image id.

    Built once per `work` folder: the pytest-xdist workers of one run share it (the code
    does not change during a run), and wait for the one that builds. The stand-in must be
    there (.ci/python-stand-in): podman never pulls (`--pull=never`).
    """
    base = dockerfile_base()
    label = tool.run(
        "image", "inspect", "--format", f'{{{{ index .Labels "{STAND_IN_LABEL}" }}}}', base, check=False
    ).stdout.strip()
    if not label or label == "<no value>":
        missing(
            f"falta la imagen base {base} (el sustituto local): ejecuta `bash .ci/python-stand-in .venv/bin/podman`"
        )
    iidfile = work / f"{target}.iid"
    volumes = ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"] if HOST_CA_BUNDLE.is_file() else []
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    ).stdout.strip()
    with _machine_lock("podman-build"):
        if iidfile.is_file():
            return iidfile.read_text(encoding="utf-8").strip().removeprefix("sha256:")
        tool.run(
            "build",
            "--pull=never",
            "--network=host",
            "--target",
            target,
            "--iidfile",
            str(iidfile),
            "--build-arg",
            f"VERSION={project_version()}",
            "--build-arg",
            f"REVISION={revision or 'unknown'}",
            *volumes,
            "--file",
            str(REPO_ROOT / "Dockerfile"),
            str(REPO_ROOT),
            timeout=900,
        )
    return iidfile.read_text(encoding="utf-8").strip().removeprefix("sha256:")


def push_image(tool: Podman, image_id: str, registry: Registry, *, name: str, tag: str, work: Path) -> PublishedImage:
    digestfile = work / f"{name}.digest"
    repository = registry.repository(name)
    tool.run("push", "--quiet", "--tls-verify=false", "--digestfile", str(digestfile), image_id, f"{repository}:{tag}")
    digest = digestfile.read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    return PublishedImage(repository=repository, digest=digest, image_id=image_id)


# --------------------------------------------------------------------------------------
# The chart
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedChart:
    ref: str  # oci://127.0.0.1:<port>/charts/coin-sync
    version: str
    digest: str

    def helm_args(self) -> tuple[str, ...]:
        """What `helm install/template/pull` need after the release name."""
        return (self.ref, "--version", self.version, "--plain-http")


def chart_meta() -> dict[str, str]:
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    return {key: str(meta[key]) for key in ("name", "version", "appVersion", "home")}


def push_chart(helm: Helm, registry: Registry, work: Path) -> PublishedChart:
    meta = chart_meta()
    helm.run("package", str(CHART_DIR), "--destination", str(work)).check()
    package = work / f"{meta['name']}-{meta['version']}.tgz"
    assert package.is_file(), sorted(p.name for p in work.iterdir())
    pushed = helm.run("push", str(package), f"oci://{registry.host}/{CHARTS_PATH}", "--plain-http").check()
    # helm prints "Pushed: ..." and "Digest: sha256:..." (v3 on stderr, v4 on stdout)
    match = re.search(r"Digest:\s*(sha256:[0-9a-f]{64})", pushed.stdout + pushed.stderr)
    assert match, pushed.stdout + pushed.stderr
    return PublishedChart(
        ref=f"oci://{registry.host}/{CHARTS_PATH}/{meta['name']}", version=meta["version"], digest=match.group(1)
    )


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this pytest run that all its xdist workers share."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    binary = require_tool("docker-registry", "DOCKER_REGISTRY", "bash .ci/get-podman .venv/bin")
    with running_registry(binary, tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def coin_sync_image(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> PublishedImage:
    """The runtime stage built from the Dockerfile, pushed; referenced by digest."""
    tool = podman()
    work = tmp_path_factory.mktemp("image")
    image_id = build_image(tool, run_folder(tmp_path_factory))
    return push_image(tool, image_id, registry, name=IMAGE_NAME, tag=chart_meta()["appVersion"], work=work)


@pytest.fixture(scope="session")
def oci_helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """A helm of its own (config and registry credentials apart from the chart tests').
    Like theirs, a missing helm fails (HelmNotFound says how to get it), never skips."""
    return Helm(find_helm(), tmp_path_factory.mktemp("oci-helm-home"))


@pytest.fixture(scope="session")
def published_chart(oci_helm: Helm, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> PublishedChart:
    """`helm package` + `helm push` of chart/ to oci://<registry>/charts."""
    return push_chart(oci_helm, registry, tmp_path_factory.mktemp("chart-package"))


def helm_template_from(helm: Helm, chart: PublishedChart, *extra: str, release: str = "rel") -> list[dict[str, object]]:
    """`helm template` of the chart pulled back from the registry."""
    result = helm.run("template", release, *chart.helm_args(), *extra).check()
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def set_flags(values: Sequence[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]
