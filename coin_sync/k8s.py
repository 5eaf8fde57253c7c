"""Kubernetes-native runtime for one pass: a run lock (a coordination.k8s.io/v1 Lease),
one Event per pass and a status record (a ConfigMap with the last pass of each shard).

Only active in a cluster (K8S_INTEGRATION=auto and KUBERNETES_SERVICE_HOST set) or with
K8S_INTEGRATION=on. `kubernetes` is imported lazily, inside the active path only: it
costs ~0.7 s of imports, and a pass outside a cluster must stay as fast as before.

Everything here is best effort. The lock fails open (the pass runs without it, with one
WARNING) unless K8S_LOCK_REQUIRED=true; Events and the status record never change the
exit code: each failure is one WARNING in Spanish, never an exception.

Usage (coin_sync/cli.py)::

    guard = open_guard(settings, log)
    outcome = guard.acquire()      # "acquired" | "held" | "unavailable" | "inactive"
    ...                            # run (or skip) the pass
    guard.finish(report)           # release the Lease, status record, Event

Status record: ConfigMap STATUS_CONFIGMAP, key ``shard-<index>``, value a JSON object
(see `status_record`). A table of every shard (the README documents the same line)::

    kubectl get configmap coin-sync-status -o json | jq -r '["SHARD","FIN","SALIDA",
      "MOTIVO","OK","FALLOS","OMITIDOS","NUEVOS","DURACION","POD"], ([.data | to_entries[]
      | select(.key | startswith("shard-")) | .value | fromjson] | sort_by(.shard)[]
      | [.shard, .finished_at, .exit_code, .reason, .ok, .failed, .skipped, .new_records,
      .duration, .pod]) | @tsv' | column -t
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from coin_sync.config import Settings
from coin_sync.outcome import EndReason, PassReport

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SA_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

# (connect, read) seconds for every API call: a black-holed API server must not hang a
# pass. A call whose connection failed is retried once (the request never left, so even
# a POST is safe to repeat); a read error is never retried (it might have been applied).
REQUEST_TIMEOUT = (3.0, 5.0)
CONNECT_RETRIES = 1
CONNECT_RETRY_DELAY = 0.2

COMPONENT = "coin-sync"
EVENT_MESSAGE_LIMIT = 1024  # bytes: the API server's limit on an Event note
STATUS_FAILED_LIMIT = 20
STATUS_ERROR_LIMIT = 300  # characters of one symbol's error in the status record
RENEW_JOIN_SECONDS = 15.0  # > one renew call at worst (2 connects + 1 read)

EVENT_SUCCEEDED = "SyncSucceeded"
EVENT_PARTIAL = "SyncPartial"
EVENT_FAILED = "SyncFailed"
EVENT_BACKEND = "BackendUnavailable"
EVENT_SKIPPED = "SyncSkipped"

LockState = Literal["acquired", "held", "unavailable", "inactive"]


@dataclass(frozen=True)
class LockOutcome:
    state: LockState
    detail: str = ""  # holder identity for "held"; the error for "unavailable"


class PassGuard:
    """The inactive guard: outside a cluster, or K8S_INTEGRATION=off. Does nothing."""

    def acquire(self) -> LockOutcome:
        return LockOutcome("inactive")

    def finish(self, report: PassReport) -> None:
        return None


class _UnavailableGuard(PassGuard):
    """Integration wanted, but the API configuration could not be loaded."""

    def __init__(self, detail: str, log: logging.Logger, lock_required: bool) -> None:
        self._detail = detail
        self._log = log
        self._lock_required = lock_required

    def acquire(self) -> LockOutcome:
        self._log.warning(
            "No se puede usar la API de Kubernetes: %s; %s",
            self._detail,
            _consequence(self._lock_required),
        )
        return LockOutcome("unavailable", self._detail)


# --- identity and names ------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who this pass is, from the downward API (the chart sets the env)."""

    namespace: str
    pod: str
    job: str = ""
    job_uid: str = ""  # lets `kubectl describe job` find our Events (it filters by uid)
    pod_uid: str = ""

    @property
    def holder(self) -> str:
        # The pid tells apart two passes in one pod/host (a `kubectl exec` next to the Job).
        return f"{self.pod}_{os.getpid()}"


