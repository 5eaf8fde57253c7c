"""The chart as users get it: packaged, pushed to an OCI registry, pulled back from
`oci://` and rendered with the published image by digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from chart.helm import Helm, container, find_one
from publish import Podman, PublishedChart, PublishedImage, chart_meta, helm_template_from, podman, set_flags


def test_the_chart_pulled_back_is_the_one_pushed(
    oci_helm: Helm, published_chart: PublishedChart, tmp_path: Path
) -> None:
    shown = yaml.safe_load(oci_helm.run("show", "chart", *published_chart.helm_args()).check().stdout)
    assert (shown["name"], shown["version"], shown["appVersion"]) == (
        chart_meta()["name"],
        chart_meta()["version"],
        chart_meta()["appVersion"],
    )
    pulled = oci_helm.run("pull", *published_chart.helm_args(), "--destination", str(tmp_path)).check()
    assert published_chart.digest in pulled.stdout + pulled.stderr
    assert (tmp_path / f"coin-sync-{published_chart.version}.tgz").is_file()


def test_the_chart_from_oci_runs_the_published_image_by_digest(
    oci_helm: Helm, published_chart: PublishedChart, coin_sync_image: PublishedImage
) -> None:
    docs: list[Any] = helm_template_from(oci_helm, published_chart, *set_flags(coin_sync_image.helm_set_values))

    image = container(docs)["image"]
    assert image == coin_sync_image.ref
    test_pod = find_one(docs, "Pod")
    assert test_pod["spec"]["containers"][0]["image"] == coin_sync_image.ref
    # What a node does with that reference: pull it from the registry.
    tool: Podman = podman()
    pulled_id = tool.run("pull", "--quiet", "--tls-verify=false", image).stdout.strip()
    assert pulled_id == coin_sync_image.image_id


def test_the_chart_from_oci_defaults_to_where_the_release_workflow_publishes(
    oci_helm: Helm, published_chart: PublishedChart
) -> None:
    docs: list[Any] = helm_template_from(oci_helm, published_chart)
    home = chart_meta()["home"]
    owner = home.removeprefix("https://github.com/").split("/")[0]
    assert container(docs)["image"] == f"ghcr.io/{owner}/coin-sync:{chart_meta()['appVersion']}"
