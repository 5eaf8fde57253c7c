"""Every value documented (values.yaml comments, README table, schema) and the NOTES."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .helm import CHART_DIR, NAMESPACE, RELEASE, Helm, fake_kube_api

VALUES_TEXT = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
README = (CHART_DIR / "README.md").read_text(encoding="utf-8")


def value_paths(values: Any, schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """The documented unit of each value: a leaf, or an object the schema passes through
    as a whole (resources.requests, podSecurityContext...). Empty maps are leaves too."""
    if isinstance(values, dict) and values and "properties" in schema:
        for key, sub in values.items():
            assert key in schema["properties"], f"{prefix}{key} no está en values.schema.json"
            yield from value_paths(sub, schema["properties"][key], f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


PATHS = list(value_paths(VALUES, SCHEMA))


def test_there_are_many_values() -> None:
    assert len(PATHS) > 80
    assert "schedule" in PATHS and "config.HTTP_TIMEOUT" in PATHS and "configFile" not in PATHS


@pytest.mark.parametrize("path", PATHS)
def test_value_in_readme_table(path: str) -> None:
    rows = [line for line in README.splitlines() if line.startswith(f"| `{path}` |")]
    assert len(rows) == 1, f"{path} no está (una vez) en la tabla de valores de chart/README.md"
    assert rows[0].count("|") >= 4 and rows[0].rstrip().endswith("|")


def test_readme_table_has_no_stale_values() -> None:
    # Other tables (objects, recording rules) start rows with backticks too.
    values_section = README.split("\n## Valores\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([^`]+)` \|", values_section, flags=re.MULTILINE)
    assert set(documented) == set(PATHS)


def test_every_value_has_a_comment_in_values_yaml() -> None:
    """The line before each value's key is a comment (helm-docs style `# --`)."""
    leaves = set(PATHS)
    stack: list[tuple[int, str]] = []
    missing = []
    lines = VALUES_TEXT.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z][A-Za-z0-9_.-]*):", line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if path in leaves:
            previous = next(p for p in reversed(lines[:i]) if p.strip())
            if not previous.strip().startswith("#"):
                missing.append(path)
    assert missing == []


def test_every_schema_property_is_a_value() -> None:
    def walk(schema: dict[str, Any], values: Any, prefix: str) -> Iterator[str]:
        for key, sub in schema.get("properties", {}).items():
            if key == "global":
                continue
            if not isinstance(values, dict) or key not in values:
                yield prefix + key
            elif "properties" in sub and values[key]:
                yield from walk(sub, values[key], f"{prefix}{key}.")

    assert list(walk(SCHEMA, VALUES, "")) == []


def test_schema_rejects_unknown_keys_everywhere() -> None:
    assert SCHEMA["additionalProperties"] is False
    assert "global" in SCHEMA["properties"]

    def objects(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if "properties" in schema:
            yield path, schema
            for key, sub in schema["properties"].items():
                yield from objects(sub, f"{path}.{key}")

    for path, obj in objects(SCHEMA, "$"):
        if path in ("$.podFailurePolicy.extraRules",):
            continue
        assert obj.get("additionalProperties") is False, path


# --------------------------------------------------------------------------------------
# NOTES.txt through `helm install --dry-run=client`
# --------------------------------------------------------------------------------------


def install_dry_run(helm: Helm, *args: str) -> str:
    """`helm install --dry-run=client`; helm v3 needs an API for discovery (a fake one)."""
    with fake_kube_api() as api:
        helm.use_kube_api(api.url)
        try:
            extra = ["--disable-openapi-validation"] if helm.major == 3 else []
            result = helm.run(
                "install",
                RELEASE,
                str(CHART_DIR),
                "--namespace",
                NAMESPACE,
                "--dry-run=client",
                *extra,
                *args,
            ).check()
        finally:
            helm.use_kube_api("http://127.0.0.1:9")
        if helm.major >= 4:
            assert api.requests == [], "helm v4 --dry-run=client no debe contactar el clúster"
    return result.stdout


def notes(output: str) -> str:
    assert "NOTES:" in output, output
    return output.split("NOTES:", 1)[1]


def test_notes_show_manual_run(helm: Helm) -> None:
    text = notes(install_dry_run(helm))
    fullname = f"{RELEASE}-coin-sync"
    assert f"kubectl create job --from=cronjob/{fullname} " in text
    assert f"{fullname}-manual-$(date +%s)" in text
    assert f"--namespace {NAMESPACE}" in text
    # Spanish, with logs, exit code and suspend/resume.
    assert "Lanzar una pasada manual" in text
    assert "kubectl logs" in text
    assert "Código de salida" in text and "exitCode" in text
    assert "suspend=true" in text and "suspend=false" in text
    assert f"{fullname}-status" in text  # integration on
    assert f"helm test {RELEASE}" in text
    # The 0.x rename: one name per setting, config.<ENV_NAME>.
    assert "config.<VARIABLE>" in text and "Nombres que cambian" in text


def test_notes_follow_values(helm: Helm) -> None:
    text = notes(
        install_dry_run(
            helm,
            "--set",
            "suspend=true",
            "--set",
            "shards=8",
            "--set",
            "kubernetes.integration.enabled=false",
            "--set",
            "tests.enabled=false",
            "--set",
            "fullnameOverride=markets",
        )
    )
    assert "kubectl create job --from=cronjob/markets " in text
    assert "SUSPENDIDA" in text
    assert "8 pods" in text and "--max-log-requests 8" in text
    assert "-status" not in text
    assert "helm test" not in text


def test_notes_warn_about_a_shared_existing_claim(helm: Helm) -> None:
    """Shards share logs.persistence.existingClaim: the chart cannot see its access modes."""
    text = notes(
        install_dry_run(
            helm,
            "--set",
            "shards=3",
            "--set",
            "logs.persistence.existingClaim=shared-logs",
        )
    )
    assert "ATENCIÓN: los 3 shards" in text
    assert "shared-logs" in text and "ReadWriteMany" in text
    assert f"kubectl get pvc shared-logs --namespace {NAMESPACE}" in text
    # One shard: a single pod mounts it, nothing to warn about.
    text = notes(install_dry_run(helm, "--set", "logs.persistence.existingClaim=shared-logs"))
    assert "ReadWriteMany" not in text
    assert "shared-logs" not in text


def test_notes_without_integration_when_mode_off(helm: Helm) -> None:
    text = notes(install_dry_run(helm, "--set", "kubernetes.integration.mode=off"))
    assert f"{RELEASE}-coin-sync-status" not in text
