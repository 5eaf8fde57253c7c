"""What one pass leaves for the next: the syncs that ended ambiguously (read timeout, 504)
and may still be running in the backend. Behind a two-method protocol, so the store can
be a file next to the logs (here) or the Kubernetes status record (coin_sync/k8s).

Neither method raises: a store that cannot be read is a WARNING and counts as empty (the
worst case is one re-sent sync, as before this memory existed); one that cannot be
written is a WARNING too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from coin_sync.files import write_atomically

FORMAT_VERSION = 1


@dataclass(frozen=True)
class AmbiguousSync:
    symbol: str
    sent_at: datetime  # UTC: when the request that got no clear answer was sent
    last_record: str | None = None  # the backend's last_record for it then; None = not listed yet
    baseline_known: bool = True  # False: last_record could not be read then (hold by time only)


State = dict[str, AmbiguousSync]


class StateStore(Protocol):
    def load(self) -> State:
        """Everything remembered; empty when nothing is (or it cannot be read). Never raises."""

    def save(self, state: State) -> None:
        """Replace what is remembered with `state`. Never raises."""


def state_to_json(state: State) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for symbol, entry in sorted(state.items()):
        item: dict[str, Any] = {"sent_at": entry.sent_at.isoformat(timespec="seconds")}
        if entry.baseline_known:
            item["last_record"] = entry.last_record
        entries[symbol] = item
    return {"version": FORMAT_VERSION, "ambiguous": entries}


def state_from_json(data: Any) -> State:
    """Raises ValueError on anything but what state_to_json writes."""
    if not isinstance(data, dict) or not isinstance(data.get("ambiguous"), dict):
        raise ValueError("no es un objeto con 'ambiguous'")
    state: State = {}
    for symbol, item in data["ambiguous"].items():
        if not isinstance(item, dict) or not isinstance(item.get("sent_at"), str):
            raise ValueError(f"entrada inválida para {symbol!r}")
        sent_at = datetime.fromisoformat(item["sent_at"])  # ValueError when not a date
        if sent_at.tzinfo is None:
            raise ValueError(f"fecha sin zona horaria para {symbol!r}")
        last = item.get("last_record")
        if last is not None and not isinstance(last, str):
            raise ValueError(f"last_record inválido para {symbol!r}")
        state[symbol] = AmbiguousSync(symbol, sent_at, last, baseline_known="last_record" in item)
    return state


class FileStateStore:
    """STATE_FILE, a small JSON file (default LOG_DIR/.coin-sync-state.json)."""

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self._log = log

    def load(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "no es texto UTF-8"
        else:
            try:
                return state_from_json(json.loads(text))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                why = f"contenido inválido ({exc})"
        self._log.warning("STATE_FILE %s no se puede leer: %s; se trata como vacío", self.path, why)
        return {}

    def save(self, state: State) -> None:
        if not state and not self.path.exists():
            return
        text = json.dumps(state_to_json(state), ensure_ascii=False, indent=2) + "\n"
        try:
            write_atomically(self.path, text)
        except OSError as exc:
            self._log.warning("No se pudo escribir STATE_FILE %s: %s", self.path, exc.strerror or exc)


class MemoryStateStore:
    """Kept in the process: tests, and passes that have nowhere to keep it."""

    def __init__(self, state: State | None = None) -> None:
        self.state: State = dict(state or {})

    def load(self) -> State:
        return dict(self.state)

    def save(self, state: State) -> None:
        self.state = dict(state)
