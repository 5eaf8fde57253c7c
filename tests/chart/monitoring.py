"""Helpers of the monitoring tests: the chart's PrometheusRule and dashboard as rendered,
and promtool (Debian's `prometheus` package, installed by .ci/get-prometheus)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .helm import MONITORING_API, NAMESPACE, RELEASE, Doc, Helm, find_one, find_tool

FULLNAME = f"{RELEASE}-coin-sync"
PUSHGATEWAY_URL = "http://pushgateway.monitoring:9091"
#: Metrics, PrometheusRule and dashboard on, everything else at its default.
MONITORING_ON: tuple[str, ...] = (
    "metrics.enabled=true",
    f"metrics.pushgateway.url={PUSHGATEWAY_URL}",
    "metrics.prometheusRule.enabled=true",
    "metrics.grafanaDashboard.enabled=true",
)
#: The grouping labels of a pass of the default release, as Prometheus sees them
#: through the Pushgateway with honor_labels: true.
PUSHED_LABELS = {"job": "coin-sync", "namespace": NAMESPACE, "cronjob": FULLNAME, "shard": "0"}
#: The default alerts, by name.
ALERTS = (
    "CoinSyncNoRecentSuccess",
    "CoinSyncConfigError",
    "CoinSyncBackendUnavailable",
    "CoinSyncSymbolStale",
    "CoinSyncFreshnessBudget",
    "CoinSyncMetricsMissing",
    "CoinSyncPassTooSlow",
    "CoinSyncSymbolGaps",
)


class ToolNotFound(RuntimeError):
    pass


def require_tool(name: str, env_var: str) -> str:
    found = find_tool(name, env_var)
    if not found:
        raise ToolNotFound(
            f"no encuentro {name} (ni ${env_var}, ni en PATH, ni .venv/bin/{name}): ejecuta "
            f"`bash .ci/get-prometheus .venv/bin` o define {env_var}=/ruta/a/{name}"
        )
    return found


def render_monitoring(helm: Helm, *extra: str, values_files: Sequence[Path] = ()) -> list[Doc]:
    """The chart with monitoring on, as on a cluster that has the PrometheusRule API."""
    return helm.render(*values_files, set_values=[*MONITORING_ON, *extra], api_versions=MONITORING_API)


def prometheus_rule(docs: Sequence[Doc]) -> Doc:
    return find_one(docs, "PrometheusRule")


def rule_file(docs: Sequence[Doc]) -> dict[str, Any]:
    """The PrometheusRule's spec as a Prometheus rule file (what the Operator loads)."""
    return {"groups": prometheus_rule(docs)["spec"]["groups"]}


def alert_rule(docs: Sequence[Doc], name: str) -> Doc:
    found = [r for g in rule_file(docs)["groups"] for r in g["rules"] if r.get("alert") == name]
    assert len(found) == 1, f"se esperaba una alerta {name}, hay {len(found)}"
    return found[0]


def alert_names(docs: Sequence[Doc]) -> list[str]:
    return [r["alert"] for g in rule_file(docs)["groups"] for r in g["rules"] if "alert" in r]


def dashboard(docs: Sequence[Doc]) -> dict[str, Any]:
    cm = find_one(docs, "ConfigMap", f"{FULLNAME}-dashboard")
    board: dict[str, Any] = json.loads(cm["data"]["coin-sync.json"])
    return board


def dashboard_queries(board: dict[str, Any]) -> dict[str, str]:
    """Every panel query: "<panel title>/<refId>" -> PromQL."""
    return {
        f"{panel['title']}/{target['refId']}": target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool", "PROMTOOL"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
