"""Prometheus metrics of a pass, rendered from its summary (PassReport.to_dict()), and
the transports: Pushgateway (HTTP POST) and node_exporter's textfile. What the loop
serves on /metrics: coin_sync/observe/loop_metrics.py.

Imported only when a metrics setting is on: it pulls in prometheus_client. Every metric
is a gauge without pod or instance label (a Pushgateway never forgets a series), and
per symbol the data's age is given as a timestamp, which never goes stale once pushed.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import basic_auth_handler, default_handler, pushadd_to_gateway
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from coin_sync.config.parsing import redact_url
from coin_sync.config.settings import MetricsSettings
from coin_sync.files import write_atomically
from coin_sync.outcome import EndReason, SymbolStatus

Summary = Mapping[str, Any]

PUSH_TIMEOUT_SECONDS = 5.0
LAST_SUCCESS = "coin_sync_last_success_timestamp_seconds"
SYMBOL_LAST_RECORD = "coin_sync_symbol_last_record_timestamp_seconds"
SYMBOL_MISSING_CANDLES = "coin_sync_symbol_missing_candles"
# The loop's pass durations: a current pass takes well under a second, a backfill minutes.
DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (ValueError, OverflowError):
        return None


def succeeded(summary: Summary) -> bool:
    """What success means is the end reason's to say (coin_sync/outcome.py)."""
    reason = EndReason.named(summary["reason"])
    return reason is not None and reason.succeeded(int(summary["exit_code"]))


def finished_at(summary: Summary) -> float | None:
    return _epoch(summary.get("finished_at"))


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=math.nan if value is None else value)


def pass_families(summary: Summary, last_success: float | None) -> list[Metric]:
    """The metric set of one pass. last_success None leaves that family out (so a POST
    keeps the Pushgateway's previous value); a pass without symbol results leaves the
    per-symbol family out too (nothing new is known about any symbol)."""
    t = summary["totals"]
    families: list[Metric] = [
        _gauge(
            "coin_sync_last_run_timestamp_seconds",
            "Fin de la última pasada, acabara como acabara",
            finished_at(summary),
        ),
        _gauge("coin_sync_last_exit_code", "Código de salida de la última pasada", int(summary["exit_code"])),
        _gauge("coin_sync_last_pass_duration_seconds", "Duración de la última pasada", float(t["duration"])),
        _gauge("coin_sync_last_pass_stale_symbols", "Símbolos desactualizados tras la última pasada", t["stale"]),
        _gauge("coin_sync_last_pass_new_records", "Registros nuevos de la última pasada", t["new_records"]),
        _gauge("coin_sync_last_pass_retries", "Reintentos de la última pasada", t["retries"]),
        _gauge("coin_sync_last_pass_backfills", "Backfills de la última pasada (su carril)", t["backfills"]),
        _gauge(
            "coin_sync_last_pass_left_to_backend",
            "Backfills aún en curso en el backend al acabar la última pasada (dejados al backend)",
            t["left_to_backend"],
        ),
        _gauge(
            "coin_sync_last_pass_max_lag_seconds",
            "Mayor retraso tras la última pasada (NaN: desconocido)",
            t["max_lag_seconds"],
        ),
        _gauge(
            "coin_sync_last_pass_missing_candles",
            "Minutos sin datos (huecos que el backend no rellena) de los símbolos de la última pasada",
            t.get("missing_minutes"),
        ),
        _gauge(
            "coin_sync_last_pass_symbols_with_gaps",
            "Símbolos con huecos tras la última pasada",
            t.get("symbols_with_gaps"),
        ),
    ]
    exchange = summary.get("exchange") or {}  # the exchange budget
    families += [
        _gauge("coin_sync_last_pass_deferred_symbols", "Backfills diferidos por el presupuesto", t.get("deferred", 0)),
        _gauge("coin_sync_last_pass_exchange_weight", "Peso del exchange estimado enviado", exchange.get("weight")),
        _gauge("coin_sync_exchange_budget_weight", "Presupuesto de peso por minuto en vigor", exchange.get("budget")),
    ]
    by_status = GaugeMetricFamily(
        "coin_sync_last_pass_symbols", "Símbolos de la última pasada por estado", labels=["status"]
    )
    for status in SymbolStatus:
        by_status.add_metric([str(status)], t[str(status)])
    families.append(by_status)
    if last_success is not None:
        families.append(_gauge(LAST_SUCCESS, "Fin de la última pasada que terminó con 0", last_success))
    if summary["symbols"]:
        per_symbol = GaugeMetricFamily(
            SYMBOL_LAST_RECORD, "Apertura de la vela más reciente guardada de cada símbolo", labels=["symbol"]
        )
        for row in summary["symbols"]:
            when = _epoch(row.get("last_record"))
            if when is not None:
                per_symbol.add_metric([row["symbol"]], when)
        families.append(per_symbol)
        # Only the symbols whose count is known: an unknown one has no series, not a 0.
        doc = "Minutos sin datos (huecos) entre la primera y la última vela de cada símbolo"
        missing = GaugeMetricFamily(SYMBOL_MISSING_CANDLES, doc, labels=["symbol"])
        for row in summary["symbols"]:
            if row.get("missing_minutes") is not None:
                missing.add_metric([row["symbol"]], row["missing_minutes"])
        families.append(missing)
    return families


