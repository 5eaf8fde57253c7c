"""HTTP test double of the market-data backend that coin-sync drives (backend-contract.md).

Standard library only, so the tests and the README's first command need nothing extra.
Tests script answers per symbol (ok, 400 in both shapes, 500, proxy 502/503/504, 429 with
Retry-After, hangs, bad JSON, exchange errors relayed as the real backend does), take health
down, refuse connections or let the backend die after N syncs, add a new coin that enters
/api/symbols only once its slow first backfill finished, make every sync take
`request_seconds` per exchange request it needs (1,000 missing minutes each, a new coin's
from 2025-06-01: a backfill takes long, a catch-up does not); every request is recorded
(headers, body, timings) with the peak of syncs in flight, overall and per symbol (a symbol
must never be synced twice at once). With `exchange` (an ExchangeLimit) the syncs also spend
Binance's weight and meet its limit: 429s, then 418 bans (tests/fake_exchange.py).

A live clock (`clock`, default the real UTC time; tests pass a virtual clock's wall) drives
every `last_record`: the newest complete minute minus the symbol's lag (`lags`). A frozen
symbol (`frozen`, freeze()) still syncs with success but 0 new records, its `last_record`
stuck where it was when frozen; bad_timestamp() makes a symbol's `last_record` wrong.
Every `total_records` is one candle a minute from `first_record` to `last_record`, less
the symbol's holes (`holes`, punch_hole(): minutes the real backend skipped and never
refills; a negative count lists more records than minutes, which it never should).

Standalone:  python tests/fake_backend.py --port 8888 --symbols 50 --frozen ETHUSDT --hole BTCUSDT=7
Wrapping:    python tests/fake_backend.py --symbols 50 -- .venv/bin/coin-sync
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Self
from urllib.parse import unquote

from fake_exchange import ExchangeLimit, FakeExchange

Headers = tuple[tuple[str, str], ...]
Reply = tuple[int, bytes, str, Headers]  # status, body, content type, extra headers

JSON = "application/json"
FIRST_RECORD = datetime(2025, 6, 1, tzinfo=UTC)
MISSING_SYMBOL = "El parámetro 'symbol' es requerido"
GATE_LIMIT = 30.0  # a paused sync never waits longer, whatever the test forgot
HEALTHY = {"status": "healthy", "service": "binance-backend", "database": "connected"}
UNHEALTHY = {
    "status": "unhealthy",
    "service": "binance-backend",
    "database": "disconnected",
    "error": "No se puede conectar a MongoDB",
}
# What bad_timestamp() can make a symbol's last_record; "missing" drops the key.
BAD_TIMESTAMPS: dict[str, Callable[[datetime], Any]] = {
    "missing": lambda now: None,
    "null": lambda now: None,
    "garbage": lambda now: "ayer por la tarde",
    "number": lambda now: 1_700_000_000,
    "future": lambda now: (now + timedelta(days=1)).replace(minute=0, second=0, microsecond=0).isoformat(),
    "ancient": lambda now: "1970-01-01T00:00:00+00:00",
}
REAL_SYMBOLS = (
    "BTCUSDT",
    "ETHUSDT",
    "BNBUSDT",
    "SOLUSDT",
    "XRPUSDT",
    "ADAUSDT",
    "DOGEUSDT",
    "TRXUSDT",
    "AVAXUSDT",
    "DOTUSDT",
    "LINKUSDT",
    "LTCUSDT",
    "BCHUSDT",
    "ATOMUSDT",
    "UNIUSDT",
    "XLMUSDT",
    "ETCUSDT",
    "FILUSDT",
    "NEARUSDT",
    "APTUSDT",
    "ARBUSDT",
    "OPUSDT",
    "SUIUSDT",
    "PEPEUSDT",
)


@dataclass(frozen=True)
class Answer:
    """One scripted answer. kind "ok" = the endpoint's normal answer; "raw" = as given."""

    kind: str = "ok"
    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: Headers = ()
    delay: float = 0.0
    new_records: int | None = None
    release: threading.Event | None = None  # hang_until(): wait for it (at most GATE_LIMIT s)


