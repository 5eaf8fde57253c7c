"""helm lint --strict and kubernetes-validate --strict of every render of the chart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helm import CHART_DIR, CI_VALUES, Helm, parse_docs

KUBE_VERSIONS = ["1.29.0", "1.31.0", "1.34.0"]
REQUIRED_CI = {
    "full-values",
    "zero-values",
    "sharded-values",
    "existing-secret-values",
    "integration-off-values",
}


def test_helm_version_is_supported(helm: Helm) -> None:
    major, minor = (int(x) for x in helm.version.lstrip("v").split(".")[:2])
    assert (major, minor) >= (3, 19), f"{helm.binary} es {helm.version}: se soporta v4 y v3.19+"


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "coin-sync"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"
    assert isinstance(chart["appVersion"], str)


def test_ci_values_cover_the_scenarios() -> None:
    assert {f.stem for f in CI_VALUES} >= REQUIRED_CI


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.stem if v else "defaults")
def test_lint_strict(helm: Helm, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART_DIR)]
    if values:
        args += ["--values", str(values)]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.fixture(scope="session")
def rendered_files(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, int]:
    """Every render in one file each (all its documents): path -> number of documents."""
    out = tmp_path_factory.mktemp("renders")
    renders = {"defaults": helm.template()}
    for f in CI_VALUES:
        renders[f.stem] = helm.template(f)
    # The other side of the KubeVersion switch: sharded without backoffLimitPerIndex.
    renders["sharded-k8s-1.28"] = helm.template(
        CHART_DIR / "ci" / "sharded-values.yaml", kube_version="1.28.0"
    )
    files: dict[Path, int] = {}
    for name, result in renders.items():
        result.check()
        path = out / f"{name}.yaml"
        path.write_text(result.stdout, encoding="utf-8")
        files[path] = len(parse_docs(result.stdout))
    return files


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_kubernetes_validate_strict(rendered_files: dict[Path, int], kube_version: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            kube_version,
            *map(str, rendered_files),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    lines = output.splitlines()
    # A kind without a schema is only a WARN for kubernetes-validate: not good enough.
    assert all(line.startswith("INFO ") for line in lines), output
    for path, count in rendered_files.items():
        passed = [line for line in lines if line.startswith(f"INFO {path} passed")]
        assert len(passed) == count, f"{path.name}: {len(passed)} de {count} validados\n{output}"
