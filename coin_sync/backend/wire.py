"""The backend's answers as values: the rows of GET /api/symbols and what POST /api/sync said (pure parsing, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final


class _Missing:
    """A source that should have carried `last_record` and did not (distinct from None,
    a source that never carries it: a bare list of names, no sync answer)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class ListedSymbol:
    """One row of GET /api/symbols. last_record, first_record, total_records: the raw
    values; None when the row is a bare name (nothing to expect), MISSING when an object
    row lacks one."""

    name: str
    last_record: object = None
    first_record: object = None
    total_records: object = None


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
            rows.append(
                ListedSymbol(
                    item["symbol"],
                    reported(item, "last_record"),
                    reported(item, "first_record"),
                    reported(item, "total_records"),
                )
            )
        else:
            raise ValueError(f"elemento inesperado en la lista de símbolos: {str(item)[:60]!r}")
    return rows


def reported(row: dict[str, Any], key: str) -> object:
    """row[key], or MISSING when the row lacks it or says null."""
    value = row.get(key)
    return MISSING if value is None else value


@dataclass(frozen=True)
class SyncAnswer:
    """What POST /api/sync said. last_record: statistics.last_record as sent (raw);
    None when the answer has no statistics, MISSING when they lack it."""

    new_records: int
    last_record: object = None
