"""Every way a pass ends is published the same way, here: the FIN line, SUMMARY_FILE,
the Kubernetes termination message, the metrics (textfile, Pushgateway), then the
guard's Event and status record.

The local outputs come first: they cost nothing, while the network calls may time out
and the pod may be killed at any moment after SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coin_sync.config.settings import Settings
from coin_sync.files import write_atomically
from coin_sync.locks.guard import PassGuard
from coin_sync.outcome import EndReason, PassReport, signal_name

TERMINATION_MESSAGE_LIMIT = 4096  # what the kubelet keeps of /dev/termination-log
TERMINATION_FAILED_LIMIT = 20
TERMINATION_ERROR_CHARS = 200

# What the FIN line says of a pass that did not end the usual way.
END_MARKS = {
    EndReason.LOCK_HELD: " (OMITIDA: otra pasada en curso)",  # Lease or LOCK_FILE
    EndReason.LOCK_UNAVAILABLE: " (NO EJECUTADA: sin cerrojo)",
    EndReason.CRASHED: " (ERROR INTERNO)",
    EndReason.EXCHANGE_LIMITED: " (DETENIDA: cuota del exchange agotada)",
}

# The FIN line's words for PassReport.flag_counts.
FLAG_WORDS = {
    "rejected": "rechazados",
    "pending_backfill": "pendientes de backfill",
    "held": "retenidos",
    "left_to_backend": "dejados al backend",
    "deferred": "diferidos",
}


def publish(report: PassReport, settings: Settings, log: logging.Logger, guard: PassGuard) -> int:
    """Publish the report everywhere; returns its exit code."""
    if not report.finished_at:  # the ends decided before run_pass (lock, crash, config)
        report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    log_end(report, log)
    summary_file = settings.log.summary_file
    if summary_file is not None:
        try:
            write_summary_file(report, summary_file)
        except OSError as exc:
            log.error("No se pudo escribir SUMMARY_FILE %s: %s", summary_file, exc.strerror or exc)
        else:
            # DEBUG: the path is a setting, shown once; under `loop` it is a temporary file.
            log.debug("Resumen escrito en %s", summary_file)
    write_termination_message(report, settings.log.termination_message_path)
    if settings.metrics.enabled:
        from coin_sync.observe.metrics import publish_metrics  # prometheus_client only when asked for

        publish_metrics(report.to_dict(), settings.metrics, log)
    guard.finish(report)
    return int(report.exit_code)


def log_end(report: PassReport, log: logging.Logger) -> None:
    t = report.totals()
    mark = END_MARKS.get(report.reason, "")
    if report.reason is EndReason.INTERRUPTED and report.signum is not None:
        mark = f" (INTERRUMPIDA por {signal_name(report.signum)})"
    # New fields go at the end, so every existing field keeps its place for grep; the
    # flags only when some symbol has one.
    flags = "".join(f", {FLAG_WORDS[name]}: {n}" for name, n in report.flag_counts.items() if n)
    log.info("=" * 60)
    log.log(
        report.exit_code.log_level,
        "FIN DE SINCRONIZACIÓN #%d%s - correctos: %d, fallidos: %d, omitidos: %d, interrumpidos: %d, "
        "nuevos registros: %d, duración: %.2f s, código de salida: %d (%s), %s, "
        "concurrencia: en vuelo máx %d, límite final %d%s, "
        "%s",
        report.pass_number,
        mark,
        t["ok"],
        t["failed"],
        t["skipped"],
        t["interrupted"],
        t["new_records"],
        report.duration,
        int(report.exit_code),
        report.reason.word,
        freshness_text(t),
        report.concurrency_max,
        report.concurrency_final,
        flags,
        gaps_text(t),
    )
    log.info("=" * 60)


def freshness_text(totals: Mapping[str, Any]) -> str:
    """The FIN line's tail: `desactualizados: N, retraso máximo: S s`, and what is unknown."""
    max_lag = totals["max_lag_seconds"]
    text = f"desactualizados: {totals['stale']}, retraso máximo: "
    text += "desconocido" if max_lag is None else f"{max_lag:.0f} s"
    unknown = totals["freshness_unknown"]
    if unknown and max_lag is not None:
        text += f" (frescura desconocida de {unknown} símbolo{'s' if unknown != 1 else ''})"
    return text


def gaps_text(totals: Mapping[str, Any]) -> str:
    """The FIN line's last field: `con huecos: N símbolos (M minutos)`."""
    symbols, minutes = totals["symbols_with_gaps"], totals["missing_minutes"]
    return f"con huecos: {symbols} símbolo{_s(symbols)} ({minutes} minuto{_s(minutes)})"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def write_summary_file(report: PassReport, path: Path) -> None:
    """Write atomically, so a reader never sees half a summary."""
    write_atomically(path, json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")


def termination_message(report: PassReport, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """Compact JSON that fits the kubelet's limit; drops failed-symbol detail first."""
    body: dict[str, Any] = {
        "exit_code": int(report.exit_code),
        "reason": report.reason.word,
        "pass": report.pass_number,
        "finished_at": report.finished_at,
        **report.totals(),
        "failed_symbols": report.failed_symbols(TERMINATION_FAILED_LIMIT, TERMINATION_ERROR_CHARS),
    }
    while True:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode("utf-8")) <= limit or not body["failed_symbols"]:
            return text
        body["failed_symbols"] = body["failed_symbols"][:-1]


def write_termination_message(report: PassReport, path: Path) -> bool:
    """Only inside a pod does that file exist and accept writes; elsewhere do nothing."""
    if not path.exists() or not os.access(path, os.W_OK):
        return False
    try:
        path.write_text(termination_message(report), encoding="utf-8")
    except OSError:
        return False
    return True
