"""The PrometheusRule's rules under promtool: `check rules`, and `test rules` with a unit
test per default alert that it fires when it should and stays silent when it should not.

Series are written the way Prometheus stores them after scraping the Pushgateway with
honor_labels: true (the pushed grouping labels job, namespace, cronjob and shard), and
kube-state-metrics' CronJob series. promtool starts every test at time 0, so
timestamps-as-values are seconds from the start of the test.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .helm import NAMESPACE, Doc, Helm
from .monitoring import (
    ALERTS,
    FULLNAME,
    PUSHED_LABELS,
    alert_names,
    dashboard,
    dashboard_queries,
    promtool,
    render_monitoring,
    rule_file,
    write_yaml,
)

KSM = {"job": "kube-state-metrics", "namespace": NAMESPACE, "cronjob": FULLNAME}
# Alert labels: the series' labels the expression keeps, plus severity.
PASS_ALERT = {"job": "coin-sync", "namespace": NAMESPACE, "cronjob": FULLNAME, "shard": "0"}
CRONJOB_ALERT = {"namespace": NAMESPACE, "cronjob": FULLNAME}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    matchers = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


def pushed(name: str, values: str, **labels: str) -> dict[str, str]:
    return series(name, {**PUSHED_LABELS, **labels}, values)


def cronjob(suspended: bool = False, created: int = 0) -> list[dict[str, str]]:
    """kube-state-metrics' series of an existing CronJob."""
    return [
        series("kube_cronjob_info", {**KSM, "schedule": "* * * * *"}, "1x30"),
        series("kube_cronjob_created", KSM, f"{created}x30"),
        series("kube_cronjob_spec_suspend", KSM, f"{int(suspended)}x30"),
    ]


@dataclass(frozen=True)
class Case:
    alert: str
    input_series: list[dict[str, str]]
    eval_time: str
    fires: list[dict[str, str]] = field(default_factory=list)  # labels of each firing alert

    def test_group(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "interval": "1m",
            "input_series": self.input_series,
            "alert_rule_test": [
                {
                    "eval_time": self.eval_time,
                    "alertname": self.alert,
                    "exp_alerts": [{"exp_labels": labels} for labels in self.fires],
                }
            ],
        }


# A pass that succeeds every minute: every pass metric current.
HEALTHY = [
    pushed("coin_sync_last_success_timestamp_seconds", "0+60x30"),
    pushed("push_time_seconds", "0+60x30"),
    pushed("coin_sync_last_exit_code", "0x30"),
    pushed("coin_sync_last_pass_duration_seconds", "2x30"),
]
STUCK_SUCCESS = pushed("coin_sync_last_success_timestamp_seconds", "0x30")  # last success at 0


def holes(name: str, values: str) -> dict[str, str]:
    return pushed("coin_sync_symbol_missing_candles", values, symbol=name)


def symbol(name: str, values: str) -> dict[str, str]:
    return pushed("coin_sync_symbol_last_record_timestamp_seconds", values, symbol=name)


# A current symbol: its newest candle opened 30 s before each scrape.
def current(name: str) -> dict[str, str]:
    return symbol(name, "-30+60x30")


# A frozen symbol: newest candle three hours before the test started.
def frozen(name: str) -> dict[str, str]:
    return symbol(name, "-10800x30")


