"""HTTP client of the backend contract (../shared/backend-contract.md).

Each method makes ONE request and either returns the parsed answer or raises a
classified BackendError; retrying is the caller's policy (coin_sync.backend.retry).
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from coin_sync.backend.errors import BackendError, ErrorKind
from coin_sync.backend.exchange import Classification, classify
from coin_sync.backend.retry import parse_retry_after
from coin_sync.backend.wire import ListedSymbol, SyncAnswer, parse_symbols_payload, reported
from coin_sync.config.parsing import redact_url
from coin_sync.config.settings import BackendSettings

HEALTH_TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0
MESSAGE_LIMIT = 300


def make_session(token: str | None, pool_size: int, url: str) -> requests.Session:
    session = requests.Session()
    # requests re-reads the proxy variables (and stats ~/.netrc) on every call when
    # trust_env is on: a cost that grows with the size of the environment. Every
    # request goes to `url`, so HTTP(S)_PROXY/NO_PROXY (and the CA bundle variables)
    # are resolved here, once per pass, and the session stops looking.
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(url)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    # One connection per worker kept alive across syncs; block rather than open
    # throw-away connections if the pool is ever short.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), pool_block=True, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "coin-sync"
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def make_client(settings: BackendSettings, pool_size: int) -> BackendClient:
    return BackendClient(settings.url, make_session(settings.token, pool_size, settings.url), settings.http_timeout)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"


def backend_message(response: requests.Response) -> str | None:
    """The backend's own message from either JSON error shape, if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return None


def error_message(response: requests.Response) -> str:
    """The backend's own message from either error shape, else a text snippet."""
    own = backend_message(response)
    if own is not None:
        return f"HTTP {response.status_code}: {_one_line(own)}"
    snippet = _one_line(response.text or "")
    if snippet and not snippet.lstrip().startswith("<"):
        return f"HTTP {response.status_code}: {snippet}"
    return f"HTTP {response.status_code} {response.reason or ''}".rstrip()


class BackendClient:
    def __init__(self, base_url: str, session: requests.Session, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = (min(CONNECT_TIMEOUT, timeout), timeout)

    @property
    def shown_url(self) -> str:
        return redact_url(self.base_url)

    def _request(
        self, method: str, path: str, timeout: tuple[float, float], *, unsafe: bool = False, **kwargs: Any
    ) -> requests.Response:
        """unsafe: the request changes the backend's state, so an answer that never came
        (read timeout) leaves it possibly still running (may_still_run)."""
        try:
            return self.session.request(method, self.base_url + path, timeout=timeout, **kwargs)
        except requests.ConnectTimeout:
            # Never reached the backend: as safe to retry as a refused connection.
            raise BackendError("timeout al conectar", ErrorKind.CONNECTION) from None
        except requests.Timeout:
            message = f"timeout de lectura ({timeout[1]:g} s)"
            raise BackendError(message, ErrorKind.TIMEOUT, may_still_run=unsafe) from None
        except requests.ConnectionError as exc:
            raise BackendError(f"error de conexión: {_reason(exc)}", ErrorKind.CONNECTION) from None
        except requests.RequestException as exc:
            raise BackendError(f"error HTTP: {_reason(exc)}", ErrorKind.CONNECTION) from None

    def _json(self, response: requests.Response, what: str, *, unsafe: bool = False) -> Any:
        if response.status_code != 200:
            raise BackendError(
                error_message(response),
                ErrorKind.HTTP,
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                # A gateway's 504: the backend behind it may still be syncing.
                may_still_run=unsafe and response.status_code == 504,
                exchange=_relayed(response),
            )
        try:
            return response.json()
        except ValueError:
            raise BackendError(f"respuesta no JSON de {what}", ErrorKind.BODY, status=200) from None

    def health(self, timeout: float = HEALTH_TIMEOUT) -> tuple[bool, str]:
        """(healthy, why not). Healthy means 200 and {"status": "healthy"}."""
        try:
            response = self._request("GET", "/health", (min(timeout, CONNECT_TIMEOUT), timeout))
        except BackendError as exc:
            return False, str(exc)
        if response.status_code != 200:
            return False, error_message(response)
        try:
            body = response.json()
        except ValueError:
            return False, "respuesta no JSON de /health"
        if isinstance(body, dict) and body.get("status") == "healthy":
            return True, ""
        return False, f"/health respondió {_one_line(json.dumps(body, ensure_ascii=False))}"

    def list_symbols(self) -> list[ListedSymbol]:
        response = self._request("GET", "/api/symbols", self.timeout)
        payload = self._json(response, "/api/symbols")
        try:
            return parse_symbols_payload(payload)
        except ValueError as exc:
            raise BackendError(f"/api/symbols: {exc}", ErrorKind.BODY, status=200) from None

    def sync(self, symbol: str) -> SyncAnswer:
        """New records stored for `symbol`, and its last_record after the sync."""
        # After a read timeout or a gateway's 504 the backend may still be syncing this
        # symbol; sending it again could insert duplicate klines (contract).
        response = self._request("POST", "/api/sync", self.timeout, unsafe=True, json={"symbol": symbol})
        payload = self._json(response, "/api/sync", unsafe=True)
        if not isinstance(payload, dict):
            raise BackendError("respuesta inesperada de /api/sync", ErrorKind.BODY, status=200)
        if payload.get("success") is False:
            message = payload.get("message") or payload.get("error") or "success=false"
            raise BackendError(f"success=false: {_one_line(str(message))}", ErrorKind.REJECTED, status=200)
        new_records = payload.get("new_records")
        if isinstance(new_records, bool) or not isinstance(new_records, int) or new_records < 0:
            raise BackendError("respuesta de /api/sync sin 'new_records' válido", ErrorKind.BODY, status=200)
        statistics = payload.get("statistics")
        # A bad timestamp is the freshness policy's business, never a failed sync.
        return SyncAnswer(new_records, reported(statistics, "last_record") if isinstance(statistics, dict) else None)


def _relayed(response: requests.Response) -> Classification | None:
    """The backend relays exchange failures as a 500 carrying the exchange's words."""
    if response.status_code != 500:
        return None
    own = backend_message(response)
    return None if own is None else classify(own)


def _reason(exc: BaseException) -> str:
    # requests wraps urllib3 wraps the socket error; the innermost OS error says it
    # best ("Connection refused") without the URL repeated three times.
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        stack.extend(item for item in linked if isinstance(item, BaseException))
    return _one_line(str(exc)) or type(exc).__name__
