"""What the passes of one shard remember (ambiguous syncs, the exchange budget's memory),
kept in the status ConfigMap (STATUS_CONFIGMAP) under ``ambiguous-<index>`` (the key's
name predates the budget): a pod is new every pass, so a file next to the logs lasts
from one pass to the next only on a persistent volume, while the ConfigMap always does.

The value is the JSON of coin_sync/sync/state.py (`state_to_json`), the same as STATE_FILE's.
`load()` is one GET of the ConfigMap at the start of the pass; `save()` one merge patch
of this shard's key at its end, only when the state changed (an empty state removes the
key; a pass that sent syncs changed it: the weight it spent). Neither raises: a failure
is one WARNING in Spanish, and an unreadable or corrupt value counts as empty (the worst
case is one re-sent sync, or one budget forgotten). Once this pass found the API
unreachable (here, or the guard before) the store makes no call: each would only add
its timeout.
"""

from __future__ import annotations

import json
import logging

from coin_sync.k8s.api import KubeApi, Reachability, worded
from coin_sync.k8s.report import write_keys
from coin_sync.sync.state import Remembered, state_from_json, state_to_json

KEY_PREFIX = "ambiguous-"


class ConfigMapStateStore:
    def __init__(
        self, api: KubeApi, configmap: str, shard_index: int, log: logging.Logger, reach: Reachability | None = None
    ) -> None:
        self._api = api
        self._configmap = configmap
        self.key = f"{KEY_PREFIX}{shard_index}"
        self._log = log
        self._reach = reach or Reachability()
        self.where = f'ConfigMap {api.namespace}/{configmap}, clave "{self.key}"'
        self._stored: Remembered | None = None  # what the ConfigMap holds, as far as we know

    def load(self) -> Remembered:
        self._stored = None
        if self._reach.down:
            self._log.debug("Se omite leer el estado (%s): la API de Kubernetes no responde", self.where)
            return Remembered()
        try:
            configmap = self._api.get_configmap(self._configmap)
        except Exception as exc:  # ApiError, or a bug: never fail the pass for its memory
            self._reach.note(exc)
            self._log.warning(
                "No se pudo leer el estado de las pasadas anteriores (%s): %s; se trata como vacío",
                self.where,
                worded(exc),
            )
            return Remembered()
        data = (configmap or {}).get("data") or {}
        text = data.get(self.key) if isinstance(data, dict) else None
        if text is None:
            self._stored = Remembered()
            return self._stored
        try:
            state = state_from_json(json.loads(text))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            self._log.warning(
                "El estado de las pasadas anteriores (%s) no es válido: %s; se trata como vacío", self.where, exc
            )
            return Remembered()
        self._stored = state
        return state

    def save(self, state: Remembered) -> None:
        if state == self._stored:
            return
        if self._reach.down:
            self._log.debug("Se omite guardar el estado (%s): la API de Kubernetes no responde", self.where)
            return
        value = json.dumps(state_to_json(state), ensure_ascii=False, indent=2) if not state.empty else None
        try:
            write_keys(self._api, self._configmap, {self.key: value})
        except Exception as exc:  # ApiError, or a bug: best effort, like the status record
            self._reach.note(exc)
            self._log.warning("No se pudo guardar el estado en Kubernetes (%s): %s", self.where, worded(exc))
            return
        self._stored = state