def resolve_identity(env: Mapping[str, str], kubeconfig_namespace: str = "") -> Identity:
    namespace = env.get("POD_NAMESPACE", "") or _read_text(SA_NAMESPACE_FILE) or kubeconfig_namespace or "default"
    return Identity(
        namespace=namespace,
        # In a pod the hostname is the pod name; elsewhere it still names the machine.
        pod=env.get("POD_NAME", "") or socket.gethostname(),
        job=env.get("JOB_NAME", ""),
        job_uid=env.get("JOB_UID", ""),
        pod_uid=env.get("POD_UID", ""),
    )


def lease_name(settings: Settings) -> str:
    """One lock per shard: shards of an Indexed Job must run side by side."""
    if settings.sync.shard_count > 1:
        return f"{settings.kubernetes.lease_name}-{settings.sync.shard_index}"
    return settings.kubernetes.lease_name


def status_key(settings: Settings) -> str:
    return f"shard-{settings.sync.shard_index}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _consequence(lock_required: bool) -> str:
    if lock_required:
        return "K8S_LOCK_REQUIRED=true: la pasada no se ejecuta (salida 3)"
    return "la pasada sigue sin cerrojo"


# --- time formats --------------------------------------------------------------------------


def micro_time(moment: datetime) -> str:
    """MicroTime, as Lease renewTime/acquireTime: RFC 3339, microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain_time(moment: datetime) -> str:
    """Time, as Event first/lastTimestamp: RFC 3339, seconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


# --- what gets posted ----------------------------------------------------------------------


def event_kind(report: PassReport) -> tuple[str, str]:
    """(reason, type) of the one Event a pass posts."""
    return report.event()


def event_message(report: PassReport) -> str:
    return _fit(report.one_line(limit=EVENT_MESSAGE_LIMIT))


def _fit(text: str) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= EVENT_MESSAGE_LIMIT:
        return text
    # Non-ASCII symbols (币安人生USDT) make bytes outgrow characters; the API counts bytes.
    return raw[: EVENT_MESSAGE_LIMIT - 3].decode("utf-8", "ignore") + "…"


def event_body(report: PassReport, ident: Identity, now: datetime) -> dict[str, Any]:
    if ident.job:
        involved = {"apiVersion": "batch/v1", "kind": "Job", "name": ident.job, "uid": ident.job_uid}
    else:
        involved = {"apiVersion": "v1", "kind": "Pod", "name": ident.pod, "uid": ident.pod_uid}
    involved = {k: v for k, v in involved.items() if v} | {"namespace": ident.namespace}
    reason, kind = event_kind(report)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        # Named like client-go's recorder (<object>.<hex nanoseconds>): unique, sortable.
        "metadata": {"name": f"{involved['name']}.{time.time_ns():x}", "namespace": ident.namespace},
        "involvedObject": involved,
        "reason": reason,
        "type": kind,
        "message": event_message(report),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": ident.pod,
        "firstTimestamp": plain_time(now),
        "lastTimestamp": plain_time(now),
        "count": 1,
    }


def status_record(report: PassReport, ident: Identity, now: datetime) -> dict[str, Any]:
    """The last pass of one shard, as stored under `shard-<index>`."""
    totals = report.totals()
    return {
        "shard": report.shard_index,
        "shard_count": report.shard_count,
        "pass_number": report.pass_number,
        "started_at": report.started_at,
        # A pass refused before it started (lock unavailable) has no times of its own.
        "finished_at": report.finished_at or now.astimezone(UTC).isoformat(timespec="seconds"),
        "exit_code": int(report.exit_code),
        "reason": report.reason.word,
        "ok": totals["ok"],
        "failed": totals["failed"],
        "skipped": totals["skipped"],
        "interrupted": totals["interrupted"],
        "new_records": totals["new_records"],
        "duration": totals["duration"],
        "pod": ident.pod,
        "job": ident.job,
        "failed_total": len(report.failures),
        "failed_symbols": report.failed_symbols(limit=STATUS_FAILED_LIMIT, error_chars=STATUS_ERROR_LIMIT),
    }


