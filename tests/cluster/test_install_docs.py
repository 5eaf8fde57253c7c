"""What the READMEs tell a user to run, run: their `helm install` commands rendered from
the chart published to the local registry, and one place (chart/Chart.yaml's `home`)
naming the owner that the chart's default image, the READMEs and the release workflow
agree on."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.helm import Helm, container, find_one, pod_spec
from publish import PublishedChart, chart_meta, helm_template_from
from required import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
CHART_README = (REPO_ROOT / "chart" / "README.md").read_text(encoding="utf-8")
WORKFLOW = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))
VALUES = yaml.safe_load((REPO_ROOT / "chart" / "values.yaml").read_text(encoding="utf-8"))
OWNER = chart_meta()["home"].removeprefix("https://github.com/").split("/")[0]
GHCR_CHART = f"oci://ghcr.io/{OWNER}/charts/coin-sync"


def helm_installs(markdown: str) -> list[list[str]]:
    """Every `helm install` of the markdown's bash blocks, as argv (continuations joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("helm install "):
                commands.append(shlex.split(line, comments=True))
    return commands


def oci_installs(markdown: str) -> list[list[str]]:
    return [words for words in helm_installs(markdown) if words[3].startswith("oci://")]


def rendered(helm: Helm, chart: PublishedChart, words: list[str]) -> list[Any]:
    """The README's `helm install RELEASE oci://... FLAGS` as `helm template` of the
    chart in the local registry (its own --version must be the published one)."""
    release, flags = words[2], words[4:]
    version = flags[flags.index("--version") + 1]
    assert version == chart.version
    del flags[flags.index("--version") : flags.index("--version") + 2]
    flags = [flag for flag in flags if flag != "--create-namespace"]
    return helm_template_from(helm, chart, *flags, release=release)


def test_the_default_image_is_where_the_release_workflow_publishes() -> None:
    assert VALUES["image"]["repository"] == f"ghcr.io/{OWNER}/coin-sync"
    assert VALUES["image"]["tag"] == ""  # the chart's appVersion: what the workflow tags
    image_job = WORKFLOW["jobs"]["image"]
    assert image_job["env"]["IMAGE"] == "ghcr.io/${{ needs.version.outputs.owner }}/coin-sync"
    assert WORKFLOW["jobs"]["chart"]["env"]["CHARTS"] == "ghcr.io/${{ needs.version.outputs.owner }}/charts"
    build = next(step for step in image_job["steps"] if step.get("id") == "build")["with"]
    assert build["platforms"].split(",") == ["linux/amd64", "linux/arm64"]
    assert (build["provenance"], build["sbom"], build["push"]) == ("mode=max", True, True)
    for job in ("image", "chart"):
        assert any("cosign sign --yes" in step.get("run", "") for step in WORKFLOW["jobs"][job]["steps"]), job
    assert WORKFLOW["permissions"] == {}


@pytest.mark.parametrize("markdown", [README, CHART_README], ids=["README", "chart/README"])
def test_the_install_commands_name_the_published_chart(markdown: str) -> None:
    installs = oci_installs(markdown)
    assert any(words[3] == GHCR_CHART for words in installs), installs
    for words in installs:
        assert words[words.index("--version") + 1] == chart_meta()["version"], words


def test_the_readme_install_renders_the_published_image(oci_helm: Helm, published_chart: PublishedChart) -> None:
    (words,) = [words for words in oci_installs(README) if words[3] == GHCR_CHART]
    docs = rendered(oci_helm, published_chart, words)

    assert container(docs)["image"] == f"ghcr.io/{OWNER}/coin-sync:{chart_meta()['appVersion']}"
    backend_url = words[words.index("--set") + 1].removeprefix("backend.url=")
    env = find_one(docs, "ConfigMap", "coin-sync-env")["data"]
    assert env["BACKEND_URL"] == backend_url


def test_the_private_registry_install_renders_the_mirrored_image(
    oci_helm: Helm, published_chart: PublishedChart
) -> None:
    (words,) = [words for words in oci_installs(README) if words[3] != GHCR_CHART]
    docs = rendered(oci_helm, published_chart, words)

    mirror = Path(words[3].removeprefix("oci://")).parent.parent  # <registry>/charts/coin-sync
    assert container(docs)["image"] == f"{mirror}/coin-sync:{chart_meta()['appVersion']}"
    assert pod_spec(docs)["imagePullSecrets"] == [{"name": "regcred"}]
