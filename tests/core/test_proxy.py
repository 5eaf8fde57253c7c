"""HTTP(S)_PROXY and NO_PROXY, resolved once per pass, through a tiny real forward proxy."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from coin_sync.backend.client import make_client
from coin_sync.config.settings import BackendSettings
from fake_backend import FakeBackend

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY")


class _Forward(BaseHTTPRequestHandler):
    """Forwards an absolute-URI request (what a client sends to a proxy) and records it."""

    protocol_version = "HTTP/1.1"
    server: _Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.seen.append(f"{self.command} {target.path}")
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, target.path or "/", body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        self.send_response_only(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    server = _Proxy()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_http_proxy_carries_every_request(proxy: _Proxy, monkeypatch: pytest.MonkeyPatch, run_pass) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with FakeBackend(symbols=3) as backend:
        run = run_pass(BACKEND_URL=backend.url)
    assert run.code == 0
    assert {"GET /health", "GET /api/symbols"} <= set(proxy.seen)
    assert proxy.seen.count("POST /api/sync") == 3


def test_no_proxy_bypasses_it(proxy: _Proxy, monkeypatch: pytest.MonkeyPatch, run_pass) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeBackend(symbols=3) as backend:
        run = run_pass(BACKEND_URL=backend.url)
        assert len(backend.sync_calls()) == 3
    assert run.code == 0 and proxy.seen == []


def test_the_environment_is_read_once_when_the_client_is_made(proxy: _Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeBackend(symbols=1) as backend:
        client = make_client(BackendSettings(url=backend.url), 4)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)  # too late for this pass
        try:
            assert client.sync("BTCUSDT").new_records >= 0
        finally:
            client.session.close()
        assert len(backend.sync_calls()) == 1
    assert proxy.seen == []
    assert client.session.trust_env is False
