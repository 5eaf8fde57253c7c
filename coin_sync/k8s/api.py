"""The Kubernetes API, reduced to the calls a pass makes, on plain dicts.

Every call has a (connect, read) timeout, so a black-holed API server cannot hang a pass.
A call whose connection failed is retried (the request never left, so even a POST is safe
to repeat); a read error is never retried (the write might have been applied).

Failures are raised as one `ApiError` subclass, already worded in Spanish for the log:

    ApiError
    ├── ApiUnreachable      no answer (refused, timed out, DNS): skip further calls
    ├── ApiBadResponse      an answer that is not JSON
    └── ApiStatusError      an HTTP error status (.status)
        ├── Unauthorized    401: the credentials were rejected
        ├── Forbidden       403: names the RBAC verb that was missing
        ├── NotFound        404
        └── Conflict        409: AlreadyExists, or a stale resourceVersion

`kubernetes` and `urllib3` are imported inside `KubeApi.__init__`, never at module level.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """One failed API call; str() is the Spanish line for the log."""


class ApiUnreachable(ApiError):
    """The API server did not answer: each further call would only add its timeout."""


class ApiBadResponse(ApiError):
    """The API server answered something that is not a JSON object."""


class ApiStatusError(ApiError):
    """The API server answered with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(ApiStatusError):
    """401."""


class Forbidden(ApiStatusError):
    """403: the message names the missing RBAC verb."""


class NotFound(ApiStatusError):
    """404."""


class Conflict(ApiStatusError):
    """409: the object already exists, or the resourceVersion sent is stale."""


class Reachability:
    """Whether this pass already found the API server unreachable. Shared by the guard and
    the state store: once one of them met a dead API the others skip their calls, each of
    which would only add its timeout."""

    def __init__(self) -> None:
        self.down = False

    def note(self, exc: BaseException) -> None:
        if isinstance(exc, ApiUnreachable):
            self.down = True


_BY_STATUS: dict[int, type[ApiStatusError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict}


@dataclass(frozen=True)
class ApiTimeouts:
    connect: float = 3.0  # seconds to open a connection
    read: float = 5.0  # seconds to wait for the answer
    connect_retries: int = 1  # extra attempts after a failed connection
    connect_retry_delay: float = 0.2  # seconds before retrying a failed connection


DEFAULT_TIMEOUTS = ApiTimeouts()


def worded(exc: Exception) -> str:
    """An ApiError's own line; anything else (a bug) named as unexpected, for one WARNING."""
    return str(exc) if isinstance(exc, ApiError) else f"error inesperado {exc!r}"


def lease_what(name: str) -> str:
    return f'leases.coordination.k8s.io "{name}"'


class KubeApi:
    """The calls a pass makes, each with its RBAC verb and object named in its errors."""

    def __init__(self, api_client: Any, namespace: str, timeouts: ApiTimeouts = DEFAULT_TIMEOUTS) -> None:
        import kubernetes
        import urllib3

        self._api_client = api_client
        self.namespace = namespace
        self.timeouts = timeouts
        self.host: str = api_client.configuration.host
        self._coordination = kubernetes.client.CoordinationV1Api(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._api_exception: type[Exception] = kubernetes.client.ApiException
        self._network_errors: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, OSError)
        self._connect_errors: tuple[type[BaseException], ...] = (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
        )

    # -- the calls ------------------------------------------------------------------------

    def get_lease(self, name: str) -> dict[str, Any] | None:
        """The Lease, or None when there is none."""
        try:
            return self._call("get", lease_what(name), self._coordination.read_namespaced_lease, name, self.namespace)
        except NotFound:
            return None

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return self._call("create", lease_what(name), self._coordination.create_namespaced_lease, self.namespace, body)

    def replace_lease(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT; with metadata.resourceVersion a compare-and-swap (Conflict when stale)."""
        replace = self._coordination.replace_namespaced_lease
        return self._call("update", lease_what(name), replace, name, self.namespace, body)

    def create_event(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", "events", self._core.create_namespaced_event, self.namespace, body)

    def get_configmap(self, name: str) -> dict[str, Any] | None:
        """The ConfigMap, or None when there is none."""
        try:
            read = self._core.read_namespaced_config_map
            return self._call("get", f'configmaps "{name}"', read, name, self.namespace)
        except NotFound:
            return None

    def patch_configmap(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A merge patch: only the keys in body change."""
        patch = self._core.patch_namespaced_config_map
        return self._call("patch", f'configmaps "{name}"', patch, name, self.namespace, body)

    def create_configmap(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", "configmaps", self._core.create_namespaced_config_map, self.namespace, body)

    def close(self) -> None:
        try:
            self._api_client.close()
            self._api_client.rest_client.pool_manager.clear()
        except Exception:  # closing sockets must not fail a finished pass
            pass

    # -- one call, its retry and its errors -----------------------------------------------

    def _call(self, verb: str, what: str, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        t = self.timeouts
        attempt = 0
        while True:
            try:
                response = fn(*args, _preload_content=False, _request_timeout=(t.connect, t.read))
                break
            except self._api_exception as exc:
                raise self._status_error(verb, what, exc) from None
            except self._network_errors as exc:
                # Retried here, not by urllib3, which would log a WARNING of its own per retry.
                if attempt < t.connect_retries and isinstance(getattr(exc, "reason", exc), self._connect_errors):
                    attempt += 1
                    time.sleep(t.connect_retry_delay)
                    continue
                raise self._unreachable(verb, what, _network_reason(exc)) from None
        try:
            data = json.loads(response.data or b"{}")
        except ValueError:
            raise ApiBadResponse(f"respuesta no JSON de la API de Kubernetes a {verb} {what}") from None
        return data if isinstance(data, dict) else {}

    def _unreachable(self, verb: str, what: str, reason: str) -> ApiUnreachable:
        return ApiUnreachable(f"API de Kubernetes inalcanzable en {self.host} ({verb} {what}): {reason}")

    def _status_error(self, verb: str, what: str, exc: Any) -> ApiError:
        status = int(getattr(exc, "status", 0) or 0)
        detail = _status_message(exc)
        if status == 0:  # the client raises ApiException without a status for transport errors
            return self._unreachable(verb, what, detail)
        where = f'{what} en el namespace "{self.namespace}"'
        if status == 403:
            message = f'sin permiso RBAC: falta el verbo "{verb}" sobre {where} (HTTP 403: {detail})'
        elif status == 401:
            message = f"la API de Kubernetes rechaza las credenciales al hacer {verb} sobre {where} (HTTP 401)"
        else:
            message = f"{verb} sobre {where} falló: HTTP {status} ({detail})"
        return _BY_STATUS.get(status, ApiStatusError)(message, status)


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