# --- the API, reduced to what a pass needs -------------------------------------------------


class ApiError(Exception):
    """One failed API call, already worded for the log. status 0: API unreachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def unreachable(self) -> bool:
        return self.status == 0


class KubeApi:
    """The calls a pass makes, on plain dicts (no model round-trips), each with a timeout
    and errors turned into ApiError messages that name the RBAC verb that was missing."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        import kubernetes
        import urllib3

        self._api_client = api_client
        self._ns = namespace
        self._coordination = kubernetes.client.CoordinationV1Api(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._api_exception: type[Exception] = kubernetes.client.ApiException
        self._network_errors: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, OSError)
        self._connect_errors: tuple[type[BaseException], ...] = (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
        )
        self.host: str = api_client.configuration.host

    def close(self) -> None:
        try:
            self._api_client.close()
            self._api_client.rest_client.pool_manager.clear()
        except Exception:  # closing sockets must not fail a finished pass
            pass

    def _call(self, verb: str, what: str, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                response = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
                break
            except self._api_exception as exc:
                raise self._http_error(verb, what, exc) from None
            except self._network_errors as exc:
                # Retried here, not by urllib3, which would log a WARNING of its own per retry.
                if attempt < CONNECT_RETRIES and isinstance(getattr(exc, "reason", exc), self._connect_errors):
                    attempt += 1
                    time.sleep(CONNECT_RETRY_DELAY)
                    continue
                raise ApiError(
                    0, f"API de Kubernetes inalcanzable en {self.host} ({verb} {what}): {_network_reason(exc)}"
                ) from None
        try:
            data = json.loads(response.data or b"{}")
        except ValueError:
            raise ApiError(-1, f"respuesta no JSON de la API de Kubernetes a {verb} {what}") from None
        return data if isinstance(data, dict) else {}

    def _http_error(self, verb: str, what: str, exc: Any) -> ApiError:
        status = int(getattr(exc, "status", 0) or 0)
        detail = _status_message(exc)
        where = f'{what} en el namespace "{self._ns}"'
        if status == 403:
            message = f'sin permiso RBAC: falta el verbo "{verb}" sobre {where} (HTTP 403: {detail})'
        elif status == 401:
            message = f"la API de Kubernetes rechaza las credenciales al hacer {verb} sobre {where} (HTTP 401)"
        elif status == 0:
            message = f"API de Kubernetes inalcanzable en {self.host} ({verb} {what}): {detail}"
        else:
            message = f"{verb} sobre {where} falló: HTTP {status} ({detail})"
        return ApiError(status, message)

    def get_lease(self, name: str) -> dict[str, Any] | None:
        try:
            return self._call("get", _lease_what(name), self._coordination.read_namespaced_lease, name, self._ns)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "create", _lease_what(body["metadata"]["name"]), self._coordination.create_namespaced_lease, self._ns, body
        )

    def replace_lease(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "update", _lease_what(name), self._coordination.replace_namespaced_lease, name, self._ns, body
        )

    def create_event(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", "events", self._core.create_namespaced_event, self._ns, body)

    def patch_configmap(self, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self._call(
                "patch", f'configmaps "{name}"', self._core.patch_namespaced_config_map, name, self._ns, body
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_configmap(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", "configmaps", self._core.create_namespaced_config_map, self._ns, body)


def _lease_what(name: str) -> str:
    return f'leases.coordination.k8s.io "{name}"'


def _status_message(exc: Any) -> str:
    """The API's own Status message when there is one, else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if isinstance(message, str) and message:
            return " ".join(message.split())[:300]
    reason = str(getattr(exc, "reason", "") or "").strip()
    return reason.splitlines()[0][:300] if reason else type(exc).__name__


def _network_reason(exc: BaseException) -> str:
    # MaxRetryError hides the useful part (refused, timed out) in .reason.
    inner = getattr(exc, "reason", None)
    text = " ".join(str(inner if isinstance(inner, BaseException) else exc).split())
    # Drop urllib3's "HTTPConnection(host=..., port=...): " prefix: the host is already named.
    return re.sub(r"^<?[\w.]*Connection[^:]*: ", "", text)[:300]


# --- the active guard ----------------------------------------------------------------------


class KubeGuard(PassGuard):
    """Lease lock + renew thread + Event + status record, against a live API."""

    def __init__(
        self,
        api: KubeApi,
        ident: Identity,
        settings: Settings,
        log: logging.Logger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._ident = ident
        self._log = log
        self._clock = clock
        self._lease_name = lease_name(settings)
        self._duration = settings.kubernetes.lease_duration_seconds
        self._lock_required = settings.kubernetes.lock_required
        self._configmap = settings.kubernetes.status_configmap
        self._status_key = status_key(settings)
        self.renew_interval = self._duration / 3
        # The last Lease we wrote: its resourceVersion makes the next write conditional.
        self._lease: dict[str, Any] | None = None
        self._lease_lock = threading.Lock()
        self._held = False
        self._held_by = ""  # the live holder that made acquire() answer "held"
        self._api_down = False  # unreachable once: skip further calls (each would time out)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._finished = False

    @property
    def holder(self) -> str:
        return self._ident.holder

    @property
    def held(self) -> bool:
        return self._held

    # -- lock ------------------------------------------------------------------------------

    def acquire(self) -> LockOutcome:
        try:
            outcome = self._acquire()
        except ApiError as exc:
            self._api_down = exc.unreachable
            self._log.warning(
                "No se pudo tomar el cerrojo (Lease %s/%s): %s; %s",
                self._ident.namespace,
                self._lease_name,
                exc,
                _consequence(self._lock_required),
            )
            return LockOutcome("unavailable", str(exc))
        if outcome.state == "held":
            self._held_by = outcome.detail
        if outcome.state == "acquired":
            self._held = True
            self._renewer = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
            self._renewer.start()
        return outcome

    def _create(self, now: datetime) -> LockOutcome:
        try:
            self._lease = self._api.create_lease(self._lease_body(now, transitions=0))
        except ApiError as exc:
            if exc.status == 409:  # created by someone else since our read: they won
                return LockOutcome("held", self._current_holder())
            raise
        self._log.info("Cerrojo tomado: Lease %s/%s (%s)", self._ident.namespace, self._lease_name, self.holder)
        return LockOutcome("acquired")

    def _acquire(self) -> LockOutcome:
        current = self._api.get_lease(self._lease_name)
        now = self._clock()
        if current is None:
            return self._create(now)

        spec = current.get("spec") or {}
        previous = spec.get("holderIdentity") or ""
        if previous and previous != self.holder and not lease_expired(spec, now, self._duration):
            return LockOutcome("held", previous)
        transitions = spec.get("leaseTransitions")
        transitions = transitions if isinstance(transitions, int) else 0
        if previous != self.holder:
            transitions += 1
        body = self._lease_body(now, transitions=transitions, base=current)
        try:
            self._lease = self._api.replace_lease(self._lease_name, body)
        except ApiError as exc:
            if exc.status == 409:  # the resourceVersion we read is stale: someone else won
                return LockOutcome("held", self._current_holder())
            if exc.status == 404:  # deleted between our read and our write: start afresh
                return self._create(now)
            raise
        if previous and previous != self.holder:
            self._log.info(
                "Cerrojo tomado: Lease %s/%s caducado de %s (última renovación %s)",
                self._ident.namespace,
                self._lease_name,
                previous,
                spec.get("renewTime") or "?",
            )
        else:
            self._log.info("Cerrojo tomado: Lease %s/%s (%s)", self._ident.namespace, self._lease_name, self.holder)
        return LockOutcome("acquired")

    def _current_holder(self) -> str:
        """Who won a race we lost; only to name them in the log."""
        try:
            lease = self._api.get_lease(self._lease_name)
        except ApiError:
            return "desconocido"
        return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "desconocido")

    def _lease_body(self, now: datetime, *, transitions: int, base: dict[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self._lease_name, "namespace": self._ident.namespace}
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

    def _renew_loop(self) -> None:
        failing = False
        while not self._stop.wait(self.renew_interval):
            try:
                lost_to = self._renew()
            except ApiError as exc:
                if not failing:  # one WARNING per outage, not one per third of a lease
                    self._log.warning(
                        "No se pudo renovar el cerrojo (Lease %s/%s): %s; se reintenta",
                        self._ident.namespace,
                        self._lease_name,
                        exc,
                    )
                failing = True
                continue
            except Exception as exc:  # a daemon thread must not die silently
                self._log.warning(
                    "Error inesperado al renovar el cerrojo (Lease %s/%s): %r",
                    self._ident.namespace,
                    self._lease_name,
                    exc,
                )
                failing = True
                continue
            if lost_to is not None:
                self._held = False
                self._log.warning(
                    "Cerrojo perdido: el Lease %s/%s lo tiene ahora %s; otra pasada puede estar sincronizando a la vez",
                    self._ident.namespace,
                    self._lease_name,
                    lost_to,
                )
                return
            if failing:
                self._log.info(
                    "Renovación del cerrojo recuperada (Lease %s/%s)", self._ident.namespace, self._lease_name
                )
                failing = False

    def _renew(self) -> str | None:
        """Renew once. Returns the new holder when the Lease is no longer ours."""
        with self._lease_lock:
            if self._stop.is_set():
                return None
            assert self._lease is not None
            for _ in range(2):
                body = self._with_spec(self._lease, renewTime=micro_time(self._clock()))
                try:
                    self._lease = self._api.replace_lease(self._lease_name, body)
                    return None
                except ApiError as exc:
                    if exc.status not in (404, 409):
                        raise
                current = self._api.get_lease(self._lease_name)
                holder = ((current or {}).get("spec") or {}).get("holderIdentity") or ""
                if current is None or holder != self.holder:
                    return holder or "nadie (liberado o borrado)"
                self._lease = current  # still ours, only a stale resourceVersion: retry
            return None

    @staticmethod
    def _with_spec(lease: dict[str, Any], **changes: Any) -> dict[str, Any]:
        spec = {**(lease.get("spec") or {}), **changes}
        spec = {k: v for k, v in spec.items() if v is not None}
        return {**lease, "spec": spec}

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(RENEW_JOIN_SECONDS)

    def _release(self) -> None:
        with self._lease_lock:
            assert self._lease is not None
            body = self._with_spec(self._lease, holderIdentity=None, renewTime=micro_time(self._clock()))
            self._api.replace_lease(self._lease_name, body)
            self._held = False

    # -- end of pass -----------------------------------------------------------------------

    def finish(self, report: PassReport) -> None:
        if self._finished:
            return
        self._finished = True
        self._stop_renewing()
        # Release first: after SIGTERM the pod may be killed any moment now, and a Lease
        # left held makes the next scheduled pass skip; the Event matters least.
        steps: list[tuple[str, Callable[[], None]]] = []
        if self._held:
            steps.append(("liberar el cerrojo", self._release))
        if report.reason is not EndReason.LOCK_HELD:
            steps.append(("escribir el estado", lambda: self._write_status(report)))
        steps.append(("publicar el Event", lambda: self._post_event(report)))
        for what, step in steps:
            if self._api_down:
                # Already warned once that the API is unreachable; each call would only
                # add its timeout to the pass.
                self._log.debug("Se omite %s: la API de Kubernetes no responde", what)
                continue
            try:
                step()
            except ApiError as exc:
                self._api_down = exc.unreachable
                self._log.warning("No se pudo %s en Kubernetes: %s", what, exc)
            except Exception as exc:  # best effort: never change the exit code
                self._log.warning("No se pudo %s en Kubernetes: error inesperado %r", what, exc)
        self._api.close()

    def _post_event(self, report: PassReport) -> None:
        body = event_body(report, self._ident, self._clock())
        if report.reason is EndReason.LOCK_HELD and self._held_by:
            # Who held the lock is the first thing an operator asks about a skipped pass.
            body["message"] = _fit(f"{body['message']} holder={self._held_by}")
        self._api.create_event(body)

    def _write_status(self, report: PassReport) -> None:
        record = status_record(report, self._ident, self._clock())
        # Pretty JSON: `kubectl get -o yaml` shows it as a readable block, jq parses it.
        text = json.dumps(record, ensure_ascii=False, indent=2)
        # A merge patch of one key: shards writing at once do not overwrite each other.
        patch = {"data": {self._status_key: text}}
        if self._api.patch_configmap(self._configmap, patch) is not None:
            return
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self._configmap,
                "namespace": self._ident.namespace,
                "labels": {"app.kubernetes.io/name": COMPONENT},
            },
            "data": {self._status_key: text},
        }
        try:
            self._api.create_configmap(body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            # Another shard created it between our patch and our create.
            if self._api.patch_configmap(self._configmap, patch) is None:
                raise ApiError(404, f'el ConfigMap "{self._configmap}" desapareció') from None


# --- entry point ---------------------------------------------------------------------------


def integration_active(settings: Settings, environ: Mapping[str, str]) -> bool:
    if settings.kubernetes.integration == "off":
        return False
    if settings.kubernetes.integration == "on":
        return True
    if not environ.get("KUBERNETES_SERVICE_HOST", "").strip():
        return False
    # A pod without a service-account token (automountServiceAccountToken: false, as the
    # chart renders it with the integration disabled) chose not to talk to the API: with
    # "auto" that is not an error worth a WARNING every pass. Unless the lock is required.
    return settings.kubernetes.lock_required or Path(SA_TOKEN_FILE).exists()


def open_guard(settings: Settings, log: logging.Logger, environ: Mapping[str, str] | None = None) -> PassGuard:
    """Inactive guard unless integration is on (or auto and KUBERNETES_SERVICE_HOST set).

    In-cluster config from the service account; with "on" outside a cluster, the
    kubeconfig (KUBECONFIG). If the API config can't be loaded, the guard's acquire()
    gives "unavailable". Never raises.
    """
    env = os.environ if environ is None else environ
    if not integration_active(settings, env):
        return PassGuard()
    try:
        api_client, kubeconfig_namespace = _load_api_client(env)
        ident = resolve_identity(env, kubeconfig_namespace)
        api = KubeApi(api_client, ident.namespace)
    except Exception as exc:  # config errors come in many types; fail open
        detail = f"no se pudo cargar su configuración: {' '.join(str(exc).split()) or type(exc).__name__}"
        return _UnavailableGuard(detail, log, settings.kubernetes.lock_required)
    return KubeGuard(api, ident, settings, log)


def _load_api_client(env: Mapping[str, str]) -> tuple[Any, str]:
    """(ApiClient, namespace of the kubeconfig context or "")."""
    import kubernetes
    import urllib3

    configuration = kubernetes.client.Configuration()
    namespace = ""
    if env.get("KUBERNETES_SERVICE_HOST", "").strip():
        kubernetes.config.incluster_config.InClusterConfigLoader(
            token_filename=SA_TOKEN_FILE,
            cert_filename=SA_CA_FILE,
            environ=env,
        ).load_and_set(configuration)
    else:
        config_file = env.get("KUBECONFIG", "").strip() or None
        kubernetes.config.load_kube_config(
            config_file=config_file, client_configuration=configuration, persist_config=False
        )
        _, context = kubernetes.config.list_kube_config_contexts(config_file)
        namespace = str(((context or {}).get("context") or {}).get("namespace") or "")
    # No urllib3 retries: KubeApi._call retries connection failures itself, quietly.
    configuration.retries = urllib3.Retry(total=0, redirect=0)
    return kubernetes.client.ApiClient(configuration), namespace
