"""chart-testing's lint, without ct: yamllint with its lintconf.yaml on Chart.yaml and the
values files, and yamale with its chart_schema.yaml on Chart.yaml (tests/chart/ct/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helm import CHART_DIR, CI_VALUES

CT_DIR = Path(__file__).resolve().parent / "ct"
LINTED = [CHART_DIR / "Chart.yaml", CHART_DIR / "values.yaml", *CI_VALUES]
# https://artifacthub.io/docs/topics/repositories/ : the categories Artifact Hub accepts.
ARTIFACT_HUB_CATEGORIES = {
    "ai-machine-learning",
    "database",
    "integration-delivery",
    "monitoring-logging",
    "networking",
    "security",
    "storage",
    "streaming-messaging",
}


def yamllint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-c", str(CT_DIR / "lintconf.yaml"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def yamale(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yamale.command_line", "-s", str(CT_DIR / "chart_schema.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_yamllint_with_ct_lintconf() -> None:
    proc = yamllint(*LINTED)
    # No errors and no warnings (ct shows warnings; a clean chart has none).
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_yamllint_catches_what_ct_would(tmp_path: Path) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("schedule: '* * * * *'\nschedule: '*/5 * * * *'\nsuspend: yes  \n", encoding="utf-8")
    proc = yamllint(bad)
    assert proc.returncode != 0
    assert "key-duplicates" in proc.stdout and "trailing-spaces" in proc.stdout and "truthy" in proc.stdout


def test_yamale_with_ct_chart_schema() -> None:
    proc = yamale(CHART_DIR / "Chart.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation success" in proc.stdout


def test_yamale_rejects_a_bad_chart_yaml(tmp_path: Path) -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    chart["annotations"]["artifacthub.io/images"] = [{"name": "coin-sync"}]  # must be a string
    del chart["version"]
    bad = tmp_path / "Chart.yaml"
    bad.write_text(yaml.safe_dump(chart), encoding="utf-8")
    proc = yamale(bad)
    assert proc.returncode != 0
    assert "version: Required field missing" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def annotations() -> dict[str, str]:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    found: dict[str, str] = chart["annotations"]
    return found


def test_artifact_hub_annotations(annotations: dict[str, str]) -> None:
    assert annotations["artifacthub.io/category"] in ARTIFACT_HUB_CATEGORIES
    assert annotations["artifacthub.io/license"]
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert links and all(set(link) == {"name", "url"} and link["url"].startswith("https://") for link in links)
    images = yaml.safe_load(annotations["artifacthub.io/images"])
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    repository = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))["image"]["repository"]
    assert images == [{"name": "coin-sync", "image": f"{repository}:{chart['appVersion']}"}]
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    assert changes
    for change in changes:
        assert set(change) == {"kind", "description"}
        assert change["kind"] in {"added", "changed", "deprecated", "removed", "fixed", "security"}
