"""skaffold.yaml: valid for skaffold/v4beta14, and what it hands helm really lands in the
CronJob (the image skaffold built; DEBUG and the fast schedule under the dev profile).

No skaffold binary runs here: the test does what skaffold does with the file (apply the
profile's patches, fill setValueTemplates, pass --set to helm) and renders the chart
with the real helm.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from chart.helm import Helm, container, find_helm, find_one, job_command_and_env
from container_support import REPO_ROOT, parse_dockerfile, shared_schema

SKAFFOLD: dict[str, Any] = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text(encoding="utf-8"))
BUILT_REPO = "registry.example:5000/coin-sync"
BUILT_TAG = "v1-abc1234"


def template_key(image: str) -> str:
    """Skaffold's name for an artifact in templates: `-` and `/` become `_`."""
    return re.sub(r"[-/]", "_", image)


def with_profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The config with a profile's JSON patches applied (only `add`, what this file uses)."""
    result = copy.deepcopy(config)
    profile = next(p for p in config["profiles"] if p["name"] == name)
    for patch in profile.get("patches", []):
        assert patch["op"] == "add", patch
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in patch["path"].split("/")[1:]]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = patch["value"]
    return result


def helm_set_values(config: dict[str, Any]) -> list[str]:
    """The --set arguments skaffold gives helm for the release, templates filled in."""
    (release,) = config["deploy"]["helm"]["releases"]
    key = template_key(config["build"]["artifacts"][0]["image"])
    filled = {f"IMAGE_REPO_{key}": BUILT_REPO, f"IMAGE_TAG_{key}": BUILT_TAG}

    def fill(template: str) -> str:
        def lookup(m: re.Match[str]) -> str:
            assert m.group(1) in filled, f"{m.group(1)} no es una variable que skaffold defina aquí"
            return filled[m.group(1)]

        return re.sub(r"\{\{\s*\.([A-Za-z0-9_]+)\s*\}\}", lookup, template)

    values = {k: fill(str(v)) for k, v in release.get("setValueTemplates", {}).items()}
    values.update({k: str(v) for k, v in release.get("setValues", {}).items()})
    return [f"{k}={v}" for k, v in values.items()]


def test_valid_against_the_v4beta14_schema() -> None:
    validator = jsonschema.Draft7Validator(shared_schema("skaffold-v4beta14.json"))
    for config in (SKAFFOLD, with_profile(SKAFFOLD, "dev")):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]
        assert errors == []
    assert SKAFFOLD["apiVersion"] == "skaffold/v4beta14"


def test_builds_the_runtime_stage_of_the_dockerfile_and_deploys_the_chart() -> None:
    (artifact,) = SKAFFOLD["build"]["artifacts"]
    assert artifact["image"] == "coin-sync"
    docker = artifact["docker"]
    assert (REPO_ROOT / artifact.get("context", ".") / docker["dockerfile"]).is_file()
    assert docker["target"] in [s.name for s in parse_dockerfile()]
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    assert (REPO_ROOT / release["chartPath"] / "Chart.yaml").is_file()
    key = template_key(artifact["image"])
    assert release["setValueTemplates"] == {
        "image.repository": f"{{{{.IMAGE_REPO_{key}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{key}}}}}",
    }


def test_dev_profile_turns_on_by_itself_under_skaffold_dev() -> None:
    (dev,) = [p for p in SKAFFOLD["profiles"] if p["name"] == "dev"]
    assert {"command": "dev"} in dev["activation"]


def _render(tmp_path: Path, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    docs = Helm(find_helm(), tmp_path / "helm").render(set_values=helm_set_values(config))
    _, env = job_command_and_env(docs)
    return container(docs), env, find_one(docs, "CronJob")


def test_the_built_image_reaches_the_cronjob(tmp_path: Path) -> None:
    c, env, _ = _render(tmp_path, SKAFFOLD)
    assert c["image"] == f"{BUILT_REPO}:{BUILT_TAG}"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert env["LOG_LEVEL"] == "INFO"  # the chart's own default outside dev


def test_dev_profile_logs_debug_every_minute(tmp_path: Path) -> None:
    c, env, cronjob = _render(tmp_path, with_profile(SKAFFOLD, "dev"))
    assert c["image"] == f"{BUILT_REPO}:{BUILT_TAG}"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert cronjob["spec"]["schedule"] == "* * * * *"
