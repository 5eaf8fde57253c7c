"""What the loop learns from each pass, for /metrics: the SUMMARY_FILE each pass writes
(the user's, else one in a temporary folder of the loop's), read back into a LoopMetrics
once the pass is reaped, and prometheus_client's HTTP server on its registry (both
imported only when the loop has something to record)."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from coin_sync.config.settings import Settings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from coin_sync.observe.loop_metrics import LoopMetrics


class PassReports:
    """The loop's side of /metrics."""

    def __init__(self, metrics: LoopMetrics, summary_file: Path | None, log: logging.Logger) -> None:
        self.metrics, self.log = metrics, log
        self._owned: tempfile.TemporaryDirectory[str] | None = None
        if summary_file is None:
            self._owned = tempfile.TemporaryDirectory(prefix="coin-sync-loop-")
            summary_file = Path(self._owned.name) / "summary.json"
        self.summary_file = summary_file
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._fresh = False  # the file was removed before the pass: what is there now is its own

    @classmethod
    def start(cls, settings: Settings, log: logging.Logger, metrics: LoopMetrics | None) -> PassReports | None:
        """Serve /metrics if METRICS_PORT is set; None (after one ERROR line) if it cannot."""
        from coin_sync.observe.loop_metrics import LoopMetrics

        port, address = settings.metrics.port, settings.metrics.address
        try:
            reports = cls(metrics or LoopMetrics(), settings.log.summary_file, log)
        except OSError as exc:
            log.error(
                "No se puede crear la carpeta temporal de los resúmenes (%s): define SUMMARY_FILE", exc.strerror or exc
            )
            return None
        if port is None:
            return reports
        from prometheus_client import start_http_server

        try:
            reports._server, reports._thread = start_http_server(port, address, registry=reports.metrics.registry)
        except OSError as exc:  # in use, not allowed, an address this host does not have
            reports.close()
            log.error(
                "No se puede servir /metrics en %s (METRICS_ADDRESS/METRICS_PORT): %s; el bucle termina con 2",
                _host_port(address, port),
                exc.strerror or exc,
            )
            return None
        host = str(reports._server.server_address[0])  # as bound: localhost -> 127.0.0.1
        everywhere = " (todas las interfaces)" if host in ("0.0.0.0", "::") else ""
        log.info("Métricas de Prometheus en http://%s/metrics%s", _host_port(host, port), everywhere)
        return reports

    def before_pass(self) -> dict[str, str]:
        """The pass's SUMMARY_FILE, removed first: a pass killed before writing its own
        must not be recorded with the previous one's."""
        try:
            self.summary_file.unlink(missing_ok=True)
            self._fresh = True
        except OSError as exc:
            self._fresh = False
            self.log.warning(
                "No se pudo borrar SUMMARY_FILE %s antes de la pasada (%s): sus métricas no se leerán",
                self.summary_file,
                exc.strerror or exc,
            )
        return {"SUMMARY_FILE": str(self.summary_file)}

    def after_pass(self, code: int, duration: float) -> None:
        from coin_sync.observe.loop_metrics import read_summary

        self.metrics.record(read_summary(self.summary_file) if self._fresh else None, code, duration)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._owned is not None:
            self._owned.cleanup()


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
