"""Throughput and footprint of a pass, measured in one run on one machine.

Not a CI gate: machines are shared and noisy, so this prints ratios measured side by
side, and the targets next to them.

    .venv/bin/python benchmarks/bench_pass.py

1. 300 symbols x 50 ms: defaults (SYNC_CONCURRENCY=auto) against the sequential client
   (SYNC_CONCURRENCY=1), same fake backend. Target: speedup >= 6.
2. 1,280 symbols x 50 ms at SYNC_CONCURRENCY=32 against the ideal ceil(N/C) x latency.
   Target: efficiency >= 0.75.
3. A one-symbol pass: wall time (target <= 0.5 s), peak RSS, and whether `kubernetes`
   was imported (target: no).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fake_backend import FakeBackend  # noqa: E402

LATENCY = 0.05


@dataclass
class Measured:
    code: int
    wall: float  # seconds, process start to exit
    duration: float  # the pass's own duration, from its summary
    summary: dict[str, Any]
    cpu: float  # user + system CPU seconds of the pass process
    rss: int  # peak RSS, KiB


def measure_pass(
    url: str, workdir: Path, argv: list[str] | None = None, *, base: dict[str, str] | None = None, **env: str
) -> Measured:
    """One `coin-sync run` against `url`; `base` replaces the inherited environment."""
    summary = workdir / f"summary-{time.monotonic_ns()}.json"
    inherited = os.environ if base is None else base
    full_env = {
        **{k: v for k, v in inherited.items() if k not in ("KUBERNETES_SERVICE_HOST", "SYMBOLS_TO_SYNC")},
        "BACKEND_URL": url,
        "LOG_DIR": str(workdir / "logs"),
        "SUMMARY_FILE": str(summary),
        "K8S_INTEGRATION": "auto",
        "PYTHONPATH": str(REPO),
        **env,
    }
    began = time.perf_counter()
    proc = subprocess.Popen(
        argv or [sys.executable, "-m", "coin_sync", "run"],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    data = json.loads(summary.read_text())
    code = os.waitstatus_to_exitcode(status)
    return Measured(
        code, wall, float(data["totals"]["duration"]), data, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss)
    )


def run_pass(
    url: str, workdir: Path, argv: list[str] | None = None, **env: str
) -> tuple[float, float, dict[str, object], int]:
    """(wall seconds, pass seconds from the summary, summary, peak RSS KiB); exit 0 or stop."""
    m = measure_pass(url, workdir, argv, **env)
    if m.code != 0:
        raise SystemExit(f"la pasada terminó con código {m.code}")
    return m.wall, m.duration, m.summary, m.rss


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU; latencia simulada {LATENCY * 1000:.0f} ms\n")

        with FakeBackend(symbols=300, latency=LATENCY) as backend:
            _, seq, _, _ = run_pass(backend.url, work, SYNC_CONCURRENCY="1")
            _, par, _, _ = run_pass(backend.url, work)  # defaults: SYNC_CONCURRENCY=auto
            peak = backend.peak_in_flight
        speedup = seq / par
        print("1) 300 símbolos x 50 ms")
        print(f"   secuencial (SYNC_CONCURRENCY=1): {seq:6.2f} s")
        print(f"   por defecto (SYNC_CONCURRENCY=auto): {par:6.2f} s   (pico en curso: {peak})")
        print(f"   aceleración: {speedup:.2f}x   (objetivo >= 6)  {'OK' if speedup >= 6 else 'NO CUMPLE'}\n")

        n, c = 1280, 32
        with FakeBackend(symbols=n, latency=LATENCY) as backend:
            _, took, _, _ = run_pass(backend.url, work, SYNC_CONCURRENCY=str(c))
            peak = backend.peak_in_flight
        ideal = math.ceil(n / c) * LATENCY
        efficiency = ideal / took
        print(f"2) {n} símbolos x 50 ms, SYNC_CONCURRENCY={c}")
        print(f"   ideal ceil(N/C) x latencia: {ideal:.2f} s; medido: {took:.2f} s   (pico en curso: {peak})")
        print(f"   eficiencia: {efficiency:.2f}   (objetivo >= 0.75)  {'OK' if efficiency >= 0.75 else 'NO CUMPLE'}\n")

        probe = (
            "import sys, runpy; sys.argv = ['coin_sync', 'run'];"
            "import atexit;"
            "atexit.register(lambda: sys.stderr.write('KUBERNETES=' + str('kubernetes' in sys.modules)));"
            "runpy.run_module('coin_sync', run_name='__main__')"
        )
        with FakeBackend(symbols=1) as backend:
            walls, rss = [], 0
            for _ in range(5):
                wall, _, _, peak_rss = run_pass(backend.url, work)
                walls.append(wall)
                rss = max(rss, peak_rss)
            check = subprocess.run(
                [sys.executable, "-c", probe],
                env={
                    **os.environ,
                    "BACKEND_URL": backend.url,
                    "LOG_DIR": str(work / "logs"),
                    "PYTHONPATH": str(REPO),
                    "K8S_INTEGRATION": "auto",
                },
                capture_output=True,
                text=True,
                check=False,
            )
        imported = "KUBERNETES=True" in check.stderr
        best, median = min(walls), sorted(walls)[len(walls) // 2]
        print("3) pasada de un símbolo (5 ejecuciones)")
        print(
            f"   tiempo total: mediana {median:.3f} s, mínimo {best:.3f} s   (objetivo <= 0.5 s)  "
            f"{'OK' if median <= 0.5 else 'NO CUMPLE'}"
        )
        print(f"   pico de memoria (RSS): {rss / 1024:.1f} MiB")
        print(
            f"   importa kubernetes: {'sí' if imported else 'no'}   (objetivo: no)  {'NO CUMPLE' if imported else 'OK'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
