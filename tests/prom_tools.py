"""The real Prometheus tools, for the metrics tests: Debian's prometheus (promtool),
prometheus-pushgateway and prometheus-node-exporter, unpacked without a service manager.

Found by the names `.ci/get-prometheus DEST` creates (promtool, pushgateway,
node_exporter), on PATH or in .venv/bin. Missing: the test fails under CI=true and is
skipped elsewhere, with the install hint. Servers listen on 127.0.0.1 free ports, keep
their data in the test's tmp_path and are stopped by pid.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from required import missing

REPO = Path(__file__).resolve().parents[1]
INSTALL_HINT = (
    "instala las herramientas de Prometheus: bash .ci/get-prometheus .venv/bin "
    "(o a mano: apt-get download prometheus prometheus-pushgateway prometheus-node-exporter, "
    "dpkg -x de cada una en .venv/tools y enlaces promtool, pushgateway y node_exporter en .venv/bin)"
)
START_TIMEOUT = 20.0


def tool(name: str) -> str:
    """Path of a tool; fails under CI, skips elsewhere, when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(REPO / ".venv" / "bin"))
    if found is None:
        missing(f"falta {name!r}: {INSTALL_HINT}")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def metrics_text(self) -> str:
        response = requests.get(f"{self.url}/metrics", timeout=5)
        response.raise_for_status()
        return response.text

    def samples(self, name: str) -> list[Sample]:
        return samples(self.metrics_text(), name)


def samples(text: str, name: str) -> list[Sample]:
    """Every sample named `name` (parsed with prometheus_client's text parser): a gauge's
    family name, or a counter's `_total`, a histogram's `_count`..."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


@contextmanager
def serve(name: str, args: list[str], tmp_path: Path) -> Iterator[Server]:
    """Start tool `name` with `args` (ADDR stands for its 127.0.0.1:port), wait until
    /metrics answers (bounded), stop it by pid."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [tool(name), *(arg.replace("ADDR", address) for arg in args)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = Server(f"http://{address}", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} terminó al arrancar ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                server.metrics_text()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} no respondió en {START_TIMEOUT:g} s: {log.read_text()[-2000:]}")
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def pushgateway(tmp_path: Path) -> Iterator[Server]:
    """A Pushgateway that keeps nothing on disk (empty --persistence.file)."""
    with serve("pushgateway", ["--web.listen-address=ADDR", "--persistence.file="], tmp_path) as server:
        yield server


def node_exporter(tmp_path: Path, textfile_dir: Path) -> Iterator[Server]:
    """node_exporter with only the textfile collector, reading `textfile_dir`."""
    args = [
        "--web.listen-address=ADDR",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile_dir}",
    ]
    with serve("node_exporter", args, tmp_path) as server:
        yield server


def promtool_check(text: str | bytes) -> str:
    """`promtool check metrics` on the text; its complaints ("" when clean)."""
    data = text.encode() if isinstance(text, str) else text
    proc = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=data, capture_output=True, timeout=30, check=False
    )
    complaints = (proc.stdout + proc.stderr).decode().strip()
    return complaints if proc.returncode != 0 or complaints else ""
