"""Pure parsers from a setting's raw text to its typed value.

Each raises ValueError with a short Spanish reason; coin_sync.config adds the setting's
name and value to make the one line the user sees.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Far above any sane value (115 days in seconds), far below what breaks timers.
MAX_NUMBER = 10_000_000
MAX_CONCURRENCY = 1024


def numeric(
    kind: type[int] | type[float],
    minimum: float,
    *,
    exclusive: bool = False,
    maximum: float = MAX_NUMBER,
) -> Callable[[str], Any]:
    """A parser for numbers of `kind` in [minimum, maximum] ((minimum, ...] if exclusive)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text.strip())
        except ValueError:
            raise ValueError("debe ser un número entero" if kind is int else "debe ser un número") from None
        if not math.isfinite(value):
            raise ValueError("debe ser un número finito")
        if exclusive and value <= minimum:
            raise ValueError(f"debe ser mayor que {minimum:g}")
        if value < minimum:
            raise ValueError("no puede ser negativo" if minimum == 0 else f"debe ser al menos {minimum:g}")
        if value > maximum:
            raise ValueError(f"es demasiado grande (máximo {maximum:g})")
        return value

    return parse


non_negative = numeric(float, 0)
positive = numeric(float, 0, exclusive=True)
non_negative_int = numeric(int, 0)
positive_int = numeric(int, 1)
concurrency = numeric(int, 1, maximum=MAX_CONCURRENCY)
port = numeric(int, 1, maximum=65535)


def concurrency_or_auto(text: str) -> int | str:
    """The word auto (adaptive) or a fixed number of syncs in flight, 1..MAX_CONCURRENCY."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value: int = concurrency(text)
    except ValueError as exc:
        raise ValueError(f"debe ser auto o un número entero de 1 a {MAX_CONCURRENCY} ({exc})") from None
    return value


# A DNS name (labels of letters, digits, '-' and '_', as container names have), IDN included.
_HOST_NAME = re.compile(r"[^\W_][\w-]*(\.[\w-]+)*\.?")


def http_url(text: str) -> str:
    url = text.strip().rstrip("/")
    if any(c.isspace() or not c.isprintable() for c in url):
        # urllib splits "http://exa mple.com" happily; the request would fail a minute later.
        raise ValueError("no puede contener espacios ni caracteres de control")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket: urllib's message is English
        raise ValueError("no es una URL válida (corchetes de IPv6 sin cerrar)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("debe ser una URL http:// o https:// con host")
    if not _valid_host(parts.hostname):
        raise ValueError(f"el host {parts.hostname!r} no es un nombre de host ni una dirección IP")
    try:
        port = parts.port  # raises ValueError on a port that is not a number or out of range
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("tiene un puerto inválido (debe ser un número de 1 a 65535)")
    return url


def _valid_host(name: str) -> bool:
    if ":" in name:  # urlsplit took the brackets off an IPv6 literal
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return False
        return True
    return _HOST_NAME.fullmatch(name) is not None


def host(raw: str) -> str:
    """A host name or IP address to listen on (0.0.0.0, ::, 127.0.0.1, localhost...)."""
    value = raw.strip()
    if not value or value.count(":") == 1 or any(c.isspace() or c in "/[]@" for c in value):
        raise ValueError("debe ser un nombre de host o una dirección IP, sin puerto ni corchetes")
    return value


@dataclass(frozen=True)
class Choice:
    """A parser of one of `options` (upper- or lower-cased first); the options stay
    readable, so the chart's schema can list them."""

    options: tuple[str, ...]
    upper: bool = False

    def __call__(self, text: str) -> str:
        value = text.strip().upper() if self.upper else text.strip().lower()
        if value not in self.options:
            raise ValueError("debe ser uno de: " + ", ".join(self.options))
        return value


def choice(*options: str, upper: bool = False) -> Choice:
    return Choice(options, upper)


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("debe ser true o false")


def text(raw: str) -> str:
    return raw.strip()


def path(raw: str) -> Path:
    return Path(raw.strip())


# A path setting's "disabled" value (LOCK_FILE=off).
OFF = Path("off")


def path_or_off(raw: str) -> Path:
    return OFF if raw.strip().lower() in ("off", "false", "no", "0") else path(raw)


def per_shard(path: Path, shard_index: int, shard_count: int) -> Path:
    """`lock.json` -> `lock-2.json` for shard 2 when there are shards; OFF stays OFF."""
    return path if shard_count == 1 or path == OFF else path.with_stem(f"{path.stem}-{shard_index}")


# The exchange's symbol rule for the API parameter is ^[A-Z0-9-_.]{1,20}$, yet it lists
# names such as 币安人生USDT; no spot symbol has '-', '_' or '.'. So: after normalising
# (strip, upper-case), 1 to 20 characters, each an ASCII capital, a digit, or a letter of
# a script without case (Chinese). `@@@`, `ÑOÑO` (a cased non-ASCII letter), spaces and
# control characters can never be a symbol.
MAX_SYMBOL_LENGTH = 20


def normal_symbol(raw: str) -> str:
    return raw.strip().upper()


def symbol_problem(name: str) -> str | None:
    """Why a normalised name cannot be an exchange symbol; None when it can."""
    if not name:
        return "vacío"
    if len(name) > MAX_SYMBOL_LENGTH:
        return f"más de {MAX_SYMBOL_LENGTH} caracteres"
    for char in name:
        if not ("A" <= char <= "Z" or "0" <= char <= "9" or unicodedata.category(char) == "Lo"):
            return f"carácter no permitido {char!r}: solo A-Z, dígitos 0-9 y letras sin mayúsculas (币安人生USDT)"
    return None


def symbol_list(raw: str) -> tuple[str, ...]:
    """The non-empty entries, raw: a trailing comma is no mistake. A single bad name is
    warned about once logging is set up (coin_sync.sync.plan); a list with no valid name
    at all is a broken setting."""
    entries = tuple(entry for entry in raw.split(",") if entry.strip())
    problems = [(entry, symbol_problem(normal_symbol(entry))) for entry in entries]
    if raw.strip() and all(problem is not None for _, problem in problems):
        if not problems:
            raise ValueError("no contiene ningún símbolo (solo comas)")
        first, problem = problems[0]
        raise ValueError(f"no contiene ningún símbolo válido ({first.strip()!r}: {problem})")
    return entries


def redact_credentials(text: str) -> str:
    """Any user:password in a URL-looking text masked, even when the URL does not parse
    (a bad port): what a config error may show."""
    return re.sub(r"//[^/@\s]*@", "//****@", text)


def redact_url(url: str) -> str:
    """The URL without any user:password, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"****@{host}", parts.path, parts.query, parts.fragment))