CASES: dict[str, Case] = {
    # CoinSyncNoRecentSuccess (window 2 x 60 s + 120 s = 240 s, for 1m)
    "no-success/fires-when-success-is-old": Case(
        "CoinSyncNoRecentSuccess",
        [STUCK_SUCCESS, *cronjob()],
        "10m",
        [{**PASS_ALERT, "severity": "critical"}],
    ),
    "no-success/fires-without-kube-state-metrics": Case(
        "CoinSyncNoRecentSuccess",
        [STUCK_SUCCESS],
        "10m",
        [{**PASS_ALERT, "severity": "critical"}],
    ),
    "no-success/silent-when-passes-succeed": Case("CoinSyncNoRecentSuccess", [*HEALTHY, *cronjob()], "10m"),
    "no-success/silent-inside-the-window": Case("CoinSyncNoRecentSuccess", [STUCK_SUCCESS, *cronjob()], "4m"),
    "no-success/silent-while-suspended": Case(
        "CoinSyncNoRecentSuccess",
        [STUCK_SUCCESS, *cronjob(suspended=True)],
        "10m",
    ),
    "no-success/fires-when-never-succeeded": Case(
        "CoinSyncNoRecentSuccess",
        cronjob(),
        "10m",
        [{**CRONJOB_ALERT, "severity": "critical"}],
    ),
    "no-success/never-succeeded-silent-while-suspended": Case(
        "CoinSyncNoRecentSuccess",
        cronjob(suspended=True),
        "10m",
    ),
    "no-success/never-succeeded-silent-while-the-cronjob-is-new": Case(
        "CoinSyncNoRecentSuccess",
        cronjob(created=500),
        "10m",
    ),
    "no-success/never-succeeded-silent-without-a-cronjob": Case(
        "CoinSyncNoRecentSuccess",
        [pushed("coin_sync_last_exit_code", "1x30")],
        "10m",
    ),
    # CoinSyncConfigError (no `for`)
    "config-error/fires-at-once-on-exit-2": Case(
        "CoinSyncConfigError",
        [pushed("coin_sync_last_exit_code", "0 0 2x10")],
        "2m",
        [{**PASS_ALERT, "severity": "critical"}],
    ),
    "config-error/silent-before-exit-2": Case(
        "CoinSyncConfigError",
        [pushed("coin_sync_last_exit_code", "0 0 2x10")],
        "1m",
    ),
    "config-error/silent-on-exit-1": Case("CoinSyncConfigError", [pushed("coin_sync_last_exit_code", "1x30")], "5m"),
    # CoinSyncBackendUnavailable (for 10m)
    "backend/fires-when-exit-3-persists": Case(
        "CoinSyncBackendUnavailable",
        [pushed("coin_sync_last_exit_code", "3x30")],
        "15m",
        [{**PASS_ALERT, "severity": "warning"}],
    ),
    "backend/silent-for-a-short-outage": Case(
        "CoinSyncBackendUnavailable",
        [pushed("coin_sync_last_exit_code", "3x5 0x25")],
        "15m",
    ),
    "backend/silent-on-exit-1": Case(
        "CoinSyncBackendUnavailable",
        [pushed("coin_sync_last_exit_code", "1x30")],
        "15m",
    ),
    # CoinSyncSymbolStale (threshold 180 + 60 = 240 s of data age, for 5m)
    "stale/fires-for-the-frozen-symbol-only": Case(
        "CoinSyncSymbolStale",
        [current("BTCUSDT"), frozen("ETHUSDT"), current("BNBUSDT")],
        "10m",
        [{**PASS_ALERT, "symbol": "ETHUSDT", "severity": "warning"}],
    ),
    "stale/silent-when-every-symbol-is-current": Case(
        "CoinSyncSymbolStale",
        [current("BTCUSDT"), current("ETHUSDT")],
        "10m",
    ),
    "stale/silent-just-over-two-minutes-behind": Case(
        # A candle that opened 200 s ago: one minute behind a fully current symbol.
        "CoinSyncSymbolStale",
        [symbol("BTCUSDT", "-200+60x30")],
        "10m",
    ),
    # CoinSyncFreshnessBudget (objective 0.99, for 10m)
    "budget/fires-when-one-of-four-is-stale": Case(
        "CoinSyncFreshnessBudget",
        [current("BTCUSDT"), current("BNBUSDT"), current("SOLUSDT"), frozen("ETHUSDT")],
        "15m",
        [{"job": "coin-sync", "namespace": NAMESPACE, "cronjob": FULLNAME, "severity": "warning"}],
    ),
    "budget/fires-when-none-is-fresh": Case(
        "CoinSyncFreshnessBudget",
        [frozen("ETHUSDT"), frozen("XRPUSDT")],
        "15m",
        [{"job": "coin-sync", "namespace": NAMESPACE, "cronjob": FULLNAME, "severity": "warning"}],
    ),
    "budget/silent-when-all-are-fresh": Case(
        "CoinSyncFreshnessBudget",
        [current("BTCUSDT"), current("ETHUSDT")],
        "15m",
    ),
    # CoinSyncMetricsMissing (window 240 s, for 1m)
    "metrics-missing/fires-when-pushes-stop": Case(
        "CoinSyncMetricsMissing",
        [pushed("push_time_seconds", "0+60x3 180x30"), *cronjob()],
        "15m",
        [{**PASS_ALERT, "severity": "warning"}],
    ),
    "metrics-missing/silent-while-pushing": Case("CoinSyncMetricsMissing", [*HEALTHY, *cronjob()], "15m"),
    "metrics-missing/silent-while-suspended": Case(
        "CoinSyncMetricsMissing",
        [pushed("push_time_seconds", "0x30"), *cronjob(suspended=True)],
        "15m",
    ),
    # CoinSyncSymbolGaps (more than 0 missing minutes, for 10m)
    "gaps/fires-for-the-holed-symbol-only": Case(
        "CoinSyncSymbolGaps",
        [holes("BTCUSDT", "0x30"), holes("ETHUSDT", "7x30")],
        "15m",
        [{**PASS_ALERT, "symbol": "ETHUSDT", "severity": "warning"}],
    ),
    "gaps/silent-for-a-miscount-that-lasts-one-pass": Case(
        # A backfill inserting while the backend counted: gone at the next pass.
        "CoinSyncSymbolGaps",
        [holes("BTCUSDT", "0 0 0 300 0x26")],
        "15m",
    ),
    "gaps/silent-once-the-hole-is-mended": Case(
        "CoinSyncSymbolGaps",
        [holes("ETHUSDT", "7x10 0x20")],
        "20m",
    ),
    # CoinSyncPassTooSlow (over 80 % of the 60 s interval, for 10m)
    "slow/fires-when-passes-take-55-s": Case(
        "CoinSyncPassTooSlow",
        [pushed("coin_sync_last_pass_duration_seconds", "55x30")],
        "15m",
        [{**PASS_ALERT, "severity": "warning"}],
    ),
    "slow/silent-at-half-the-interval": Case(
        "CoinSyncPassTooSlow",
        [pushed("coin_sync_last_pass_duration_seconds", "30x30")],
        "15m",
    ),
    "slow/silent-for-one-slow-pass": Case(
        "CoinSyncPassTooSlow",
        [pushed("coin_sync_last_pass_duration_seconds", "2x5 55 2x24")],
        "15m",
    ),
}