def _raw(code: int, payload: Any, delay: float, headers: Headers = ()) -> Answer:
    return Answer("raw", code, json.dumps(payload).encode(), JSON, headers, delay)


def ok(new_records: int | None = None, *, delay: float = 0.0) -> Answer:
    return Answer(delay=delay, new_records=new_records)


def error400(message: str | None = None, shape: str = "running", *, delay: float = 0.0) -> Answer:
    if shape == "docs":
        return _raw(400, {"success": False, "error": message or "Symbol is required"}, delay)
    if shape != "running":
        raise ValueError(f"unknown 400 shape: {shape!r}")
    return _raw(400, {"error": True, "message": message or MISSING_SYMBOL}, delay)


def error500(message: str = "Binance rate limit", *, delay: float = 0.0) -> Answer:
    return _raw(500, {"error": True, "message": message}, delay)


# The real backend relays an exchange failure as a 500 whose message is its HTTP client's
# text (backend-contract.md, "What the running backend really does").
EXCHANGE_URL = "https://api.binance.com/api/v3/klines?symbol={symbol}&interval=1m&startTime=1748736000000&limit=1000"
EXCHANGE_ERRORS = {
    "invalid_symbol": "400, message='Bad Request', url=URL('{url}')",
    "rate_limited": "429, message='Too Many Requests', url=URL('{url}')",
    "banned": "418, message=\"I'm a Teapot\", url=URL('{url}')",
    "server_error": "500, message='Internal Server Error', url=URL('{url}')",
    "bad_gateway": "502, message='Bad Gateway', url=URL('{url}')",
    "gateway_timeout": "504, message='Gateway Timeout', url=URL('{url}')",
}


def exchange_error(kind: str, symbol: str = "BTCUSDT", *, delay: float = 0.0) -> Answer:
    """The backend's 500 for an exchange failure of `kind` (a key of EXCHANGE_ERRORS)."""
    if kind not in EXCHANGE_ERRORS:
        raise ValueError(f"unknown exchange error: {kind!r}")
    message = EXCHANGE_ERRORS[kind].format(url=EXCHANGE_URL.format(symbol=symbol))
    return error500(message, delay=delay)


def status(
    code: int,
    body: str = "<html>Bad Gateway</html>",
    content_type: str = "text/html",
    headers: dict[str, str] | None = None,
    *,
    delay: float = 0.0,
) -> Answer:
    """A proxy/gateway style answer (502/503/504...), by default not JSON."""
    return Answer("raw", code, body.encode(), content_type, tuple((headers or {}).items()), delay)


def rate_limited(retry_after: str = "1", *, delay: float = 0.0) -> Answer:
    """429; retry_after may be seconds ("2") or an HTTP date."""
    return status(429, "<html>Too Many Requests</html>", headers={"Retry-After": retry_after}, delay=delay)


def hang(seconds: float, *, delay: float = 0.0) -> Answer:
    """Sleep, then answer normally: for client read timeouts."""
    return ok(delay=seconds + delay)


def hang_until(release: threading.Event) -> Answer:
    """Answer normally once the test sets `release` (at most GATE_LIMIT s): a sync that
    stays in flight exactly as long as the test needs, without a fixed sleep."""
    return Answer(release=release)


def bad_json(*, delay: float = 0.0) -> Answer:
    return Answer("raw", 200, b"<html>not json{", JSON, (), delay)


def wrong_json(payload: Any = None, *, delay: float = 0.0) -> Answer:
    return _raw(200, {"unexpected": 1} if payload is None else payload, delay)


@dataclass(frozen=True)
class Load:
    """How the backend behaves under load (all off by default).

    capacity: beyond this many syncs in flight, answer 503 at once (a saturated backend, as
    a server or its proxy says "full, come back": an explicit overload answer).
    lognormal: (median, p99) seconds added to each sync, drawn from `seed`.
    quota: (K, seconds): once more than K syncs started in the last `seconds`, answer 500
    with the exchange's relayed 429 text, as the real backend does when Binance
    rate-limits it.
    """

    capacity: int | None = None
    lognormal: tuple[float, float] | None = None
    seed: int = 0
    quota: tuple[int, float] | None = None


