"""helm lint --strict and kubernetes-validate --strict of every render of the chart."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from required import shared_schema_path

from .helm import (
    CHART_DIR,
    CI_VALUES,
    MONITORING_API,
    Doc,
    Helm,
    find_all,
    find_one,
    parse_docs,
)
from .monitoring import MONITORING_ON

PROMETHEUS_RULE_CRD = "prometheusrule-crd-v0.93.1.yaml"

KUBE_VERSIONS = ["1.29.0", "1.31.0", "1.34.0"]
REQUIRED_CI = {
    "full-values",
    "zero-values",
    "sharded-values",
    "existing-secret-values",
    "integration-off-values",
    "monitoring-values",
}


def test_helm_version_is_supported(helm: Helm) -> None:
    major, minor = (int(x) for x in helm.version.lstrip("v").split(".")[:2])
    assert (major, minor) >= (3, 19), f"{helm.binary} es {helm.version}: se soporta v4 y v3.19+"


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "coin-sync"
    assert chart["version"] == "0.2.0"
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
def renders(helm: Helm) -> dict[str, list[Doc]]:
    """Every render of the chart that the validators check, by name."""
    results = {"defaults": helm.template()}
    for f in CI_VALUES:
        results[f.stem] = helm.template(f)
    # The other side of the KubeVersion switch: sharded without backoffLimitPerIndex.
    results["sharded-k8s-1.28"] = helm.template(CHART_DIR / "ci" / "sharded-values.yaml", kube_version="1.28.0")
    # Monitoring as on a cluster with the Prometheus Operator's CRDs (no `force`).
    results["monitoring-api"] = helm.template(set_values=MONITORING_ON, api_versions=MONITORING_API)
    return {name: parse_docs(result.check().stdout) for name, result in results.items()}


@pytest.fixture(scope="session")
def rendered_files(renders: dict[str, list[Doc]], tmp_path_factory: pytest.TempPathFactory) -> dict[Path, int]:
    """Every render in one file each: path -> number of documents. A PrometheusRule is
    a custom resource kubernetes-validate has no schema for: it is validated against the
    Prometheus Operator's CRD instead (test_prometheus_rules_match_the_crd)."""
    out = tmp_path_factory.mktemp("renders")
    files: dict[Path, int] = {}
    for name, docs in renders.items():
        kept = [d for d in docs if d["kind"] != "PrometheusRule"]
        path = out / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(kept, allow_unicode=True), encoding="utf-8")
        files[path] = len(kept)
    return files


def strict(schema: Any) -> Any:
    """The CRD's openAPIV3Schema with additionalProperties: false on every object that
    lists its properties: a misspelt field fails instead of being pruned by the API."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="session")
def prometheus_rule_validator() -> jsonschema.protocols.Validator:
    crd = yaml.safe_load(shared_schema_path(PROMETHEUS_RULE_CRD).read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    # OpenAPI v3.0 schemas are JSON Schema draft-4/7 compatible for what a CRD uses (no
    # check_schema: its patterns use Go's (?i), which the ECMA regex check rejects).
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def test_prometheus_rules_match_the_crd(
    renders: dict[str, list[Doc]], prometheus_rule_validator: jsonschema.protocols.Validator
) -> None:
    rules = {name: find_all(docs, "PrometheusRule") for name, docs in renders.items()}
    # Where monitoring is on, there is one rule to check; everywhere else, none.
    assert {name for name, found in rules.items() if found} == {"monitoring-values", "monitoring-api"}
    for name, found in rules.items():
        for rule in found:
            errors = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in prometheus_rule_validator.iter_errors(rule)
            ]
            assert errors == [], f"{name}: {errors}"
            assert rule["apiVersion"] == "monitoring.coreos.com/v1"


def test_crd_validation_catches_a_misspelt_field(
    renders: dict[str, list[Doc]], prometheus_rule_validator: jsonschema.protocols.Validator
) -> None:
    rule = copy.deepcopy(find_one(renders["monitoring-api"], "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][2]["fro"] = "5m"
    rule["spec"]["groups"][0]["rules"][0].pop("expr")
    messages = [e.message for e in prometheus_rule_validator.iter_errors(rule)]
    assert any("'fro'" in m for m in messages), messages
    assert any("'expr' is a required property" in m for m in messages), messages


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
