"""A real Prometheus and a real Pushgateway (Debian's packages, from .ci/get-prometheus) on
127.0.0.1 for the end-to-end monitoring tests.

Each runs as a child process on a free port with its data in the test's tmp_path (the
Pushgateway without persistence: `--persistence.file` empty) and is stopped by its pid.
Every wait is a bounded poll that fails with what it last saw; nothing asserts how
long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .monitoring import require_tool

T = TypeVar("T")
#: How long a poll waits for a condition before failing.
WAIT_SECONDS = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def http(method: str, url: str, data: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def poll(what: str, probe: Callable[[], T | None], timeout: float = WAIT_SECONDS, every: float = 0.25) -> T:
    """probe() until it returns something other than None (or raises AssertionError
    with the last thing it saw); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
            if result is not None:
                return result
        except (AssertionError, OSError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: no ocurrió en {timeout:.0f} s (último: {last!r})")
        time.sleep(every)


@dataclass
class Server:
    """A child process serving HTTP on 127.0.0.1:port."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} terminó con {self.process.returncode}:\n{self.log_text()}")
            status, _ = http("GET", f"{self.url}/-/ready", timeout=2)
            return True if status == 200 else None

        poll(f"{self.name} listo en {self.url}", ready)

    def stop(self) -> None:
        """SIGTERM to its pid, then SIGKILL if it has not exited after 10 s."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(10)


@contextmanager
def serve(name: str, argv: Sequence[str], port: int, workdir: Path) -> Iterator[Server]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@dataclass
class Client:
    """What a test talks to: a running server, by its URL."""

    server: Server

    @property
    def url(self) -> str:
        return self.server.url


# --------------------------------------------------------------------------------------
# Pushgateway
# --------------------------------------------------------------------------------------


class Pushgateway(Client):
    def group_url(self, job: str, grouping: Mapping[str, str]) -> str:
        path = "/metrics/job/" + urllib.parse.quote(job, safe="")
        for key, value in grouping.items():
            path += f"/{key}/{urllib.parse.quote(value, safe='')}"
        return self.url + path

    def push(self, job: str, grouping: Mapping[str, str], text: str) -> None:
        """POST (replace the families sent, keep the rest), as coin-sync pushes."""
        status, body = http("POST", self.group_url(job, grouping), text.encode())
        assert status in (200, 202), f"push: HTTP {status}: {body.decode(errors='replace')}"

    def metrics_text(self) -> str:
        status, body = http("GET", f"{self.url}/metrics")
        assert status == 200, status
        return body.decode()


@contextmanager
def running_pushgateway(workdir: Path) -> Iterator[Pushgateway]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        require_tool("pushgateway", "PUSHGATEWAY"),
        f"--web.listen-address=127.0.0.1:{port}",
        "--persistence.file=",
        "--log.level=warn",
    ]
    with serve("pushgateway", argv, port, workdir) as server:
        yield Pushgateway(server)


# --------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------


class Prometheus(Client):
    def api(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        status, body = http("GET", f"{self.url}/api/v1/{path}{query}")
        payload = json.loads(body)
        assert status == 200 and payload.get("status") == "success", f"{path} {params}: HTTP {status}: {payload}"
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; an error (bad PromQL, unknown function...) fails."""
        data = self.api("query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [data]
        return result

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return [a for a in found if name is None or a["labels"].get("alertname") == name]

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups


@contextmanager
def running_prometheus(workdir: Path, rules: Mapping[str, Any], pushgateway: Pushgateway) -> Iterator[Prometheus]:
    """Prometheus scraping the Pushgateway every second with honor_labels: true (as the
    chart's README says), evaluating `rules` (a rule file's content) every second."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(yaml.safe_dump(dict(rules), allow_unicode=True), encoding="utf-8")
    target = urllib.parse.urlsplit(pushgateway.url).netloc
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [
            {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [target]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    argv = [
        require_tool("prometheus", "PROMETHEUS"),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with serve("prometheus", argv, port, workdir) as server:
        yield Prometheus(server)