QUOTA_MESSAGE = "429, message='Too Many Requests', url=URL('https://api.binance.com/api/v3/klines')"
SATURATED_MESSAGE = "backend saturado: demasiadas sincronizaciones a la vez"


class _Pressure:
    """What Load needs to remember; the counts tests and benchmarks read."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self._lock = threading.Lock()
        self._random = random.Random(load.seed)
        self._starts: collections.deque[float] = collections.deque()
        self.rejected = 0  # answers refused for capacity
        self.quota_answers: list[float] = []  # monotonic times of the quota 500s

    def latency(self) -> float:
        if self.load.lognormal is None:
            return 0.0
        median, p99 = self.load.lognormal
        with self._lock:
            return self._random.lognormvariate(math.log(median), math.log(p99 / median) / 2.326)

    def refuse(self, in_flight: int) -> Reply | None:
        """A 503 past the capacity, a 500 (the relayed 429) past the quota; else None."""
        now = time.monotonic()
        with self._lock:
            if self.load.capacity is not None and in_flight > self.load.capacity:
                self.rejected += 1
                return 503, json.dumps({"error": True, "message": SATURATED_MESSAGE}).encode(), JSON, ()
            if self.load.quota is not None:
                limit, window = self.load.quota
                self._starts.append(now)
                while self._starts and self._starts[0] < now - window:
                    self._starts.popleft()
                if len(self._starts) > limit:
                    self.quota_answers.append(now)
                    return _reply500(QUOTA_MESSAGE)
        return None


def _minute_before(moment: datetime) -> datetime:
    """Open time of the newest minute complete at `moment` (UTC)."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


def _reply500(message: str) -> Reply:
    return 500, json.dumps({"error": True, "message": message}).encode(), JSON, ()


@dataclass
class Call:
    """One request as the backend saw it; finished/status stay None while in flight."""

    method: str
    path: str
    symbol: str | None
    headers: dict[str, str]
    body: bytes
    started: float
    finished: float | None = None
    status: int | None = None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (clients differ in capitalisation)."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


def generate_symbols(n: int) -> list[str]:
    """Real names first (they read well in logs), then unique synthetic ones."""
    return [REAL_SYMBOLS[i] if i < len(REAL_SYMBOLS) else f"C{i:04d}USDT" for i in range(n)]


def _crc(symbol: str) -> int:
    # crc32, not hash(): the backlog of a symbol must be the same in every process.
    return zlib.crc32(symbol.encode())


def _next(answers: list[Answer] | None) -> Answer | None:
    """Consume scripted answers in order; the last one stays forever."""
    return (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must never block stop()
    request_queue_size = 128  # bursts of new connections from a wide pool
    allow_reuse_address = True  # accept_connections() rebinds the same port at once

    def __init__(self, address: tuple[str, int], backend: FakeBackend) -> None:
        self.backend = backend
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Without this, Nagle + the client's delayed ACK add ~40 ms to small answers.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.live_lock:
            self.live.add(sock)
            self.backend.connections_opened += 1
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.live_lock:
            self.live.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish, and connections we cut on purpose, are not bugs.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def drop_connections(self, keep: socket.socket | None = None) -> None:
        with self.live_lock:
            doomed = [s for s in self.live if s is not keep]
        for sock in doomed:
            with contextlib.suppress(OSError):  # shutdown, not close: wakes a blocked recv()
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # one send() per answer: headers and body leave together
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # stderr writes per request would cost throughput and clutter pytest output

    def do_GET(self) -> None:
        backend, method = self.server.backend, self.command
        length = self.headers.get("Content-Length", "")
        body = self.rfile.read(int(length)) if length.isdigit() else b""  # bad length: no body
        path = unquote(self.path.split("?", 1)[0])
        call = backend._record(method, path, dict(self.headers.items()), body)
        close = False
        try:
            reply: Reply | None
            if path == "/api/sync" and method == "POST":
                reply = backend._sync(call)
                verdict = backend._may_answer_sync(self.connection)
                reply, close = (None, True) if verdict == "drop" else (reply, verdict == "close")
            else:
                reply = backend._route(method, path)
            if reply is None:  # the backend "died": leave without a word
                self.close_connection = True
                return
            call.status = reply[0]
            self.send_response_only(reply[0])  # no Date/Server: nobody reads them
            self.send_header("Content-Type", reply[2])
            self.send_header("Content-Length", str(len(reply[1])))
            for name, value in reply[3]:
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply[1])
        finally:
            call.finished = time.monotonic()

    do_POST = do_GET


