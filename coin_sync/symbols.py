"""Pure symbol policy: parsing the backend's list, normalising names, sharding."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from coin_sync.freshness import MISSING

MAX_SYMBOL_LENGTH = 32


@dataclass(frozen=True)
class ListedSymbol:
    """One row of GET /api/symbols. last_record: the raw value; None when the row is a
    bare name (no timestamp to expect), MISSING when an object row lacks it."""

    name: str
    last_record: object = None


@dataclass(frozen=True)
class Rejected:
    raw: str
    reason: str

    @property
    def shown(self) -> str:
        # repr() escapes newlines and control characters but keeps printable
        # non-ASCII (Binance lists names such as 币安人生USDT), so a bad name can never
        # forge a log line.
        return repr(self.raw)


def parse_symbols_payload(payload: Any) -> list[ListedSymbol]:
    """The rows of GET /api/symbols, in either shape the contract allows.

    Raises ValueError when the payload is neither shape.
    """
    if isinstance(payload, list):
        items: list[Any] = payload
    elif isinstance(payload, dict) and isinstance(payload.get("symbols"), list):
        if payload.get("success") is False:
            raise ValueError("el backend respondió success=false")
        items = payload["symbols"]
    else:
        raise ValueError("la respuesta no es una lista de símbolos")
    rows: list[ListedSymbol] = []
    for item in items:
        if isinstance(item, str):
            rows.append(ListedSymbol(item))
        elif isinstance(item, dict) and isinstance(item.get("symbol"), str):
            rows.append(ListedSymbol(item["symbol"], reported(item, "last_record")))
        else:
            raise ValueError(f"elemento inesperado en la lista de símbolos: {str(item)[:60]!r}")
    return rows


def reported(row: dict[str, Any], key: str) -> object:
    """row[key], or MISSING when the row lacks it or says null."""
    value = row.get(key)
    return MISSING if value is None else value


def listed_last_records(rows: Iterable[ListedSymbol]) -> dict[str, object]:
    """Raw last_record by normalised name (the first row of a name wins)."""
    found: dict[str, object] = {}
    for row in rows:
        found.setdefault(_normal(row.name), row.last_record)
    return found


def _normal(name: str) -> str:
    return name.strip().upper()


def _rejection(name: str) -> str | None:
    if not name:
        return "vacío"
    if len(name) > MAX_SYMBOL_LENGTH:
        return f"más de {MAX_SYMBOL_LENGTH} caracteres"
    for char in name:
        if char.isspace():
            return "contiene espacios"
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return "contiene caracteres de control"
    return None


def normalise_symbols(raw: Iterable[str]) -> tuple[list[str], list[Rejected]]:
    """Strip, upper-case, drop duplicates keeping the first order; reject bad names."""
    kept: list[str] = []
    seen: set[str] = set()
    rejected: list[Rejected] = []
    for original in raw:
        name = _normal(original)
        reason = _rejection(name)
        if reason is not None:
            rejected.append(Rejected(original, reason))
        elif name not in seen:
            seen.add(name)
            kept.append(name)
    return kept, rejected


def shard_of(symbol: str, shard_count: int) -> int:
    """Stable across processes, machines and Python versions (unlike hash())."""
    digest = hashlib.sha256(symbol.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def select_shard(symbols: Iterable[str], shard_index: int, shard_count: int) -> list[str]:
    if shard_count == 1:
        return list(symbols)
    return [s for s in symbols if shard_of(s, shard_count) == shard_index]


def compose(listed: Iterable[str], include: Iterable[str], exclude: Iterable[str]) -> list[str]:
    """The backend's list plus the declared symbols, minus the excluded ones: one name
    once, in the backend's order and then the declared order. Names already normalised."""
    excluded = set(exclude)
    seen: set[str] = set()
    kept: list[str] = []
    for name in (*listed, *include):
        if name not in seen and name not in excluded:
            seen.add(name)
            kept.append(name)
    return kept
