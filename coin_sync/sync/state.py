"""What one pass leaves for the next: the syncs that ended ambiguously (read timeout, 504)
and may still be running in the backend, and the exchange budget's memory (the weight
spent in the last minute, an adapted budget, the last quota halt:
coin_sync/sync/exchange_budget.py). Behind a two-method protocol, so the store can be a
file next to the logs (here) or the Kubernetes status record (coin_sync/k8s).

Format version 2 added "exchange"; version 1 (only "ambiguous") is still read.

Neither method raises: a store that cannot be read is a WARNING and counts as empty (the
worst case is one re-sent sync, as before this memory existed); one that cannot be
written is a WARNING too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from coin_sync.files import write_atomically
from coin_sync.sync.exchange_budget import ExchangeMemory, Spend

FORMAT_VERSION = 2


@dataclass(frozen=True)
class AmbiguousSync:
    symbol: str
    sent_at: datetime  # UTC: when the request that got no clear answer was sent
    last_record: str | None = None  # the backend's last_record for it then; None = not listed yet
    baseline_known: bool = True  # False: last_record could not be read then (hold by time only)


State = dict[str, AmbiguousSync]


@dataclass(frozen=True)
class Remembered:
    """Everything a pass leaves for the next ones."""

    ambiguous: State = field(default_factory=dict)
    exchange: ExchangeMemory = field(default_factory=ExchangeMemory)

    @property
    def empty(self) -> bool:
        return not self.ambiguous and self.exchange.empty


class StateStore(Protocol):
    def load(self) -> Remembered:
        """Everything remembered; empty when nothing is (or it cannot be read). Never raises."""

    def save(self, state: Remembered) -> None:
        """Replace what is remembered with `state`. Never raises."""


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def state_to_json(state: Remembered) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for symbol, entry in sorted(state.ambiguous.items()):
        item: dict[str, Any] = {"sent_at": entry.sent_at.isoformat(timespec="seconds")}
        if entry.baseline_known:
            item["last_record"] = entry.last_record
        entries[symbol] = item
    ex = state.exchange
    exchange = {
        "spent": [[_iso(s.at), s.weight] for s in ex.spent],
        "adapted": ex.adapted,
        "adapted_at": _iso(ex.adapted_at),
        "halted_at": _iso(ex.halted_at),
        "probe": ex.probe,
    }
    return {"version": FORMAT_VERSION, "ambiguous": entries, "exchange": exchange}


def _moment(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what}: no es una fecha")
    moment = datetime.fromisoformat(value)  # ValueError when not a date
    if moment.tzinfo is None:
        raise ValueError(f"{what}: fecha sin zona horaria")
    return moment


def _exchange_from_json(data: Any) -> ExchangeMemory:
    if data is None:  # version 1: nothing remembered of the exchange
        return ExchangeMemory()
    if not isinstance(data, dict) or not isinstance(data.get("spent", []), list):
        raise ValueError("'exchange' inválido")
    spent = []
    for item in data.get("spent", []):
        if not isinstance(item, list) or len(item) != 2 or type(item[1]) is not int:
            raise ValueError(f"gasto inválido en 'exchange': {item!r}")
        spent.append(Spend(_moment(item[0], "exchange.spent"), item[1]))
    adapted = data.get("adapted")
    if adapted is not None and type(adapted) is not int:
        raise ValueError("exchange.adapted no es un entero")
    when = {k: None if data.get(k) is None else _moment(data[k], f"exchange.{k}") for k in ("adapted_at", "halted_at")}
    return ExchangeMemory(tuple(spent), adapted, when["adapted_at"], when["halted_at"], data.get("probe") is True)


def state_from_json(data: Any) -> Remembered:
    """Raises ValueError on anything but what state_to_json writes (this version or 1)."""
    if not isinstance(data, dict) or not isinstance(data.get("ambiguous"), dict):
        raise ValueError("no es un objeto con 'ambiguous'")
    state: State = {}
    for symbol, item in data["ambiguous"].items():
        if not isinstance(item, dict):
            raise ValueError(f"entrada inválida para {symbol!r}")
        sent_at = _moment(item.get("sent_at"), f"sent_at de {symbol!r}")
        last = item.get("last_record")
        if last is not None and not isinstance(last, str):
            raise ValueError(f"last_record inválido para {symbol!r}")
        state[symbol] = AmbiguousSync(symbol, sent_at, last, baseline_known="last_record" in item)
    return Remembered(state, _exchange_from_json(data.get("exchange")))


class FileStateStore:
    """STATE_FILE, a small JSON file (default LOG_DIR/.coin-sync-state.json)."""

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self._log = log

    def load(self) -> Remembered:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Remembered()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "no es texto UTF-8"
        else:
            try:
                return state_from_json(json.loads(text))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                why = f"contenido inválido ({exc})"
        self._log.warning("STATE_FILE %s no se puede leer: %s; se trata como vacío", self.path, why)
        return Remembered()

    def save(self, state: Remembered) -> None:
        if state.empty and not self.path.exists():
            return
        text = json.dumps(state_to_json(state), ensure_ascii=False, indent=2) + "\n"
        try:
            write_atomically(self.path, text)
        except OSError as exc:
            self._log.warning("No se pudo escribir STATE_FILE %s: %s", self.path, exc.strerror or exc)


class MemoryStateStore:
    """Kept in the process: tests, and passes that have nowhere to keep it."""

    def __init__(self, state: Remembered | None = None) -> None:
        self.state = state or Remembered()

    def load(self) -> Remembered:
        return self.state

    def save(self, state: Remembered) -> None:
        self.state = state
