"""Pure parsers from a setting's raw text to its typed value.

Each raises ValueError with a short Spanish reason; coin_sync.config adds the setting's
name and value to make the one line the user sees.
"""

from __future__ import annotations

import math
import re
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


def http_url(text: str) -> str:
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("debe ser una URL http:// o https:// con host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError("tiene un puerto inválido") from None
    return url


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


def symbol_list(raw: str) -> tuple[str, ...]:
    # Kept raw, empty entries included: normalisation warns about bad names, and
    # warnings need logging, which is not set up yet while settings load.
    return tuple(raw.split(",")) if raw.strip() else ()


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