class _Families(Collector):
    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families()


def registry_for(families: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return registry


def render(summary: Summary, last_success: float | None) -> bytes:
    """The pass's metrics in the Prometheus text format."""
    return generate_latest(registry_for(lambda: pass_families(summary, last_success)))


# --- Pushgateway ---------------------------------------------------------------------


def grouping_key(shard: int, environ: Mapping[str, str]) -> dict[str, str]:
    """namespace and cronjob inside Kubernetes (POD_NAMESPACE, CRONJOB_NAME), and the shard."""
    key = {
        label: environ[env].strip()
        for label, env in (("namespace", "POD_NAMESPACE"), ("cronjob", "CRONJOB_NAME"))
        if environ.get(env, "").strip()
    }
    key["shard"] = str(shard)
    return key


def push(
    summary: Summary, settings: MetricsSettings, key: Mapping[str, str], timeout: float = PUSH_TIMEOUT_SECONDS
) -> None:
    """POST this pass's metrics; raises on any failure, TimeoutError after `timeout` s."""
    assert settings.pushgateway_url is not None
    username, password = settings.username, settings.password

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        if username is None:
            return default_handler(url, method, timeout, headers, data)
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    registry = registry_for(lambda: pass_families(summary, finished_at(summary) if succeeded(summary) else None))
    failure: list[BaseException] = []

    def send() -> None:
        try:
            pushadd_to_gateway(settings.pushgateway_url or "", settings.job, registry, dict(key), timeout, handler)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    # A daemon thread, joined with a limit: a gateway that accepts and never answers
    # must not hold the pass's end (the socket timeout alone bounds each read, not all).
    sender = threading.Thread(target=send, name="metrics-push", daemon=True)
    sender.start()
    sender.join(timeout)
    if sender.is_alive():
        raise TimeoutError(f"sin respuesta en {timeout:g} s")
    if failure:
        raise failure[0]


# --- textfile ------------------------------------------------------------------------


def previous_success(path: Path) -> float | None:
    """The last-success timestamp a previous textfile holds, if any can be read."""
    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            if family.name == LAST_SUCCESS and family.samples:
                return float(family.samples[0].value)
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        pass
    return None


def write_textfile(summary: Summary, path: Path) -> None:
    """Atomically (temporary file beside it, then rename): node_exporter never reads half."""
    last_success = finished_at(summary) if succeeded(summary) else previous_success(path)
    write_atomically(path, render(summary, last_success).decode("utf-8"))


def publish_metrics(
    summary: Summary, settings: MetricsSettings, log: logging.Logger, environ: Mapping[str, str] | None = None
) -> None:
    """Every transport that is on. A failure is one WARNING and changes nothing else.

    environ (default os.environ) gives the Kubernetes grouping labels: POD_NAMESPACE and
    CRONJOB_NAME are the pod's identity, not settings."""
    environ = os.environ if environ is None else environ
    if settings.textfile is not None:
        try:
            write_textfile(summary, settings.textfile)
        except OSError as exc:
            log.warning("No se pudo escribir METRICS_TEXTFILE %s: %s", settings.textfile, exc.strerror or exc)
        else:
            log.info("Métricas escritas en %s", settings.textfile)
    if settings.pushgateway_url is not None:
        shown = redact_url(settings.pushgateway_url)
        try:
            push(summary, settings, grouping_key(int(summary["shard"]["index"]), environ))
        except Exception as exc:
            log.warning("No se pudieron enviar las métricas al Pushgateway %s: %s", shown, _reason(exc))
        else:
            log.info("Métricas enviadas al Pushgateway %s", shown)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # urllib's URLError wraps the socket error
    text = str(reason if isinstance(reason, BaseException) else exc) or type(exc).__name__
    return " ".join(text.split())[:300]
