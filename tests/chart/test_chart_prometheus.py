"""End to end on a real Prometheus and a real Pushgateway (127.0.0.1, 1 s scrape and
evaluation, honor_labels: true) with the chart's rendered PrometheusRule loaded: the
stale-symbol alert fires for the frozen symbol and only for it, and every dashboard
query evaluates without error through /api/v1/query. First with one pass's metrics
pushed over HTTP, then with real coin-sync passes against the fake backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fake_backend import FakeBackend

from .helm import Doc, Helm, job_command_and_env
from .monitoring import (
    ALERTS,
    PUSHED_LABELS,
    dashboard,
    dashboard_queries,
    render_monitoring,
    rule_file,
)
from .prom import Prometheus, Pushgateway, poll, running_prometheus, running_pushgateway
from .test_chart_e2e import run_container

FROZEN = "ETHUSDT"
CURRENT = ("BTCUSDT", "BNBUSDT")
HOLED = CURRENT[1]  # current, but 7 minutes are missing between its first and last candle
#: Alerts fire as soon as their condition holds: the defaults wait minutes.
NO_WAITING = tuple(f"metrics.prometheusRule.rules.{name}.for=0s" for name in ALERTS)


@dataclass
class Stack:
    docs: list[Doc]
    pushgateway: Pushgateway
    prometheus: Prometheus


@pytest.fixture
def stack(helm: Helm, tmp_path: Path) -> Iterator[Stack]:
    """Pushgateway, then Prometheus with the chart's rules (the default release)."""
    docs = render_monitoring(helm, *NO_WAITING)
    with (
        running_pushgateway(tmp_path / "pushgateway") as pushgateway,
        running_prometheus(tmp_path / "prometheus", rule_file(docs), pushgateway) as prometheus,
    ):
        yield Stack(docs, pushgateway, prometheus)


def check_stale_alert_and_dashboard(stack: Stack) -> None:
    """What the end-to-end tests assert once passes have pushed: the frozen symbol, and
    only it, has CoinSyncSymbolStale firing; every dashboard query evaluates."""
    prometheus = stack.prometheus

    def stale_symbols() -> dict[str, str] | None:
        alerts = prometheus.alerts("CoinSyncSymbolStale")
        states = {a["labels"]["symbol"]: a["state"] for a in alerts}
        return states if states.get(FROZEN) == "firing" else None

    states = poll(f"CoinSyncSymbolStale firing para {FROZEN}", stale_symbols)
    assert set(states) == {FROZEN}, states
    (alert,) = prometheus.alerts("CoinSyncSymbolStale")
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["cronjob"] == PUSHED_LABELS["cronjob"]
    assert alert["annotations"]["summary"].startswith(f"El símbolo {FROZEN} está desactualizado (")

    # The rules loaded as the chart rendered them, evaluated without errors.
    groups = prometheus.rule_groups()
    assert [g["name"] for g in groups] == [g["name"] for g in rule_file(stack.docs)["groups"]]
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] != "err", rule

    queries = dashboard_queries(dashboard(stack.docs))
    poll(
        "coin_sync:symbols_fresh:ratio registrado",
        lambda: prometheus.query(queries["Símbolos al día (proporción)/A"]) or None,
    )
    results = {name: prometheus.query(expr) for name, expr in queries.items()}
    stale_now = {r["metric"]["symbol"] for r in results["Símbolos desactualizados ahora/A"]}
    assert stale_now == {FROZEN}
    (ratio,) = results["Símbolos al día (proporción)/A"]
    assert float(ratio["value"][1]) == pytest.approx(len(CURRENT) / (len(CURRENT) + 1))
    for name in (
        "Último código de salida/A",
        "Símbolos por estado/A",
        "Nuevos registros/A",
        "Reintentos/A",
        "Backfills/A",
        "Backfills/B",
    ):
        assert results[name], f"{name}: sin datos"


def gauges(values: dict[str, float], labelled: dict[str, dict[str, float]]) -> str:
    """The Prometheus text format of gauges: name -> value, and name -> {labels -> value}."""
    lines = []
    for name, value in values.items():
        lines += [f"# TYPE {name} gauge", f"{name} {value}"]
    for name, by_labels in labelled.items():
        lines.append(f"# TYPE {name} gauge")
        lines += [f"{name}{{{labels}}} {value}" for labels, value in by_labels.items()]
    return "\n".join(lines) + "\n"


