"""The guard a pass holds: the lock before the pass, the report after it.

`open_guard` picks one of three guards; `acquire()` and `finish()` never raise:

- `NullGuard`: no integration (outside a cluster, or K8S_INTEGRATION=off); does nothing.
- `UnavailableGuard`: integration wanted but the client config could not be loaded;
  acquire() warns once and answers "unavailable".
- `KubeGuard`: the Lease lock, the status record and the Event, against a live API.

`KubeGuard.finish()` owns the finish order: release the Lease first (after SIGTERM the pod
may be killed any moment, and a Lease left held makes the next pass skip), then the
status record, then the Event (it matters least). A pass that found the lock held does
not write the status record (it would overwrite the live holder's) but still posts a
SyncSkipped Event naming the holder. Each failure is one Spanish WARNING; once the API is
unreachable the remaining calls are skipped (each would only add its timeout).

While the pass runs, the Lease holder keeps its ambiguous syncs in the same ConfigMap
(`state_store()`, coin_sync/k8s/state.py), sharing what the guard knows of the API.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from coin_sync.clock import Clock, RealClock
from coin_sync.config.settings import Settings
from coin_sync.k8s.api import DEFAULT_TIMEOUTS, ApiTimeouts, KubeApi, Reachability, worded
from coin_sync.k8s.lease import Lease
from coin_sync.k8s.loading import Identity, identity_from, load_api_client
from coin_sync.k8s.report import Reporter
from coin_sync.k8s.state import ConfigMapStateStore
from coin_sync.locks.cluster import IN_CLUSTER, ServiceAccountFiles, integration_active
from coin_sync.locks.guard import LockOutcome, PassGuard
from coin_sync.outcome import EndReason, PassReport
from coin_sync.sync.state import StateStore


class NullGuard:
    """No Kubernetes integration: outside a cluster, or K8S_INTEGRATION=off. (A pass never
    gets one: coin_sync/session.py asks first and takes LOCK_FILE without loading k8s.)"""

    def acquire(self) -> LockOutcome:
        return LockOutcome("inactive")

    def finish(self, report: PassReport) -> None:
        return None

    def state_store(self) -> StateStore | None:
        return None


class UnavailableGuard:
    """Integration wanted, but the API configuration could not be loaded."""

    def __init__(self, detail: str, log: logging.Logger, required: bool) -> None:
        self._detail = detail
        self._log = log
        self._required = required

    def acquire(self) -> LockOutcome:
        self._log.warning("No se puede usar la API de Kubernetes: %s; %s", self._detail, consequence(self._required))
        return LockOutcome("unavailable", self._detail)

    def finish(self, report: PassReport) -> None:
        return None

    def state_store(self) -> StateStore | None:
        return None


def consequence(required: bool) -> str:
    if required:
        return "K8S_LOCK_REQUIRED=true: la pasada no se ejecuta (salida 3)"
    return "la pasada sigue sin cerrojo"


def lease_name(settings: Settings) -> str:
    """One lock per shard: shards of an Indexed Job must run side by side."""
    name = settings.kubernetes.lease_name
    return f"{name}-{settings.sync.shard_index}" if settings.sync.shard_count > 1 else name


class KubeGuard:
    def __init__(
        self,
        api: KubeApi,
        ident: Identity,
        settings: Settings,
        log: logging.Logger,
        clock: Clock | None = None,
        *,
        required: bool,
    ) -> None:
        clock = clock or RealClock()
        kube = settings.kubernetes
        self._api = api
        self._log = log
        self._required = required
        self.lease = Lease(
            api, lease_name(settings), ident.holder, duration_seconds=kube.lease_duration_seconds, log=log, clock=clock
        )
        self._reporter = Reporter(api, ident, kube.status_configmap, settings.sync.shard_index, clock)
        self._held_by: str | None = None  # the live holder that made acquire() answer "held"
        self._reach = Reachability()  # unreachable once: skip further calls (shared with the state store)
        self._state = ConfigMapStateStore(api, kube.status_configmap, settings.sync.shard_index, log, self._reach)
        self._finished = False

    def acquire(self) -> LockOutcome:
        try:
            outcome = self.lease.acquire()
        except Exception as exc:  # ApiError, or a bug: the lock fails open all the same
            self._reach.note(exc)
            detail = worded(exc)
            self._log.warning(
                "No se pudo tomar el cerrojo (Lease %s): %s; %s",
                self.lease.where,
                detail,
                consequence(self._required),
            )
            return LockOutcome("unavailable", detail)
        if outcome.state == "held":
            self._held_by = outcome.detail
        return outcome

    def finish(self, report: PassReport) -> None:
        if self._finished:
            return
        self._finished = True
        self.lease.stop_renewing()
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.lease.held:
            steps.append(("liberar el cerrojo", self.lease.release))
        if self._held_by is None and report.reason is not EndReason.LOCK_HELD:  # a skip is not a pass
            steps.append(("escribir el estado", lambda: self._reporter.write_status(report)))
        steps.append(("publicar el Event", lambda: self._reporter.post_event(report, self._held_by)))
        for what, step in steps:
            if self._reach.down:
                # Already warned once that the API is unreachable.
                self._log.debug("Se omite %s: la API de Kubernetes no responde", what)
                continue
            try:
                step()
            except Exception as exc:  # ApiError, or a bug: best effort, never change the exit code
                self._reach.note(exc)
                self._log.warning("No se pudo %s en Kubernetes: %s", what, worded(exc))
        self._api.close()

    def state_store(self) -> StateStore | None:
        # Only the holder of the shard's Lease may write its memory: one pass at a time.
        if not self.lease.held or self._reach.down:
            return None
        return self._state


def open_guard(
    settings: Settings,
    log: logging.Logger,
    environ: Mapping[str, str] | None = None,
    *,
    required: bool,
    files: ServiceAccountFiles = IN_CLUSTER,
    timeouts: ApiTimeouts = DEFAULT_TIMEOUTS,
    clock: Clock | None = None,
) -> PassGuard:
    """The guard for this pass; never raises. environ: os.environ unless given (the
    downward-API identity and KUBECONFIG are read from it). required: K8S_LOCK_REQUIRED,
    as the session read it (coin_sync/session.py)."""
    env = os.environ if environ is None else environ
    if not integration_active(settings.kubernetes.integration, required, env, files.token):
        return NullGuard()
    try:
        api_client, kubeconfig_namespace = load_api_client(env, files)
        ident = identity_from(env, files.namespace, kubeconfig_namespace)
        api = KubeApi(api_client, ident.namespace, timeouts)
    except Exception as exc:  # config errors come in many types; fail open
        detail = f"no se pudo cargar su configuración: {' '.join(str(exc).split()) or type(exc).__name__}"
        return UnavailableGuard(detail, log, required)
    return KubeGuard(api, ident, settings, log, clock, required=required)
