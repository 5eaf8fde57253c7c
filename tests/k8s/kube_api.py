"""A Kubernetes API double for the k8s tests: kmock's KubernetesEmulator served over real
HTTP on localhost, completed with what the run lock depends on.

kmock stores objects and answers GET/POST/PATCH/DELETE, but has no PUT, no
resourceVersion and no 409 on a stale write; without those a compare-and-swap lock
cannot lose a race, so `ApiEmulator` adds them (and 403 for chosen verbs, for RBAC).

The official client is synchronous, so the emulator runs in its own thread and event
loop (`ApiServer`); tests talk to it through a kubeconfig file (`write_kubeconfig`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml

from coin_sync.k8s.lease import micro_time

T = TypeVar("T")

NAMESPACE = "coin"
LEASES = "coordination.k8s.io/v1/leases"
EVENTS = "v1/events"
CONFIGMAPS = "v1/configmaps"

# HTTP method -> RBAC verb (a GET without a name is a list).
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _conflict(message: str, reason: str = "Conflict") -> kmock.KubernetesError:
    return kmock.KubernetesError(status=409, reason=reason, message=message)


@attrs.define(kw_only=True)
class ApiEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus PUT, resourceVersion (compare-and-swap on PUT and PATCH),
    409 AlreadyExists/Conflict, uid/creationTimestamp, and 403 for `forbidden` verbs."""

    forbidden: set[tuple[str, str]] = attrs.field(factory=set)  # {("get", "leases"), ...}
    # > 0: a PUT that releases a Lease (no holderIdentity) waits until that Lease was read
    # this many times (at most 10 s). Two passes "started together" then really overlap:
    # the winner cannot let go before the loser has looked, however the OS schedules them.
    release_after_reads: int = 0
    # Seconds every GET of a Lease waits before its answer: a slow API server, so a test
    # can signal a pass while it is taking the lock.
    lease_read_delay: float = 0.0
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is None or request.subresource:
            return await super()._handle(request)
        method = request.method.value
        verb = _VERBS.get(method) or ("get" if request.name else "list")
        if (verb, res.plural) in self.forbidden:
            group = f".{res.group}" if res.group else ""
            raise kmock.KubernetesError(
                status=403,
                reason="Forbidden",
                message=f'{res.plural}{group} "{request.name or ""}" is forbidden: User '
                f'"system:serviceaccount:{request.namespace}:coin-sync" cannot {verb} resource '
                f'"{res.plural}" in API group "{res.group}" in the namespace "{request.namespace}"',
            )
        if method not in ("POST", "PUT", "PATCH"):
            if method == "GET" and res.plural == "leases" and self.lease_read_delay:
                await asyncio.sleep(self.lease_read_delay)
            return await super()._handle(request)  # reads and deletes: kmock's own
        if method == "PUT" and res.plural == "leases" and self.release_after_reads:
            await self._gate_release(request)

        # No await from here to the write: on one event loop this block is atomic, which
        # is what makes the resourceVersion check a real compare-and-swap.
        body = copy.deepcopy(request.data) if isinstance(request.data, dict) else {}
        meta = body.setdefault("metadata", {})
        name = request.name or meta.get("name")
        key = (res, request.namespace, name)
        try:
            stored: kmock.Object | None = self._objects[key]
        except KeyError:
            stored = None
        alive = stored is not None and not stored.deleted
        if method == "POST":
            if alive:
                raise _conflict(f'{res.plural} "{name}" already exists', "AlreadyExists")
            meta |= {"uid": str(uuid.uuid4()), "creationTimestamp": _now()}
        else:
            if not alive:
                raise kmock.KubernetesObjectNotFoundError()
            assert stored is not None
            current = stored.raw
            sent = meta.get("resourceVersion")
            if sent is not None and sent != current["metadata"]["resourceVersion"]:
                raise _conflict(
                    f'Operation cannot be fulfilled on {res.plural} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
            if method == "PATCH":
                body = _merged(current, request.data)
                meta = body["metadata"]
            meta |= {k: v for k, v in current["metadata"].items() if k in ("uid", "creationTimestamp")}
        meta |= {"name": name, "namespace": request.namespace, "resourceVersion": str(next(self._versions))}
        if stored is None:
            self._objects[key] = body
        else:
            stored.create(body)  # a new version in kmock's history
        return aiohttp.web.json_response(body, status=201 if method == "POST" else 200)

    async def _gate_release(self, request: kmock.Request) -> None:
        if ((request.data or {}).get("spec") or {}).get("holderIdentity"):
            return  # a renewal or a takeover, not a release
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline:
            reads = sum(
                1
                for r in self
                if r.method.value == "GET"
                and r.resource == request.resource
                and r.name == request.name
                and r.namespace == request.namespace
            )
            if reads >= self.release_after_reads:
                return
            await asyncio.sleep(0.01)


def _merged(base: dict[str, Any], patch: Any) -> dict[str, Any]:
    """JSON merge patch (RFC 7386), what a strategic merge does for a ConfigMap's data."""
    result = copy.deepcopy(base)
    for k, v in (patch or {}).items():
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict) and isinstance(result.get(k), dict):
            result[k] = _merged(result[k], v)
        else:
            result[k] = copy.deepcopy(v)
    return result


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiServer:
    """The emulator on 127.0.0.1:<random port>, in a background thread and event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kmock", daemon=True)
        self._stack: Any = None
        self.emulator: ApiEmulator
        self.url = ""

    def start(self) -> Self:
        self._thread.start()
        self.run(self._open)
        return self

    def stop(self) -> None:
        self.run(self._close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def run(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the server's loop and wait for it (state is only touched there)."""
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(10)

    async def _open(self) -> None:
        from contextlib import AsyncExitStack

        self._stack = AsyncExitStack()
        self.emulator = await self._stack.enter_async_context(ApiEmulator())
        server = await self._stack.enter_async_context(kmock.Server(self.emulator))
        self.url = str(server.url).rstrip("/")

    async def _close(self) -> None:
        await self._stack.aclose()

    # -- test helpers, safe to call from the test thread -----------------------------------

    def objects(self, resource: str, namespace: str) -> dict[str, dict[str, Any]]:
        """name -> a copy of the live object, e.g. objects("coordination.k8s.io/v1/leases", "coin")."""
        wanted = kmock.resource(resource)

        async def snapshot() -> dict[str, dict[str, Any]]:
            return {
                name: copy.deepcopy(obj.raw)
                for (res, ns, name), obj in self.emulator.objects.items()
                if res == wanted and ns == namespace and not obj.deleted
            }

        return self.run(snapshot)

    def put(self, resource: str, namespace: str, body: dict[str, Any]) -> None:
        """Store an object as-is (e.g. a Lease held by someone else), with a fresh resourceVersion."""
        res = kmock.resource(resource)
        name = body["metadata"]["name"]

        async def store() -> None:
            obj = copy.deepcopy(body)
            obj["metadata"] = {
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                **obj["metadata"],
                "namespace": namespace,
                "resourceVersion": str(next(self.emulator._versions)),
            }
            key = (res, namespace, name)
            if key in self.emulator.objects:
                self.emulator.objects[key].create(obj)
            else:
                self.emulator.objects[key] = obj

        self.run(store)

    def remove(self, resource: str, namespace: str, name: str) -> None:
        """Hard-delete an object, as another actor's `kubectl delete` would."""
        key = (kmock.resource(resource), namespace, name)

        async def drop() -> None:
            del self.emulator.objects[key]

        self.run(drop)

    def requests(self) -> list[tuple[str, str | None, str | None]]:
        """(method, plural, name) of every request so far."""

        async def listing() -> list[tuple[str, str | None, str | None]]:
            return [(r.method.value, r.resource.plural if r.resource else None, r.name) for r in self.emulator]

        return self.run(listing)


def write_kubeconfig(path: Path, server_url: str, namespace: str = "coin") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server_url}}],
        "users": [{"name": "tests", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tests", "namespace": namespace}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def lease_body(name: str, holder: str, renewed_ago: float, duration: int = 60, transitions: int = 0) -> dict[str, Any]:
    """A Lease as another pass would have left it, last renewed `renewed_ago` seconds ago."""
    renewed = datetime.now(UTC) - timedelta(seconds=renewed_ago)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "uid": "uid-of-" + name},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": micro_time(renewed - timedelta(seconds=5)),
            "renewTime": micro_time(renewed),
            "leaseTransitions": transitions,
        },
    }