def without_annotations(rules: dict[str, Any]) -> dict[str, Any]:
    """The rule file without annotations: these cases test when alerts fire; what the
    annotations say is tested once, exactly (test_stale_alert_names_symbol_and_age)."""
    return {
        "groups": [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in rules["groups"]
        ]
    }


@pytest.fixture(scope="module")
def monitoring_docs(helm: Helm) -> list[Doc]:
    return render_monitoring(helm)


@pytest.fixture(scope="module")
def rules_dir(monitoring_docs: list[Doc], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rules")
    rules = rule_file(monitoring_docs)
    write_yaml(out / "rules.yaml", rules)
    write_yaml(out / "rules-no-annotations.yaml", without_annotations(rules))
    return out


def promtool_test(
    rules_dir: Path, name: str, groups: list[dict[str, Any]], rule_file_name: str
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of these test groups against the rule file."""
    test_file = write_yaml(
        rules_dir / f"test-{name.replace('/', '-')}.yaml",
        {"rule_files": [rule_file_name], "evaluation_interval": "1m", "tests": groups},
    )
    return promtool("test", "rules", test_file.name, cwd=rules_dir)


def run_rule_tests(rules_dir: Path, name: str, groups: list[dict[str, Any]], rule_file_name: str) -> str:
    proc = promtool_test(rules_dir, name, groups, rule_file_name)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "SUCCESS" in output, output
    return output


def test_check_rules(rules_dir: Path) -> None:
    proc = promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    # Two recording rules and the eight alerts.
    assert "SUCCESS: 10 rules found" in output, output


def test_check_rules_rejects_a_broken_rule(rules_dir: Path) -> None:
    """promtool really parses what it is given (so the test above means something)."""
    broken = {"groups": [{"name": "x", "rules": [{"alert": "Broken", "expr": "sum(coin_sync_last_exit_code"}]}]}
    write_yaml(rules_dir / "broken.yaml", broken)
    proc = promtool("check", "rules", "broken.yaml", cwd=rules_dir)
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr


def test_every_default_alert_has_cases(monitoring_docs: list[Doc]) -> None:
    assert alert_names(monitoring_docs) == list(ALERTS)
    for alert in ALERTS:
        cases = [c for c in CASES.values() if c.alert == alert]
        assert any(c.fires for c in cases), f"{alert}: ningún caso en que avise"
        assert any(not c.fires for c in cases), f"{alert}: ningún caso en que calle"


@pytest.mark.parametrize("name", sorted(CASES))
def test_alert(rules_dir: Path, name: str) -> None:
    run_rule_tests(rules_dir, name, [CASES[name].test_group(name)], "rules-no-annotations.yaml")


def test_a_wrong_expectation_fails(rules_dir: Path) -> None:
    """A case that expects the opposite fails: promtool is not waving everything through."""
    case = CASES["stale/fires-for-the-frozen-symbol-only"]
    wrong = Case(case.alert, case.input_series, case.eval_time)  # expects silence
    proc = promtool_test(rules_dir, "wrong", [wrong.test_group("wrong")], "rules-no-annotations.yaml")
    assert proc.returncode != 0
    assert "ETHUSDT" in proc.stdout + proc.stderr


def test_stale_alert_names_symbol_and_age(rules_dir: Path) -> None:
    """The Spanish summary and description, as Alertmanager gets them, name the symbol and
    its data age: at 10m the frozen candle (opened at -3 h) is 3 h 10 min old."""
    group = CASES["stale/fires-for-the-frozen-symbol-only"].test_group("stale-annotations")
    group["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"] = {
        "summary": "El símbolo ETHUSDT está desactualizado (3h 10m 0s)",
        "description": (
            f"La última vela de ETHUSDT en {NAMESPACE}/{FULLNAME} tiene 3h 10m 0s (umbral: 240 s). "
            "Las pasadas lo sincronizan sin datos nuevos: símbolo retirado en el exchange, "
            "backend que no obtiene sus velas o símbolo fuera de SYMBOLS_TO_SYNC."
        ),
        "runbook_url": "https://github.com/coin-sync/coin-sync/blob/main/chart/README.md#coinsyncsymbolstale",
    }
    run_rule_tests(rules_dir, "stale-annotations", [group], "rules.yaml")


def test_gaps_alert_names_symbol_and_minutes(rules_dir: Path) -> None:
    group = CASES["gaps/fires-for-the-holed-symbol-only"].test_group("gaps-annotations")
    group["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"] = {
        "summary": "El símbolo ETHUSDT tiene 7 minutos sin datos",
        "description": (
            f"Entre la primera y la última vela de ETHUSDT en {NAMESPACE}/{FULLNAME} faltan 7 velas de 1 minuto "
            "(umbral: 0). El backend no rellena huecos y coin-sync no puede pedírselos: borra las velas del "
            "símbolo desde el hueco para que la próxima pasada las vuelva a pedir, o usa una herramienta de "
            "backfill del backend (README, «Huecos en los datos»)."
        ),
        "runbook_url": "https://github.com/coin-sync/coin-sync/blob/main/chart/README.md#coinsyncsymbolgaps",
    }
    run_rule_tests(rules_dir, "gaps-annotations", [group], "rules.yaml")


def test_gaps_threshold_is_a_value(helm: Helm) -> None:
    docs = render_monitoring(helm, "metrics.prometheusRule.rules.CoinSyncSymbolGaps.thresholdMinutes=60")
    (rule,) = [r for g in rule_file(docs)["groups"] for r in g["rules"] if r.get("alert") == "CoinSyncSymbolGaps"]
    assert rule["expr"].endswith("} > 60") and "(umbral: 60)" in rule["annotations"]["description"]


def test_recording_rules(rules_dir: Path) -> None:
    group = {
        "name": "recording",
        "interval": "1m",
        "input_series": [current("BTCUSDT"), current("BNBUSDT"), current("SOLUSDT"), frozen("ETHUSDT")],
        "promql_expr_test": [
            {
                "expr": "coin_sync:symbols_fresh:ratio",
                "eval_time": "10m",
                "exp_samples": [
                    {
                        "labels": (
                            f'coin_sync:symbols_fresh:ratio{{job="coin-sync", namespace="{NAMESPACE}", '
                            f'cronjob="{FULLNAME}"}}'
                        ),
                        "value": 0.75,
                    }
                ],
            },
            {
                "expr": 'coin_sync:symbol_data_age_seconds{symbol="ETHUSDT"}',
                "eval_time": "10m",
                "exp_samples": [
                    {
                        "labels": (
                            'coin_sync:symbol_data_age_seconds{job="coin-sync", namespace="'
                            f'{NAMESPACE}", cronjob="{FULLNAME}", shard="0", symbol="ETHUSDT"}}'
                        ),
                        "value": 11400,
                    }
                ],
            },
        ],
    }
    run_rule_tests(rules_dir, "recording", [group], "rules-no-annotations.yaml")


def test_dashboard_queries_parse(monitoring_docs: list[Doc], rules_dir: Path) -> None:
    """Each dashboard query, as a recording rule: promtool parses every one of them (the
    end-to-end test evaluates them on a real Prometheus)."""
    queries = dashboard_queries(dashboard(monitoring_docs))
    assert len(queries) >= 10
    rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries.values())]
    write_yaml(rules_dir / "dashboard.yaml", {"groups": [{"name": "dashboard", "rules": rules}]})
    proc = promtool("check", "rules", "dashboard.yaml", cwd=rules_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