class FakeBackend:
    """The backend double. Scripting and records are thread-safe while it runs."""

    def __init__(
        self,
        symbols: int | list[str] = 3,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        symbols_shape: str = "objects",
        clock: Callable[[], datetime] | None = None,
        frozen: Iterable[str] = (),
        lags: dict[str, float] | None = None,
        behind: dict[str, float] | None = None,
        load: Load | None = None,
        holes: dict[str, int] | None = None,
        exchange: ExchangeLimit | None = None,
        request_seconds: float = 0.0,
    ) -> None:
        self.symbols: list[str] = generate_symbols(symbols) if isinstance(symbols, int) else list(symbols)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lags: dict[str, float] = dict(lags or {})  # seconds behind the newest complete minute
        # A backlog (what a backfill stores): its last_record stays `behind` seconds back from
        # now until a sync finishes and catches it up, as the newest stored kline does;
        # unlike `lags`, which a backend keeps.
        now = self.clock()
        self._behind = {symbol: _minute_before(now - timedelta(seconds=ago)) for symbol, ago in (behind or {}).items()}
        self._frozen: dict[str, datetime] = {}  # symbol -> its stuck last_record
        self._bad: dict[str, str] = {}  # symbol -> a BAD_TIMESTAMPS kind
        self._spelled: dict[str, str] = {}  # symbol -> how /api/symbols writes its name
        if symbols_shape not in ("objects", "strings"):
            raise ValueError(f"symbols_shape must be 'objects' or 'strings', not {symbols_shape!r}")
        self.latency, self.host, self.symbols_shape, self.port = latency, host, symbols_shape, port
        self._lock = threading.Lock()  # scripts, records, simulated database
        self._life = threading.Lock()  # start/stop; never taken while holding _lock
        self._server: _Server | None = None
        self._dead = False  # set while down: in-flight syncs then vanish without an answer
        self._scripts: dict[str, list[Answer]] = {}
        self._symbols_script: list[Answer] = []
        self._health_script: list[Answer] = []
        self._healthy, self._unhealthy_until = True, 0.0
        self._die_after: int | None = None
        self._answered = self._in_flight = 0
        self._syncs: dict[str, int] = {}  # the simulated database: syncs and holes per symbol
        self._holes: dict[str, int] = dict(holes or {})
        self._in_flight_by_symbol: dict[str, int] = {}
        self._backfills: dict[str, float] = {}  # new symbols: unlisted until a first sync finished
        self._gate = threading.Event()  # pause_syncs(): syncs wait here (at most GATE_LIMIT s)
        self._gate.set()
        self.calls: list[Call] = []
        self.peak_in_flight = 0
        self.in_flight_by_symbol_peak: dict[str, int] = {}
        self.connections_opened = 0  # TCP connections accepted: proves clients keep them alive
        for symbol in frozen:
            self.freeze(symbol)
        self.pressure = _Pressure(load or Load())  # rejected / quota_answers: what load refused
        # Binance behind the backend: syncs cost weight, past its limit 429 then 418 (tests/fake_exchange.py).
        self.exchange = FakeExchange(exchange, self.clock) if exchange is not None else None
        self._synced_minute: dict[str, int] = {}  # symbol -> the clock minute of its last sync
        self.request_seconds = request_seconds  # each exchange request a sync needs takes this long

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        with self._life:
            if self._server is None:
                server = _Server((self.host, self.port), self)
                self.port = server.server_address[1]  # keep it: restarts reuse this port
                self._server, self._dead = server, False
                # A short poll keeps refuse_connections()/stop() snappy.
                threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.02},
                    name=f"fake-backend-{self.port}",
                    daemon=True,
                ).start()
        return self

    def stop(self) -> None:
        self._go_down()

    def refuse_connections(self) -> None:
        """Close the listener and every connection; new ones get 'connection refused'."""
        self._go_down()

    def accept_connections(self) -> None:
        self.start()

    def _go_down(self, keep: socket.socket | None = None) -> None:
        with self._life:
            server, self._server = self._server, None
            if server is None:
                return
            self._dead = True
            server.shutdown()
            server.server_close()
            server.drop_connections(keep)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, symbol: str, *answers: Answer) -> None:
        """Answers for POST /api/sync of symbol, in order; the last repeats. None = clear."""
        with self._lock:
            if answers:
                self._scripts[symbol] = list(answers)
            else:
                self._scripts.pop(symbol, None)

    def script_symbols(self, *answers: Answer) -> None:
        with self._lock:
            self._symbols_script = list(answers)

    def health_answers(self, *answers: Answer) -> None:
        with self._lock:
            self._health_script = list(answers)

    def set_healthy(self, healthy: bool) -> None:
        with self._lock:
            self._healthy, self._unhealthy_until, self._health_script = healthy, 0.0, []

    def unhealthy_for(self, seconds: float) -> None:
        with self._lock:
            self._healthy, self._health_script = True, []
            self._unhealthy_until = time.monotonic() + seconds

    def die_after_syncs(self, n: int) -> None:
        with self._lock:
            self._die_after, self._answered = n, 0
        if n <= 0:
            self._go_down()

    def pause_syncs(self) -> None:
        """Every sync from now on waits (at most GATE_LIMIT s) until resume_syncs()."""
        self._gate.clear()

    def resume_syncs(self) -> None:
        self._gate.set()

    def add_new_symbol(self, symbol: str, backfill: float = 0.0) -> None:
        """A coin the exchange knows but the database does not: like the real backend, it
        enters /api/symbols only once a sync of it finished (each sync until then is a
        first backfill lasting `backfill` seconds)."""
        with self._lock:
            if symbol in self.symbols:
                self.symbols.remove(symbol)
            self._backfills[symbol] = backfill

    def freeze(self, symbol: str) -> None:
        """From now on `symbol` syncs with 0 new records and its last_record stays put."""
        with self._lock:
            self._frozen[symbol] = self._live_last_record(symbol)

    def thaw(self, symbol: str) -> None:
        with self._lock:
            self._frozen.pop(symbol, None)

    def spell(self, symbol: str, listed_as: str | None) -> None:
        """List `symbol` in /api/symbols as `listed_as` (e.g. " btcusdt"); syncs keep its
        real name. None = its own name again."""
        with self._lock:
            if listed_as is None:
                self._spelled.pop(symbol, None)
            else:
                self._spelled[symbol] = listed_as

    def bad_timestamp(self, symbol: str, kind: str | None) -> None:
        """Make symbol's last_record wrong (a BAD_TIMESTAMPS kind) everywhere; None = fine again."""
        if kind is not None and kind not in BAD_TIMESTAMPS:
            raise ValueError(f"unknown bad timestamp {kind!r}: one of {', '.join(BAD_TIMESTAMPS)}")
        with self._lock:
            if kind is None:
                self._bad.pop(symbol, None)
            else:
                self._bad[symbol] = kind

    def punch_hole(self, symbol: str, minutes: int) -> None:
        """From now on `symbol` lacks `minutes` candles between its first and last (0 = none)."""
        with self._lock:
            self._holes[symbol] = minutes

    def sync_calls(self, symbol: str | None = None) -> list[Call]:
        with self._lock:
            return [
                c for c in self.calls if c.method == "POST" and c.path == "/api/sync" and symbol in (None, c.symbol)
            ]

    def reset_records(self) -> None:
        with self._lock:
            self.calls = []
            self.peak_in_flight = self._in_flight
            self.in_flight_by_symbol_peak = {s: n for s, n in self._in_flight_by_symbol.items() if n}
            self.connections_opened = 0

    def stats(self, symbol: str) -> dict[str, Any]:
        """What the simulated database holds for symbol (same fields as the backend)."""
        with self._lock:
            return self._stats(symbol)

    # Request handling, called from the handler threads.
    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Call:
        call = Call(method, path, None, headers, body, time.monotonic())
        with self._lock:
            self.calls.append(call)
        return call

    def _live_last_record(self, symbol: str) -> datetime:  # caller holds _lock
        """Open time of the newest complete minute `lags[symbol]` seconds ago; a backlog's, where it stays."""
        return self._behind.get(symbol) or _minute_before(self.clock() - timedelta(seconds=self.lags.get(symbol, 0.0)))

    def requests_needed(self, symbol: str) -> int:
        """Exchange requests a sync of `symbol` needs now, as the real backend fetches:
        1,000 klines each, from the minute after its newest stored one (a coin never
        stored: from FIRST_RECORD) to the newest complete minute."""
        with self._lock:
            return self._requests_needed(symbol)

    def _requests_needed(self, symbol: str) -> int:  # caller holds _lock
        if symbol in self._backfills or (symbol not in self.symbols and symbol not in self._syncs):
            last = FIRST_RECORD - timedelta(minutes=1)
        else:
            last = self._frozen.get(symbol) or self._live_last_record(symbol)
        missing = (_minute_before(self.clock()) - last) // timedelta(minutes=1)
        return math.ceil(max(0, missing) / 1000)

    def _stats(self, symbol: str) -> dict[str, Any]:  # caller holds _lock
        crc = _crc(symbol)
        last = self._frozen.get(symbol) or self._live_last_record(symbol)
        minutes = int((last - FIRST_RECORD).total_seconds() // 60) + 1
        stats: dict[str, Any] = {
            "symbol": symbol,
            "total_records": minutes - self._holes.get(symbol, 0),
            "first_record": FIRST_RECORD.isoformat(),
            "last_record": last.isoformat(),
            "last_price": round(0.05 + (crc % 9_000_000) / 97.0, 4),
        }
        bad = self._bad.get(symbol)
        if bad == "missing":
            del stats["last_record"]
        elif bad is not None:
            stats["last_record"] = BAD_TIMESTAMPS[bad](self.clock())
        return stats

    def _sync(self, call: Call) -> Reply:
        try:
            data = json.loads(call.body)
        except ValueError:  # includes UnicodeDecodeError
            data = None
        symbol = data.get("symbol") if isinstance(data, dict) else None
        if not isinstance(symbol, str) or not symbol.strip():
            if self.latency > 0:
                time.sleep(self.latency)
            return 400, json.dumps({"error": True, "message": MISSING_SYMBOL}).encode(), JSON, ()
        call.symbol = symbol
        with self._lock:
            answer = _next(self._scripts.get(symbol)) or Answer()
            backfill = self._backfills.get(symbol, 0.0) + self.request_seconds * self._requests_needed(symbol)
            self._in_flight += 1
            in_flight = self._in_flight
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            mine = self._in_flight_by_symbol[symbol] = self._in_flight_by_symbol.get(symbol, 0) + 1
            if mine > self.in_flight_by_symbol_peak.get(symbol, 0):
                self.in_flight_by_symbol_peak[symbol] = mine
        try:
            self._gate.wait(GATE_LIMIT)
            if answer.release is not None:
                answer.release.wait(GATE_LIMIT)
            refused = self.pressure.refuse(in_flight) or self._exchange_refusal(symbol, answer)
            if refused is not None:
                return refused
            wait = self.latency + answer.delay + backfill + self.pressure.latency()
            if wait > 0:
                time.sleep(wait)
            if answer.kind != "ok":
                return answer.status, answer.body, answer.content_type, answer.headers
            with self._lock:
                done = self._syncs.get(symbol, 0)
                self._syncs[symbol] = done + 1
                crc = _crc(symbol)
                new = 0 if symbol in self._frozen else answer.new_records
                if new is None:  # first sync: a stable backlog; later: the minute or two since
                    new = 1 + crc % 500 if done == 0 else (crc + done) % 2
                if symbol not in self._frozen:
                    self._behind.pop(symbol, None)  # the backlog is stored now
                stats = self._stats(symbol)
                if self._backfills.pop(symbol, None) is not None:
                    self.symbols.append(symbol)  # its first backfill stored data
                self._synced_minute[symbol] = int(self.clock().timestamp() // 60)
            payload = {"success": True, "symbol": symbol, "new_records": new, "statistics": stats}
            return 200, json.dumps(payload).encode(), JSON, ()
        finally:
            with self._lock:
                self._in_flight -= 1
                self._in_flight_by_symbol[symbol] -= 1

    def exchange_requests(self, symbol: str) -> int:
        """The klines requests a sync of `symbol` would make now (backend-contract.md): an
        up-to-date one 0 within the minute of its last sync, else 1; a backfill one per
        1,000 minutes behind (a new coin: since FIRST_RECORD)."""
        now = self.clock()
        with self._lock:
            start = FIRST_RECORD if symbol in self._backfills else self._behind.get(symbol)
            if start is None:
                return 0 if self._synced_minute.get(symbol) == int(now.timestamp() // 60) else 1
        minutes = (_minute_before(now) - start).total_seconds() / 60
        return max(1, math.ceil(minutes / 1000))

    def _exchange_refusal(self, symbol: str, answer: Answer) -> Reply | None:
        """The exchange's 429/418, relayed as the real backend does; None when it served.
        Only a normal answer fetches klines: a scripted failure never reached the exchange."""
        if self.exchange is None or answer.kind != "ok":
            return None
        refusal = self.exchange.request(self.exchange_requests(symbol))
        if refusal is None:
            return None
        return _reply500(EXCHANGE_ERRORS[refusal].format(url=EXCHANGE_URL.format(symbol=symbol)))

    def _may_answer_sync(self, conn: socket.socket) -> str:
        """Returns keep, close (this answer kills the backend) or drop (already dead)."""
        with self._lock:
            if self._dead:
                return "drop"
            if self._die_after is None:
                return "keep"
            self._answered += 1
            if self._answered < self._die_after:
                return "keep"
            self._die_after, self._dead = None, True
        # Go down BEFORE answering, so the client's very next request is refused.
        self._go_down(keep=conn)
        return "close"

    def _route(self, method: str, path: str) -> Reply:
        with self._lock:
            script = {"/health": self._health_script, "/api/symbols": self._symbols_script}.get(path)
            answer = _next(script) if method == "GET" else None
            # A scripted ok() on /health means healthy whatever the flags say.
            healthy = answer is not None or (self._healthy and time.monotonic() >= self._unhealthy_until)
        if answer is not None:
            time.sleep(answer.delay)
            if answer.kind != "ok":
                return answer.status, answer.body, answer.content_type, answer.headers
        code, payload = self._payload(method, path, healthy)
        return code, json.dumps(payload).encode(), JSON, ()

    def _payload(self, method: str, path: str, healthy: bool) -> tuple[int, Any]:
        symbol = path.removeprefix("/api/stats/")
        if method == "GET" and path == "/health":
            return (200, HEALTHY) if healthy else (503, UNHEALTHY)
        if method == "GET" and path == "/api/symbols":
            with self._lock:
                names = [self._spelled.get(s, s) for s in self.symbols]
                if self.symbols_shape == "strings":
                    return 200, names
                rows = [{**self._stats(s), "symbol": shown} for s, shown in zip(self.symbols, names, strict=True)]
            return 200, {"success": True, "count": len(rows), "symbols": rows}
        if method == "GET" and symbol != path:
            with self._lock:
                if symbol in self._syncs or symbol in self.symbols:
                    return 200, {"success": True, "statistics": self._stats(symbol)}
            return 404, {"error": True, "message": f"No hay datos para {symbol}"}
        return 404, {"error": True, "message": f"Ruta no encontrada: {path}"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index("--") if "--" in args else len(args)
    args, cmd, wrapping = args[:cut], args[cut + 1 :], cut < len(args)
    parser = argparse.ArgumentParser(
        description="Backend falso de coin-sync. Con '-- CMD ...' ejecuta CMD con "
        "BACKEND_URL apuntando a él y sale con su código."
    )
    parser.add_argument("--port", type=int, default=None, help="puerto (8888; con '--', uno libre cualquiera)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--symbols", type=int, default=3, help="cuántos símbolos lista (hasta 5000)")
    parser.add_argument("--latency", type=float, default=0.0, help="segundos por cada /api/sync")
    parser.add_argument("--list-shape", choices=("objects", "strings"), default="objects")
    parser.add_argument(
        "--frozen",
        action="append",
        default=[],
        metavar="SÍMBOLO[,SÍMBOLO]",
        help="símbolo congelado: sincroniza con 0 registros y su last_record no avanza",
    )
    parser.add_argument(
        "--lag", action="append", default=[], metavar="SÍMBOLO=SEGUNDOS", help="retraso del last_record de un símbolo"
    )
    parser.add_argument(
        "--hole",
        action="append",
        default=[],
        metavar="SÍMBOLO=MINUTOS",
        help="minutos sin datos (huecos) entre el primer y el último registro de un símbolo",
    )
    parser.add_argument(
        "--bad-timestamp",
        action="append",
        default=[],
        metavar="SÍMBOLO=TIPO",
        help="last_record erróneo: " + ", ".join(BAD_TIMESTAMPS),
    )
    opts = parser.parse_args(args)
    try:
        lags = {k: float(v) for k, v in (item.split("=", 1) for item in opts.lag)}
        bad = dict(item.split("=", 1) for item in opts.bad_timestamp)
        holes = {k: int(v) for k, v in (item.split("=", 1) for item in opts.hole)}
    except ValueError:
        parser.error("--lag espera SÍMBOLO=SEGUNDOS, --hole SÍMBOLO=MINUTOS y --bad-timestamp SÍMBOLO=TIPO")
    if any(kind not in BAD_TIMESTAMPS for kind in bad.values()):
        parser.error("--bad-timestamp: TIPO es uno de " + ", ".join(BAD_TIMESTAMPS))
    frozen = {name.strip() for item in opts.frozen for name in item.split(",") if name.strip()}
    if wrapping and not cmd:
        parser.error("falta el comando tras '--'")
    if opts.symbols < 0 or opts.latency < 0:
        parser.error("--symbols y --latency no pueden ser negativos")
    port = opts.port if opts.port is not None else (0 if wrapping else 8888)
    backend = FakeBackend(
        opts.symbols,
        latency=opts.latency,
        host=opts.host,
        port=port,
        symbols_shape=opts.list_shape,
        frozen=frozen,
        lags=lags,
        holes=holes,
    )
    for symbol, kind in bad.items():
        backend.bad_timestamp(symbol, kind)
    try:
        backend.start()
    except OSError as exc:
        print(f"No se pudo escuchar en {opts.host}:{port}: {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not cmd:
            print(
                f"Backend falso escuchando en {backend.url} ({len(backend.symbols)} símbolos, "
                f"latencia {opts.latency} s). Ctrl+C para detenerlo.",
                flush=True,
            )
            while not stopping.wait(1.0):
                pass
            return 0
        env = dict(os.environ, BACKEND_URL=backend.url)
        env.setdefault("LOG_DIR", "./logs")
        print(f"Backend falso en {backend.url}; ejecutando: {shlex.join(cmd)}", file=sys.stderr, flush=True)
        try:
            # Own process group: a terminal Ctrl+C reaches the child once (from us), not twice.
            child = subprocess.Popen(cmd, env=env, process_group=0)
        except OSError as exc:
            print(f"No se pudo ejecutar {cmd[0]}: {exc}", file=sys.stderr)
            return 127
        if stopping.is_set():
            child.terminate()
        while True:
            # Short slices, not one blocking waitpid: a signal the kernel hands to a
            # server thread only runs our handler once the main thread executes
            # bytecode again, and a bare wait() would not until the child exits.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = child.wait(timeout=0.1)
                break
        return code if code >= 0 else 128 - code
    finally:
        backend.stop()


if __name__ == "__main__":
    sys.exit(main())
