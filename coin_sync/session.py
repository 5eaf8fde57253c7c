"""What each command does once its settings are loaded and logging is up.

`run_guarded` is the guarded pass: it picks the run lock (the Kubernetes Lease inside a
cluster, else LOCK_FILE), where the ambiguous syncs are kept (the Lease holder's status
ConfigMap, else STATE_FILE), decides the ends that come before the pass (a signal while
locking, the lock held, the Lease required but unavailable, a crash), and publishes
whichever end, the same way. K8S_LOCK_REQUIRED is read here and nowhere else; the k8s
package is imported only when the integration is on.

`check` and `symbols` are the unguarded commands: the health probe, the symbol list.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from coin_sync.backend.client import make_client
from coin_sync.backend.health import wait_until_healthy
from coin_sync.clock import RealClock
from coin_sync.config.settings import Settings
from coin_sync.locks.cluster import IN_CLUSTER, integration_active
from coin_sync.locks.filelock import FileLockGuard
from coin_sync.locks.guard import LockOutcome, PassGuard
from coin_sync.observe.publish import publish
from coin_sync.outcome import EndReason, ExitCode, PassReport
from coin_sync.stop import Interrupted, Stop
from coin_sync.sync.context import PassContext
from coin_sync.sync.plan import resolve_symbols
from coin_sync.sync.runner import new_report, run_pass
from coin_sync.sync.state import FileStateStore, MemoryStateStore, StateStore


def pass_context(settings: Settings, log: logging.Logger, stop: Stop, state: StateStore | None = None) -> PassContext:
    client = make_client(settings.backend, settings.sync.connections)
    log.info("Cliente del backend inicializado: %s", client.shown_url)
    return PassContext(settings, client, log, stop, RealClock(), state if state is not None else MemoryStateStore())


def run_guarded(settings: Settings, log: logging.Logger, stop: Stop, environ: Mapping[str, str] | None = None) -> int:
    """One pass under the run lock, published everywhere; returns its exit code.
    environ: os.environ unless given (where a pass finds its cluster and pod identity)."""
    guard, required = open_lock(settings, log, os.environ if environ is None else environ)
    try:
        lock = guard.acquire()
        report = _ended_before(settings, log, stop, lock, required)
        if report is None:
            report = run_pass(pass_context(settings, log, stop, _state_store(settings, log, guard, lock)))
    except Exception as exc:
        # One line, no traceback: the report below says the rest, and the Lease must
        # not stay held until it expires.
        log.error("La pasada terminó por un error interno: %r", exc)
        report = _ended(settings, EndReason.CRASHED, repr(exc))
    return publish(report, settings, log, guard)


def open_lock(settings: Settings, log: logging.Logger, environ: Mapping[str, str]) -> tuple[PassGuard, bool]:
    """The run lock's guard, and whether the pass must not run when it is unavailable."""
    required = settings.kubernetes.lock_required
    if integration_active(settings.kubernetes.integration, required, environ, IN_CLUSTER.token):
        from coin_sync.k8s import open_guard  # loads the k8s package: only when it is wanted

        return open_guard(settings, log, environ, required=required), required
    # Outside Kubernetes the run lock is LOCK_FILE (off: "inactive"). It fails open
    # whatever K8S_LOCK_REQUIRED says: that setting is about the API.
    return FileLockGuard(settings.log.lock_file, log), False


def _ended_before(
    settings: Settings, log: logging.Logger, stop: Stop, lock: LockOutcome, required: bool
) -> PassReport | None:
    """The report of a pass that ends before it begins; None: the pass runs."""
    if stop.signum is not None:
        # SIGTERM/SIGINT while the lock was being taken: whatever its answer, this pass
        # was interrupted before it began.
        return _ended(settings, EndReason.INTERRUPTED, signum=stop.signum)
    if lock.state == "held":
        log.warning("Otra pasada está en curso (%s); se omite esta pasada", lock.detail)
        return _ended(settings, EndReason.LOCK_HELD, lock.detail)
    if lock.state == "unavailable" and required:
        # The guard already logged why, and that the pass will not run.
        return _ended(settings, EndReason.LOCK_UNAVAILABLE, lock.detail)
    return None


def _state_store(settings: Settings, log: logging.Logger, guard: PassGuard, lock: LockOutcome) -> StateStore:
    """The ambiguous syncs remembered across passes: with the Lease ours, in the status
    ConfigMap (a pod is new every pass); otherwise (outside Kubernetes, the API down or the
    lock not taken) in STATE_FILE, so a dead API is never asked again."""
    state = guard.state_store() if lock.state == "acquired" else None
    if state is None:
        state = FileStateStore(settings.log.state_file, log)
    return state


def _ended(settings: Settings, reason: EndReason, detail: str = "", *, signum: int | None = None) -> PassReport:
    """The report of a pass that ended before it began."""
    report = new_report(settings, RealClock(), reason)
    report.detail, report.signum = detail, signum
    return report


def check(settings: Settings, log: logging.Logger, stop: Stop) -> int:
    ctx = pass_context(settings, log, stop)
    try:
        with stop.raising():
            healthy, why = wait_until_healthy(ctx.client, settings.backend.wait_seconds, ctx.clock, stop, log)
    except Interrupted:
        healthy, why = False, ""
    if stop.signum is not None:
        return int(EndReason.INTERRUPTED.exit_code(stop.signum))
    if not healthy:
        log.error("El backend no está disponible: %s", why)
        return ExitCode.BACKEND_UNAVAILABLE
    return ExitCode.OK


def symbols(settings: Settings, log: logging.Logger, stop: Stop) -> int:
    ctx = pass_context(settings, log, stop)
    try:
        with stop.raising():
            resolved = resolve_symbols(ctx)
    except Interrupted:
        resolved = None
    if stop.signum is not None:
        return int(EndReason.INTERRUPTED.exit_code(stop.signum))
    if resolved is None:
        return ExitCode.BACKEND_UNAVAILABLE
    if not resolved:
        log.warning("No hay símbolos que sincronizar")
    for symbol in resolved:
        print(symbol)
    return ExitCode.OK
