"""Every way a pass ends is published the same way, here: the FIN line, SUMMARY_FILE,
the Kubernetes termination message, then the guard's Event and status record.

The local outputs come first: they cost nothing, while the API calls may time out and
the pod may be killed at any moment after SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from coin_sync.config import Settings
from coin_sync.outcome import EndReason, PassReport, signal_name

TERMINATION_MESSAGE_LIMIT = 4096  # what the kubelet keeps of /dev/termination-log
TERMINATION_FAILED_LIMIT = 20
TERMINATION_ERROR_CHARS = 200

# What the FIN line says of a pass that did not end the usual way.
END_MARKS = {
    EndReason.LOCK_HELD: " (OMITIDA: otra pasada en curso)",
    EndReason.LOCK_UNAVAILABLE: " (NO EJECUTADA: sin cerrojo)",
    EndReason.CRASHED: " (ERROR INTERNO)",
    EndReason.BAD_CONFIG: " (CONFIGURACIÓN INVÁLIDA)",
    EndReason.EXCHANGE_LIMITED: " (DETENIDA: cuota del exchange agotada)",
}


class Guard(Protocol):
    def finish(self, report: PassReport) -> None: ...


def publish(report: PassReport, settings: Settings, log: logging.Logger, guard: Guard) -> int:
    """Publish the report everywhere; returns its exit code."""
    log_end(report, log)
    summary_file = settings.log.summary_file
    if summary_file is not None:
        try:
            write_summary_file(report, summary_file)
        except OSError as exc:
            log.error("No se pudo escribir SUMMARY_FILE %s: %s", summary_file, exc.strerror or exc)
        else:
            log.info("Resumen escrito en %s", summary_file)
    write_termination_message(report, settings.log.termination_message_path)
    guard.finish(report)
    return int(report.exit_code)


def log_end(report: PassReport, log: logging.Logger) -> None:
    t = report.totals()
    mark = END_MARKS.get(report.reason, "")
    if report.reason is EndReason.INTERRUPTED and report.signum is not None:
        mark = f" (INTERRUMPIDA por {signal_name(report.signum)})"
    log.info("=" * 60)
    log.log(
        report.exit_code.log_level,
        "FIN DE SINCRONIZACIÓN #%d%s - correctos: %d, fallidos: %d, omitidos: %d, interrumpidos: %d, "
        "nuevos registros: %d, duración: %.2f s, código de salida: %d (%s), concurrencia: máx %d, final %d",
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
        report.concurrency_max,
        report.concurrency_final,
    )
    log.info("=" * 60)


def write_summary_file(report: PassReport, path: Path) -> None:
    """Write atomically, so a reader never sees half a summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
