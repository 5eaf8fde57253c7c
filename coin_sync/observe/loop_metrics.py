"""What `coin-sync loop` serves on /metrics, and how it reads back each pass's summary.

Imported only with METRICS_PORT: it pulls in prometheus_client.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import Metric

from coin_sync.observe.metrics import (
    DURATION_BUCKETS,
    Summary,
    finished_at,
    pass_families,
    registry_for,
    succeeded,
)


class LoopMetrics:
    """What `coin-sync loop` serves on /metrics: the latest pass's metric set (the same
    as pushed) plus coin_sync_passes_total{exit_code} and the pass-duration histogram.

    After each pass: record(summary or None, exit_code, duration); serve `registry`
    (prometheus_client.start_http_server(port, registry=metrics.registry)).
    """

    def __init__(self) -> None:
        # No *_created series: they say when this process started, which nobody asked.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry_for(self._latest)
        self._lock = threading.Lock()
        self._summary: Summary | None = None
        self._last_success: float | None = None
        self._passes = Counter(
            "coin_sync_passes", "Pasadas por código de salida", ["exit_code"], registry=self.registry
        )
        self._durations = Histogram(
            "coin_sync_pass_duration_seconds",
            "Duración de las pasadas",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def record(self, summary: Summary | None, exit_code: int, duration: float) -> None:
        """summary: the pass's SUMMARY_FILE, None when it left none (killed, bad config)."""
        self._passes.labels(exit_code=str(exit_code)).inc()
        self._durations.observe(duration)
        if summary is None:
            return
        with self._lock:
            self._summary = summary
            if succeeded(summary):
                self._last_success = finished_at(summary)

    def _latest(self) -> list[Metric]:
        with self._lock:
            summary, last_success = self._summary, self._last_success
        return [] if summary is None else pass_families(summary, last_success)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def read_summary(path: Path) -> dict[str, Any] | None:
    """A pass's SUMMARY_FILE as the loop reads it back; None when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and "totals" in data else None
