"""Pure symbol policy: normalising names, composing the list, sharding."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from coin_sync.config.parsing import normal_symbol, symbol_problem


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


def normalise_symbols(raw: Iterable[str]) -> tuple[list[str], list[Rejected]]:
    """Strip, upper-case, drop duplicates keeping the first order; reject bad names."""
    kept: list[str] = []
    seen: set[str] = set()
    rejected: list[Rejected] = []
    for original in raw:
        name = normal_symbol(original)
        reason = symbol_problem(name)
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
