"""The run lock: a coordination.k8s.io/v1 Lease, taken, renewed and released.

`acquire()` reads the Lease and then writes it with the resourceVersion it read, so a
write is a compare-and-swap and two passes cannot both win:

- no Lease: create it (409: another pass created it since our read, it won: "held");
- a live holder (renewed within its own leaseDurationSeconds): "held", nothing written;
- ours, released or expired: replace it (409: someone else wrote it since our read:
  "held"; 404: deleted since our read: create it afresh).

Once acquired, a thread renews it every third of its duration, waiting on a `Stop`;
`release()` clears holderIdentity so the next pass need not wait for it to expire. API
failures are raised as `ApiError`: the guard decides what they mean for the pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from coin_sync.clock import Clock, RealClock
from coin_sync.k8s.api import ApiError, Conflict, KubeApi, NotFound, worded
from coin_sync.locks.guard import LockOutcome
from coin_sync.stop import Stop

RENEW_JOIN_SECONDS = 15.0  # > one renew call at worst (2 connects + 1 read)


def micro_time(moment: datetime) -> str:
    """MicroTime, as Lease renewTime/acquireTime: RFC 3339, microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def lease_expired(spec: Mapping[str, Any], now: datetime, default_duration: int) -> bool:
    """A holder that has not renewed within its own leaseDurationSeconds is gone."""
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    if renewed is None:
        return True
    duration = spec.get("leaseDurationSeconds")
    if not isinstance(duration, int) or duration <= 0:
        duration = default_duration
    return now >= renewed + timedelta(seconds=duration)


def _holder_of(lease: Mapping[str, Any] | None) -> str:
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def _with_spec(lease: dict[str, Any], **changes: Any) -> dict[str, Any]:
    spec = {**(lease.get("spec") or {}), **changes}
    return {**lease, "spec": {k: v for k, v in spec.items() if v is not None}}


class Lease:
    """The lock of one pass (single use: once stopped, its renewer does not start again)."""

    def __init__(
        self,
        api: KubeApi,
        name: str,
        holder: str,
        *,
        duration_seconds: int,
        log: logging.Logger,
        clock: Clock | None = None,
    ) -> None:
        self._api = api
        self.name = name
        self.holder = holder
        self._duration = duration_seconds
        self._log = log
        self._clock = clock or RealClock()
        self.where = f"{api.namespace}/{name}"  # as the log names it
        self.renew_interval = duration_seconds / 3
        self.held = False  # ours right now: acquired, not lost nor released
        # The last Lease we wrote: its resourceVersion makes the next write conditional.
        self._lease: dict[str, Any] | None = None
        self._writing = threading.Lock()  # one write at a time: renewer or release
        self._stop = Stop()
        self._renewer: threading.Thread | None = None

    # -- acquire ----------------------------------------------------------------------------

    def acquire(self) -> LockOutcome:
        """Take the lock: "acquired" (and renewing) or "held" by someone else. Raises ApiError."""
        outcome = self._take()
        if outcome.state == "acquired":
            self.held = True
            self._renewer = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
            self._renewer.start()
        return outcome

    def _take(self) -> LockOutcome:
        current = self._api.get_lease(self.name)
        now = self._clock.wall()
        if current is None:
            return self._create(now)
        spec = current.get("spec") or {}
        previous = _holder_of(current)
        if previous and previous != self.holder and not lease_expired(spec, now, self._duration):
            return LockOutcome("held", previous)
        transitions = spec.get("leaseTransitions")
        transitions = transitions if isinstance(transitions, int) else 0
        if previous != self.holder:
            transitions += 1
        try:
            self._lease = self._api.replace_lease(self.name, self._body(now, transitions, base=current))
        except Conflict:  # the resourceVersion we read is stale: someone else won
            return LockOutcome("held", self._current_holder())
        except NotFound:  # deleted between our read and our write: start afresh
            return self._create(now)
        if previous and previous != self.holder:
            self._log.info(
                "Cerrojo tomado: Lease %s caducado de %s (última renovación %s)",
                self.where,
                previous,
                spec.get("renewTime") or "?",
            )
        else:
            self._log.info("Cerrojo tomado: Lease %s (%s)", self.where, self.holder)
        return LockOutcome("acquired")

    def _create(self, now: datetime) -> LockOutcome:
        try:
            self._lease = self._api.create_lease(self._body(now, transitions=0))
        except Conflict:  # created by someone else since our read: they won
            return LockOutcome("held", self._current_holder())
        self._log.info("Cerrojo tomado: Lease %s (%s)", self.where, self.holder)
        return LockOutcome("acquired")

    def _current_holder(self) -> str:
        """Who won a race we lost; only to name them in the log."""
        try:
            return _holder_of(self._api.get_lease(self.name)) or "desconocido"
        except ApiError:
            return "desconocido"

    def _body(self, now: datetime, transitions: int, base: dict[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self._api.namespace}
        if base is not None:
            # resourceVersion turns the PUT into a compare-and-swap; labels etc. are kept.
            old = base.get("metadata") or {}
            meta |= {k: old[k] for k in ("resourceVersion", "uid", "labels", "annotations") if k in old}
        spec = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self._duration,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    # -- renew ------------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        failing = False
        while not self._clock.sleep(self._stop, self.renew_interval):
            try:
                lost_to = self._renew()
            except Exception as exc:  # ApiError, or anything: a daemon thread must not die silently
                if not failing:  # one WARNING per outage, not one per third of a lease
                    self._log.warning(
                        "No se pudo renovar el cerrojo (Lease %s): %s; se reintenta", self.where, worded(exc)
                    )
                failing = True
                continue
            if lost_to is not None:
                self._log.warning(
                    "Cerrojo perdido: el Lease %s lo tiene ahora %s; otra pasada puede estar sincronizando a la vez",
                    self.where,
                    lost_to,
                )
                return
            if failing:
                self._log.info("Renovación del cerrojo recuperada (Lease %s)", self.where)
                failing = False

    def _renew(self) -> str | None:
        """Renew once. Returns who holds it now when it is no longer ours."""
        with self._writing:
            if self._stop.is_set() or self._lease is None:
                return None
            for _ in range(2):
                body = _with_spec(self._lease, renewTime=micro_time(self._clock.wall()))
                try:
                    self._lease = self._api.replace_lease(self.name, body)
                    return None
                except (Conflict, NotFound):
                    pass
                current = self._api.get_lease(self.name)
                holder = _holder_of(current)
                if current is None or holder != self.holder:
                    self.held = False
                    return holder or "nadie (liberado o borrado)"
                self._lease = current  # still ours, only a stale resourceVersion: retry
            return None

    def stop_renewing(self) -> None:
        self._stop.request()
        if self._renewer is not None:
            self._renewer.join(RENEW_JOIN_SECONDS)

    # -- release ----------------------------------------------------------------------------

    def release(self) -> None:
        """Clear holderIdentity (the Lease object stays). Raises ApiError."""
        self.stop_renewing()
        with self._writing:
            if not self.held or self._lease is None:
                return
            body = _with_spec(self._lease, holderIdentity=None, renewTime=micro_time(self._clock.wall()))
            self._api.replace_lease(self.name, body)
            self.held = False