def pass_metrics(now: float) -> str:
    """One pass's metrics with the names and shape of issue 9's Pushgateway push."""
    last_records = {sym: now - 30 for sym in CURRENT} | {FROZEN: now - 3 * 3600}
    return gauges(
        {
            "coin_sync_last_run_timestamp_seconds": now,
            "coin_sync_last_success_timestamp_seconds": now,
            "coin_sync_last_exit_code": 0,
            "coin_sync_last_pass_duration_seconds": 0.4,
            "coin_sync_last_pass_stale_symbols": 1,
            "coin_sync_last_pass_new_records": 2,
            "coin_sync_last_pass_retries": 0,
            "coin_sync_last_pass_backfills": 0,
            "coin_sync_last_pass_left_to_backend": 0,
            "coin_sync_last_pass_max_lag_seconds": 3 * 3600 - 60,
        },
        {
            "coin_sync_last_pass_symbols": {
                'status="ok"': 3,
                'status="failed"': 0,
                'status="skipped"': 0,
                'status="interrupted"': 0,
            },
            "coin_sync_symbol_last_record_timestamp_seconds": {
                f'symbol="{sym}"': ts for sym, ts in last_records.items()
            },
            "coin_sync_symbol_missing_candles": {f'symbol="{sym}"': 0 for sym in last_records},
        },
    )


def test_stale_alert_and_dashboard_with_pushed_metrics(stack: Stack) -> None:
    """Metrics pushed over HTTP the way a pass pushes them (grouping key job, namespace,
    cronjob, shard): the harness, the chart's rules and its dashboard on real servers."""
    grouping = {k: v for k, v in PUSHED_LABELS.items() if k != "job"}
    stack.pushgateway.push(PUSHED_LABELS["job"], grouping, pass_metrics(time.time()))
    assert "push_time_seconds{" in stack.pushgateway.metrics_text()
    check_stale_alert_and_dashboard(stack)
    # With a pass that just succeeded and pushed, the pass alerts stay silent.
    firing = {a["labels"]["alertname"] for a in stack.prometheus.alerts()}
    assert firing == {"CoinSyncSymbolStale", "CoinSyncFreshnessBudget"}, firing


def test_stale_alert_and_dashboard_with_real_passes(stack: Stack, helm: Helm, tmp_path: Path) -> None:
    """Real passes, run as the CronJob would run them, push to the Pushgateway.

    The program pushes to METRICS_PUSHGATEWAY_URL with the grouping key job (METRICS_JOB), namespace
    (POD_NAMESPACE), cronjob (CRONJOB_NAME) and shard, taking namespace and cronjob from
    those variables whenever they are set (here K8S_INTEGRATION=off and no
    KUBERNETES_SERVICE_HOST, as in every chart e2e test); FakeBackend(frozen={...})
    answers a frozen symbol's sync with success, 0 new records and a last_record hours
    old, and the others' with a last_record under 60 s old (also in /api/symbols).
    """
    # Frozen three hours behind: stale from the first pass on.
    backend = FakeBackend(
        symbols=[CURRENT[0], FROZEN, CURRENT[1]], frozen={FROZEN}, lags={FROZEN: 3 * 3600}, holes={HOLED: 7}
    ).start()
    try:
        docs = helm.render(
            set_values=[
                f"backend.url={backend.url}",
                "metrics.enabled=true",
                f"metrics.pushgateway.url={stack.pushgateway.url}",
            ]
        )
        argv, env = job_command_and_env(docs, files_root=tmp_path / "pod")
        assert env["METRICS_PUSHGATEWAY_URL"] == stack.pushgateway.url
        assert env["CRONJOB_NAME"] == PUSHED_LABELS["cronjob"]
        assert env["POD_NAMESPACE"] == PUSHED_LABELS["namespace"]
        for _ in range(2):  # a second pass replaces the first one's group
            proc = run_container(argv, env, tmp_path)
            assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        backend.stop()
    pushed = stack.pushgateway.metrics_text()
    frozen_series = [
        line
        for line in pushed.splitlines()
        if line.startswith("coin_sync_symbol_last_record_timestamp_seconds{") and f'symbol="{FROZEN}"' in line
    ]
    assert len(frozen_series) == 1, pushed
    assert f'cronjob="{PUSHED_LABELS["cronjob"]}"' in frozen_series[0]
    check_stale_alert_and_dashboard(stack)
    # The holed symbol, and only it, has CoinSyncSymbolGaps firing; the dashboard lists it.
    gaps = poll(
        f"CoinSyncSymbolGaps firing para {HOLED}",
        lambda: [a for a in stack.prometheus.alerts("CoinSyncSymbolGaps") if a["state"] == "firing"] or None,
    )
    assert [a["labels"]["symbol"] for a in stack.prometheus.alerts("CoinSyncSymbolGaps")] == [HOLED]
    assert gaps[0]["annotations"]["summary"] == f"El símbolo {HOLED} tiene 7 minutos sin datos"
    queries = dashboard_queries(dashboard(stack.docs))
    (row,) = stack.prometheus.query(queries["Símbolos con huecos ahora/A"])
    assert (row["metric"]["symbol"], row["value"][1]) == (HOLED, "7")
    (total,) = stack.prometheus.query(queries["Minutos sin datos/A"])
    assert total["value"][1] == "7"
