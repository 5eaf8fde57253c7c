"""Monitoring in the chart: the metrics settings, the PrometheusRule and the dashboard as
rendered, and the chart-wide extras (commonLabels, extraObjects, DNS, initContainers)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from coin_sync.config.schedule import interval_seconds

from .helm import (
    CHART_DIR,
    MONITORING_API,
    NAMESPACE,
    RELEASE,
    Doc,
    Helm,
    container,
    find_all,
    find_one,
    pod_spec,
)
from .monitoring import (
    ALERTS,
    FULLNAME,
    MONITORING_ON,
    PUSHGATEWAY_URL,
    alert_names,
    alert_rule,
    dashboard,
    dashboard_queries,
    prometheus_rule,
    render_monitoring,
)
from .test_chart_docs import install_dry_run, notes

CI = CHART_DIR / "ci"
README = (CHART_DIR / "README.md").read_text(encoding="utf-8")
METRICS_ON = ("metrics.enabled=true", f"metrics.pushgateway.url={PUSHGATEWAY_URL}")
SELECTOR = f'job="coin-sync", namespace="{NAMESPACE}", cronjob="{FULLNAME}"'
BASIC_AUTH = (
    "metrics.pushgateway.basicAuth.username=pusher",
    "metrics.pushgateway.basicAuth.existingSecret.name=pg-auth",
    "metrics.pushgateway.basicAuth.existingSecret.key=pw",
)

# Env names the chart sets that coin_sync.config does not define yet: issue 9 (metrics
# and freshness) adds them to the program. Until then the program ignores them. Remove
# each from here once `setting_names()` lists it; the test below then keeps it honest.
# Read by the program at its edges, not settings: the downward-API identity (the
# Kubernetes integration; POD_NAMESPACE also labels the metrics) and the CronJob's name
# (the metrics' `cronjob` label).
EDGE_ENV = {"POD_NAME", "POD_NAMESPACE", "JOB_NAME", "JOB_UID", "POD_UID", "CRONJOB_NAME"}
# What monitoring-values.yaml must make the chart pass.
METRICS_ENV = {
    "STALE_AFTER_SECONDS",
    "FAIL_ON_STALE",
    "METRICS_PUSHGATEWAY_URL",
    "METRICS_JOB",
    "METRICS_PUSHGATEWAY_USERNAME",
    "METRICS_PUSHGATEWAY_PASSWORD_FILE",
    "CRONJOB_NAME",
}


def env_data(docs: list[Doc]) -> dict[str, str]:
    data: dict[str, str] = find_one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]
    return data


def env_list(docs: list[Doc]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs).get("env", [])}


def fails(helm: Helm, *set_values: str, api: bool = False, set_json: tuple[str, ...] = ()) -> str:
    result = helm.template(set_values=set_values, set_json=set_json, api_versions=MONITORING_API if api else ())
    assert result.returncode != 0, f"helm template aceptó {set_values}"
    return result.stderr


# --------------------------------------------------------------------------------------
# Metrics settings
# --------------------------------------------------------------------------------------


def test_metrics_off_by_default(default_docs: list[Doc]) -> None:
    assert not {k for k in env_data(default_docs) if k.startswith("METRICS_")}
    assert "CRONJOB_NAME" not in env_data(default_docs)
    assert find_all(default_docs, "PrometheusRule") == []
    assert all(not d["metadata"]["name"].endswith("-dashboard") for d in default_docs)
    # The freshness settings are the program's defaults, always set.
    assert env_data(default_docs)["STALE_AFTER_SECONDS"] == "180"
    assert env_data(default_docs)["FAIL_ON_STALE"] == "false"


def test_metrics_env(helm: Helm) -> None:
    docs = helm.render(
        set_values=[*METRICS_ON, "metrics.job=markets", "config.FAIL_ON_STALE=true", "config.STALE_AFTER_SECONDS=0.5"]
    )
    data = env_data(docs)
    assert data["METRICS_PUSHGATEWAY_URL"] == PUSHGATEWAY_URL
    assert data["METRICS_JOB"] == "markets"
    # The grouping key's cronjob label: the CronJob's own name.
    assert data["CRONJOB_NAME"] == find_one(docs, "CronJob")["metadata"]["name"] == FULLNAME
    assert data["FAIL_ON_STALE"] == "true"
    assert data["STALE_AFTER_SECONDS"] == "0.5"
    assert "METRICS_PUSHGATEWAY_USERNAME" not in data
    assert "METRICS_PUSHGATEWAY_PASSWORD_FILE" not in env_list(docs)
    # The namespace label comes from POD_NAMESPACE (downward API, with the integration).
    assert env_list(docs)["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_metrics_namespace_without_the_integration(helm: Helm) -> None:
    docs = helm.render(set_values=[*METRICS_ON, "kubernetes.integration.enabled=false"])
    env = env_list(docs)
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "POD_NAME" not in env and "JOB_NAME" not in env  # the rest stays off
    assert find_all(docs, "Role") == []


def test_pushgateway_password_is_a_mounted_file(helm: Helm) -> None:
    docs = helm.render(set_values=[*METRICS_ON, *BASIC_AUTH])
    assert env_data(docs)["METRICS_PUSHGATEWAY_USERNAME"] == "pusher"
    path = "/var/run/secrets/coin-sync-pushgateway/password"
    pods = [pod_spec(docs), find_one(docs, "Pod", f"{FULLNAME}-test")["spec"]]
    for pod in pods:
        (c,) = pod["containers"]
        assert {"name": "METRICS_PUSHGATEWAY_PASSWORD_FILE", "value": path} in c["env"]
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "pushgateway-password"]
        assert mount == {"name": "pushgateway-password", "mountPath": str(Path(path).parent), "readOnly": True}
        (volume,) = [v for v in pod["volumes"] if v["name"] == "pushgateway-password"]
        assert volume["secret"] == {
            "secretName": "pg-auth",
            "defaultMode": 0o444,
            "items": [{"key": "pw", "path": "password"}],
        }
    # The chart creates no Secret for it and never writes it in a ConfigMap.
    assert find_all(docs, "Secret") == []
    assert not any("PASSWORD" in k for cm in find_all(docs, "ConfigMap") for k in cm.get("data", {}))


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (["metrics.enabled=true"], "metrics.pushgateway.url está vacío"),
        ([*METRICS_ON, "metrics.pushgateway.basicAuth.username=u"], "existingSecret.name"),
        ([*METRICS_ON, "metrics.pushgateway.basicAuth.existingSecret.name=s"], "basicAuth.username"),
        (["metrics.prometheusRule.enabled=true", "metrics.prometheusRule.force=true"], "necesitan metrics.enabled"),
        (["metrics.grafanaDashboard.enabled=true"], "necesitan metrics.enabled"),
    ],
)
def test_metrics_mistakes_fail_with_a_message(helm: Helm, set_values: list[str], message: str) -> None:
    assert message in fails(helm, *set_values)


def test_every_env_name_is_a_program_setting(helm: Helm) -> None:
    """Each variable the chart gives the program is one it reads, so a typo in a
    template cannot go unnoticed."""
    from coin_sync.config.table import setting_names

    known = set(setting_names()) | EDGE_ENV
    docs = helm.render(CI / "full-values.yaml", CI / "monitoring-values.yaml", kube_version="1.31.0")
    user_env = {"TZ", "NODE_NAME"}  # full-values.yaml's own extraEnv
    names = (set(env_data_named(docs)) | set(env_list(docs))) - user_env
    assert names - known == set()
    assert names >= METRICS_ENV


def env_data_named(docs: list[Doc]) -> dict[str, str]:
    data: dict[str, str] = find_one(docs, "ConfigMap", "rel-coinsync-env")["data"]
    return data


# --------------------------------------------------------------------------------------
# NetworkPolicy: egress to the Pushgateway
# --------------------------------------------------------------------------------------

PG_TO = 'networkPolicy.pushgateway.to=[{"podSelector":{"matchLabels":{"app":"pushgateway"}}}]'
NP_BASE = (
    'networkPolicy.backend.to=[{"podSelector":{"matchLabels":{"app":"backend"}}}]',
    'networkPolicy.apiServer.cidrs=["10.0.0.1/32"]',
)


@pytest.mark.parametrize(
    ("url", "extra", "ports"),
    [
        ("http://pg.monitoring:9091", [], [9091]),
        ("https://pg.example.com/base", [], [443]),
        ("http://pg.example.com", [], [80]),
        ("http://pg.monitoring:9091", ["networkPolicy.pushgateway.ports=[9091,9443]"], [9091, 9443]),
    ],
)
def test_network_policy_egress_to_the_pushgateway(helm: Helm, url: str, extra: list[str], ports: list[int]) -> None:
    docs = helm.render(
        set_values=["networkPolicy.enabled=true", "metrics.enabled=true", f"metrics.pushgateway.url={url}"],
        set_json=[*NP_BASE, PG_TO, *extra],
    )
    egress = find_one(docs, "NetworkPolicy")["spec"]["egress"]
    assert len(egress) == 4  # DNS, backend, API server, Pushgateway
    assert egress[3] == {
        "ports": [{"protocol": "TCP", "port": p} for p in ports],
        "to": [{"podSelector": {"matchLabels": {"app": "pushgateway"}}}],
    }


def test_network_policy_needs_pushgateway_destinations(helm: Helm) -> None:
    stderr = fails(helm, "networkPolicy.enabled=true", *METRICS_ON, set_json=NP_BASE)
    assert "networkPolicy.pushgateway.to está vacío" in stderr
    assert "--set-json 'networkPolicy.pushgateway.to=[" in stderr
    # Without metrics nothing is asked for and no rule is added.
    docs = helm.render(set_values=["networkPolicy.enabled=true"], set_json=list(NP_BASE))
    assert len(find_one(docs, "NetworkPolicy")["spec"]["egress"]) == 3


# --------------------------------------------------------------------------------------
# PrometheusRule: only where the API exists (or forced)
# --------------------------------------------------------------------------------------

RULE_ON = (*METRICS_ON, "metrics.prometheusRule.enabled=true")


def test_prometheus_rule_needs_the_operator_crds(helm: Helm) -> None:
    stderr = fails(helm, *RULE_ON)
    (line,) = [x for x in stderr.splitlines() if "Prometheus Operator" in x]
    assert "faltan los CRDs del Prometheus Operator" in line
    assert "metrics.prometheusRule.force" in line
    # The group/version alone is not the kind: helm needs both forms.
    result = helm.template(set_values=RULE_ON, api_versions=["monitoring.coreos.com/v1"])
    assert result.returncode != 0 and "Prometheus Operator" in result.stderr


def test_prometheus_rule_with_the_api_or_forced(helm: Helm) -> None:
    with_api = helm.render(set_values=RULE_ON, api_versions=MONITORING_API)
    forced = helm.render(set_values=[*RULE_ON, "metrics.prometheusRule.force=true"])
    rule = prometheus_rule(with_api)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == FULLNAME
    assert rule["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert prometheus_rule(forced)["spec"] == rule["spec"]


def test_default_rules(helm: Helm) -> None:
    docs = render_monitoring(helm)
    groups = prometheus_rule(docs)["spec"]["groups"]
    # One group: its rules run in order, so the alerts see this evaluation's records.
    assert [g["name"] for g in groups] == ["coin-sync"]
    assert [r.get("record", r.get("alert")) for r in groups[0]["rules"]] == [
        "coin_sync:symbol_data_age_seconds",
        "coin_sync:symbols_fresh:ratio",
        *ALERTS,
    ]
    assert groups[0]["rules"][0]["expr"] == f"time() - coin_sync_symbol_last_record_timestamp_seconds{{{SELECTOR}}}"
    assert alert_names(docs) == list(ALERTS)
    expected = {  # name -> (for, severity)
        "CoinSyncNoRecentSuccess": ("1m", "critical"),
        "CoinSyncConfigError": (None, "critical"),
        "CoinSyncBackendUnavailable": ("10m", "warning"),
        "CoinSyncSymbolStale": ("5m", "warning"),
        "CoinSyncFreshnessBudget": ("10m", "warning"),
        "CoinSyncMetricsMissing": ("1m", "warning"),
        "CoinSyncPassTooSlow": ("10m", "warning"),
        "CoinSyncSymbolGaps": ("10m", "warning"),
    }
    for name, (duration, severity) in expected.items():
        rule = alert_rule(docs, name)
        assert rule.get("for") == duration, name
        assert rule["labels"] == {"severity": severity}, name
        assert SELECTOR in rule["expr"], name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    # Defaults: window 2 x 60 + 120 s; stale at 180 + 60 s of data age; 80 % of 60 s.
    assert "> 240\n" in alert_rule(docs, "CoinSyncNoRecentSuccess")["expr"]
    assert alert_rule(docs, "CoinSyncSymbolStale")["expr"].endswith("> 240")
    assert alert_rule(docs, "CoinSyncFreshnessBudget")["expr"].endswith("< 0.99")
    assert alert_rule(docs, "CoinSyncPassTooSlow")["expr"].endswith("> 48")
    assert alert_rule(docs, "CoinSyncSymbolGaps")["expr"] == f"coin_sync_symbol_missing_candles{{{SELECTOR}}} > 0"


def test_alerts_are_in_spanish(helm: Helm) -> None:
    docs = render_monitoring(helm)
    for name in ALERTS:
        annotations = alert_rule(docs, name)["annotations"]
        text = annotations["summary"] + annotations["description"]
        assert re.search(r"\b(pasada|pasadas|símbolo|símbolos|backend)\b", text), name
    stale = alert_rule(docs, "CoinSyncSymbolStale")["annotations"]
    assert "{{ $labels.symbol }}" in stale["summary"] and "{{ $value | humanizeDuration }}" in stale["summary"]


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces to -."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(anchor)
    return anchors


def test_every_alert_links_its_runbook_section(helm: Helm) -> None:
    docs = render_monitoring(helm, "metrics.prometheusRule.runbookUrl=https://example.com/README.md")
    anchors = heading_anchors(README)
    for name in ALERTS:
        url = alert_rule(docs, name)["annotations"]["runbook_url"]
        assert url == f"https://example.com/README.md#{name.lower()}"
        assert name.lower() in anchors, f"chart/README.md no tiene la sección #### {name}"
        section = README.split(f"#### {name}\n", 1)[1].split("\n#### ", 1)[0].split("\n### ", 1)[0]
        assert "**Qué significa**" in section and "**Qué hacer**" in section, name


def test_readme_shows_install_then_alerts_then_scrape_config() -> None:
    install = README.index("--set metrics.prometheusRule.enabled=true")
    alerts = README.index("#### CoinSyncNoRecentSuccess")
    scrape = README.index("honor_labels: true\n")
    assert install < alerts < scrape
    scrape_config = README[README.rindex("```yaml", 0, scrape) : README.index("```\n", scrape)]
    assert yaml.safe_load(scrape_config.removeprefix("```yaml"))["scrape_configs"][0]["honor_labels"] is True


def test_rules_disabled_and_retuned_by_name(helm: Helm) -> None:
    r = "metrics.prometheusRule.rules."
    docs = render_monitoring(
        helm,
        f"{r}CoinSyncPassTooSlow.enabled=false",
        f"{r}CoinSyncSymbolStale.for=15m",
        f"{r}CoinSyncSymbolStale.severity=page",
        f"{r}CoinSyncSymbolStale.thresholdSeconds=900",
        f"{r}CoinSyncFreshnessBudget.objective=0.9",
        f"{r}CoinSyncConfigError.for=2m",
        f"{r}CoinSyncNoRecentSuccess.windowSeconds=3600",
        f"{r}CoinSyncMetricsMissing.windowSeconds=600",
        "metrics.prometheusRule.alertLabels.team=markets",
        "metrics.prometheusRule.additionalLabels.release=kps",
        "metrics.prometheusRule.annotations.owner=markets",
        "metrics.prometheusRule.interval=30s",
    )
    assert "CoinSyncPassTooSlow" not in alert_names(docs)
    stale = alert_rule(docs, "CoinSyncSymbolStale")
    assert stale["for"] == "15m"
    assert stale["labels"] == {"severity": "page", "team": "markets"}
    assert stale["expr"].endswith("> 900")
    assert "umbral: 900 s" in stale["annotations"]["description"]
    # The fresh ratio uses the same threshold.
    ratio = prometheus_rule(docs)["spec"]["groups"][0]["rules"][1]["expr"]
    assert "<= 900)" in ratio
    assert alert_rule(docs, "CoinSyncFreshnessBudget")["expr"].endswith("< 0.9")
    assert alert_rule(docs, "CoinSyncConfigError")["for"] == "2m"
    assert "> 3600\n" in alert_rule(docs, "CoinSyncNoRecentSuccess")["expr"]
    assert "> 600\n" in alert_rule(docs, "CoinSyncMetricsMissing")["expr"]
    rule = prometheus_rule(docs)
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["annotations"] == {"owner": "markets"}
    assert {g["interval"] for g in rule["spec"]["groups"]} == {"30s"}


def test_stale_threshold_follows_stale_after_seconds(helm: Helm) -> None:
    docs = render_monitoring(helm, "config.STALE_AFTER_SECONDS=600")
    assert alert_rule(docs, "CoinSyncSymbolStale")["expr"].endswith("> 660")
    docs = render_monitoring(helm, "config.STALE_AFTER_SECONDS=300.5")
    assert alert_rule(docs, "CoinSyncSymbolStale")["expr"].endswith("> 360.5")


def test_zero_and_empty_values_render(helm: Helm) -> None:
    r = "metrics.prometheusRule.rules."
    docs = render_monitoring(helm, f"{r}CoinSyncNoRecentSuccess.marginSeconds=0", f"{r}CoinSyncConfigError.for=")
    assert "> 120\n" in alert_rule(docs, "CoinSyncNoRecentSuccess")["expr"]  # 2 x 60 + 0
    assert "for" not in alert_rule(docs, "CoinSyncConfigError")


def test_additional_rules(helm: Helm) -> None:
    extra = (
        'metrics.prometheusRule.additionalRules=[{"alert":"Mine","expr":"vector(1)","for":"1m",'
        '"labels":{"severity":"info"}},{"record":"mine:x","expr":"vector(2)"}]'
    )
    result = helm.template(set_values=RULE_ON, set_json=[extra], api_versions=MONITORING_API).check()
    groups = prometheus_rule(yaml_docs(result.stdout))["spec"]["groups"]
    assert groups[1] == {
        "name": "coin-sync.additional",
        "rules": [
            {"alert": "Mine", "expr": "vector(1)", "for": "1m", "labels": {"severity": "info"}},
            {"record": "mine:x", "expr": "vector(2)"},
        ],
    }


def yaml_docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


# (schedule, metrics.intervalSeconds): the chart reads no cron expression; the
# program's reading of `schedule` (for its budget) is tests/core/test_schedule.py.
SCHEDULES = [
    ("* * * * *", None),  # the default schedule: 60 s without the value
    ("*/5 * * * *", 300),
    ("*/15 * * * *", 900),
    ("7 * * * *", 3600),
    ("0 */6 * * *", 21600),
    ("30 2 * * *", 86400),
    ("@hourly", 3600),
    ("@daily", 86400),
]


@pytest.mark.parametrize(("schedule", "given"), SCHEDULES)
def test_windows_follow_the_interval(helm: Helm, schedule: str, given: int | None) -> None:
    extra = [] if given is None else [f"metrics.intervalSeconds={given}"]
    docs = render_monitoring(helm, f"schedule={schedule}", *extra)
    interval = given or 60
    assert interval_seconds(schedule) == interval  # what the program reads in the schedule
    window = 2 * interval + 120
    assert f"> {window}\n" in alert_rule(docs, "CoinSyncNoRecentSuccess")["expr"]
    slow = alert_rule(docs, "CoinSyncPassTooSlow")["expr"]
    assert slow.endswith(f"> {int(interval * 0.8)}")
    assert f"vector({interval})" in dashboard_queries(dashboard(docs)).values()


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "*/7 * * * *", "0 9 * * 1-5", "0 0 1 * *"])
def test_schedules_but_the_default_need_interval_seconds(helm: Helm, schedule: str) -> None:
    stderr = fails(helm, *RULE_ON, f"schedule={schedule}", api=True)
    assert "metrics.intervalSeconds" in stderr and schedule in stderr
    docs = render_monitoring(helm, f"schedule={schedule}", "metrics.intervalSeconds=86400")
    assert "> 172920\n" in alert_rule(docs, "CoinSyncNoRecentSuccess")["expr"]


# --------------------------------------------------------------------------------------
# Grafana dashboard
# --------------------------------------------------------------------------------------


def test_dashboard_configmap(helm: Helm) -> None:
    docs = render_monitoring(helm)
    cm = find_one(docs, "ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert list(cm["data"]) == ["coin-sync.json"]
    docs = render_monitoring(
        helm,
        "metrics.grafanaDashboard.namespace=monitoring",
        "metrics.grafanaDashboard.label=dashboards",
        "metrics.grafanaDashboard.labelValue=coin",
        "metrics.grafanaDashboard.annotations.grafana_folder=Mercados",
    )
    cm = find_one(docs, "ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["dashboards"] == "coin"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Mercados"}


def test_dashboard_freshness_first_then_passes(helm: Helm) -> None:
    board = dashboard(render_monitoring(helm))
    titles = [p["title"] for p in board["panels"]]
    assert titles == [
        "Frescura de los datos",
        "Símbolos al día (proporción)",
        "Símbolos desactualizados ahora",
        "Retraso máximo",
        "Pasadas",
        "Último código de salida",
        "Duración de la pasada frente al intervalo",
        "Símbolos por estado",
        "Nuevos registros",
        "Reintentos",
        "Huecos en los datos",
        "Símbolos con huecos ahora",
        "Minutos sin datos",
        "Backfills",
        "Backfills diferidos",
        "Peso del exchange por pasada frente al presupuesto",
    ]
    queries = dashboard_queries(board)
    assert queries["Backfills diferidos/A"] == f"sum(coin_sync_last_pass_deferred_symbols{{{SELECTOR}}})"
    assert queries["Símbolos al día (proporción)/A"] == f"coin_sync:symbols_fresh:ratio{{{SELECTOR}}}"
    assert queries["Símbolos desactualizados ahora/A"] == (
        f"sort_desc(coin_sync:symbol_data_age_seconds{{{SELECTOR}}} > 240)"
    )
    table = next(p for p in board["panels"] if p["type"] == "table")
    assert table["targets"][0]["format"] == "table" and table["targets"][0]["instant"] is True
    for name, query in queries.items():
        assert SELECTOR in query or query.startswith("vector("), name
    # Grafana's own legend templates survive the chart's templating.
    legends = [t.get("legendFormat") for p in board["panels"] for t in p.get("targets", [])]
    assert "{{status}}" in legends
    assert all(
        p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in board["panels"] if p["type"] != "row"
    )
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


# --------------------------------------------------------------------------------------
# What chart users expect: common metadata, extra objects, DNS, init containers
# --------------------------------------------------------------------------------------


def test_common_labels_and_annotations_on_every_object(helm: Helm) -> None:
    docs = helm.render(
        set_values=[
            *MONITORING_ON,
            "commonLabels.team=markets",
            "commonAnnotations.contact=ops@example.com",
            "backend.token=t",
            "logs.persistence.enabled=true",
            "networkPolicy.enabled=true",
            "config.MAX_RETRIES=1",
        ],
        set_json=[*NP_BASE, PG_TO],
        api_versions=MONITORING_API,
    )
    kinds = {d["kind"] for d in docs}
    assert kinds >= {
        "CronJob",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "PrometheusRule",
        "Pod",
    }
    for doc in docs:
        meta = doc["metadata"]
        assert meta["labels"]["team"] == "markets", doc["kind"]
        assert meta["annotations"]["contact"] == "ops@example.com", doc["kind"]
    template_meta = find_one(docs, "CronJob")["spec"]["jobTemplate"]
    assert template_meta["metadata"]["labels"]["team"] == "markets"
    assert template_meta["spec"]["template"]["metadata"]["labels"]["team"] == "markets"
    assert template_meta["spec"]["template"]["metadata"]["annotations"]["contact"] == "ops@example.com"
    # The hook annotations of the helm test pod are kept.
    assert find_one(docs, "Pod")["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_extra_objects(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["full-values"]
    assert find_one(docs, "ConfigMap", f"{RELEASE}-extra")["data"] == {"owner": "markets"}
    assert find_one(docs, "ConfigMap", f"{RELEASE}-extra-text")["data"] == {"release": RELEASE}


def test_dns_host_aliases_and_init_containers(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["full-values"]
    for pod in (pod_spec(docs), find_one(docs, "Pod")["spec"]):
        assert pod["dnsPolicy"] == "None"
        assert pod["dnsConfig"]["nameservers"] == ["10.96.0.10"]
        assert pod["hostAliases"] == [{"ip": "10.1.2.3", "hostnames": ["backend.internal"]}]
    (init,) = pod_spec(docs)["initContainers"]
    assert init["name"] == "wait-for-backend"
    assert "initContainers" not in find_one(docs, "Pod")["spec"]  # helm test only checks


def test_no_extras_by_default(default_docs: list[Doc]) -> None:
    pod = pod_spec(default_docs)
    for key in ("dnsPolicy", "dnsConfig", "hostAliases", "initContainers"):
        assert key not in pod
    for doc in default_docs:
        if doc["kind"] != "Pod":
            assert "annotations" not in doc["metadata"], doc["kind"]


def test_monitoring_ci_values(ci_docs: dict[str, list[Doc]]) -> None:
    docs = ci_docs["monitoring-values"]
    assert env_data(docs)["METRICS_JOB"] == "markets-sync"
    rule = prometheus_rule(docs)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "CoinSyncPassTooSlow" not in alert_names(docs)
    # */5: window 2 x 300 + 60 s.
    assert "> 660\n" in alert_rule(docs, "CoinSyncNoRecentSuccess")["expr"]
    assert find_one(docs, "ConfigMap", f"{FULLNAME}-dashboard")["metadata"]["namespace"] == "monitoring"
    assert find_one(docs, "NetworkPolicy")["spec"]["egress"][3]["ports"] == [{"protocol": "TCP", "port": 9443}]
    # zero-values says monitoring off: nothing of it rendered.
    zero = ci_docs["zero-values"]
    assert find_all(zero, "PrometheusRule") == [] and "METRICS_JOB" not in env_data(zero)


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------


def test_stale_after_seconds_as_set_text(helm: Helm) -> None:
    """--set turns 0.5 into "0.5": accepted, as for the other seconds, and rendered as given."""
    docs = helm.render(set_values=["config.STALE_AFTER_SECONDS=0.5"])
    assert env_data(docs)["STALE_AFTER_SECONDS"] == "0.5"


def test_notes_tell_where_metrics_go(helm: Helm) -> None:
    text = notes(
        install_dry_run(
            helm, *(arg for v in MONITORING_ON for arg in ("--set", v)), "--set", "metrics.prometheusRule.force=true"
        )
    )
    assert f"empuja sus métricas a {PUSHGATEWAY_URL}" in text
    assert "honor_labels: true" in text
    assert f"kubectl get prometheusrule {FULLNAME} --namespace {NAMESPACE}" in text
    assert f"ConfigMap {FULLNAME}-dashboard" in text
    assert f"time() - coin_sync_symbol_last_record_timestamp_seconds{{{SELECTOR}}}" in text
    assert "Monitoreo" not in notes(install_dry_run(helm))
