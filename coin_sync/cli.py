"""Command line: `coin-sync [run|check|symbols|loop] [options]`.

main(argv) returns the exit code instead of exiting, so tests can call it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from coin_sync import __version__
from coin_sync.config.load import load_settings
from coin_sync.config.settings import FIELDS, Settings
from coin_sync.config.sources import ConfigError
from coin_sync.observe.logs import setup_logging, shutdown_logging
from coin_sync.outcome import EndReason, ExitCode, PassReport
from coin_sync.stop import Interrupted, Stop

if TYPE_CHECKING:
    from coin_sync.locks.filelock import FileLockGuard
    from coin_sync.locks.guard import LockOutcome, PassGuard
    from coin_sync.sync.context import PassContext
    from coin_sync.sync.state import StateStore

COMMANDS = {
    "run": "una pasada de sincronización completa (por defecto)",
    "check": "solo la comprobación de salud del backend: 0 sano, 3 no disponible",
    "symbols": "imprime los símbolos que sincronizaría esta pasada, sin sincronizar",
    "loop": "una pasada cada SYNC_INTERVAL_SECONDS, cada una en un proceso nuevo (docker compose)",
}

EXIT_CODES_HELP = """códigos de salida:
  0    todos los símbolos sincronizados (o nada que sincronizar, u otra pasada en curso: lock_held)
  1    uno o más símbolos fallaron u omitidos por PASS_DEADLINE_SECONDS o PASS_BUDGET_SECONDS
       (con FAIL_ON_STALE=true, también si alguno quedó desactualizado)
  2    configuración o uso incorrectos
       (en 'loop', también si no puede servir /metrics en METRICS_PORT: puerto ocupado)
  3    backend no disponible (nunca sano, lista de símbolos inutilizable o caído a mitad de pasada)
  4    el exchange limitó o bloqueó al backend (429/418): pasada detenida, el resto omitido
  130  interrumpido por SIGINT
  143  interrumpido por SIGTERM

Cada opción equivale a la variable de entorno del mismo nombre (--http-timeout = HTTP_TIMEOUT).
Prioridad: valores por defecto < fichero YAML (CONFIG_FILE / --config) < entorno < opciones."""


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: an option not given leaves no attribute at all, so the subcommand's
    # parser cannot overwrite a flag given before the command with its own default.
    settings_flags = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = settings_flags.add_argument_group("configuración")
    group.add_argument(
        "--config", metavar="FICHERO", help="fichero YAML con las mismas claves que el entorno (CONFIG_FILE)"
    )
    for f in FIELDS:
        default = f.default()
        shown = "" if f.secret or default in (None, "", ()) else f" (por defecto: {default})"
        group.add_argument(f.flag, dest=f.env, metavar=f.env, help=f"{f.help}{shown}")

    parser = argparse.ArgumentParser(
        prog="coin-sync",
        description="Sincroniza las velas de 1 minuto de cada símbolo del backend: una pasada y un código de salida.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[settings_flags],
    )
    parser.add_argument("--version", action="version", version=f"coin-sync {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{run,check,symbols,loop}")
    for name, help_text in COMMANDS.items():
        commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[settings_flags],
        )
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if any(arg in COMMANDS for arg in argv if not arg.startswith("-")) or any(
        arg in ("-h", "--help", "--version") for arg in argv
    ):
        return argv
    return ["run", *argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(_with_default_command(argv))
    except SystemExit as exc:  # --help, --version, or a usage error (code 2)
        return int(exc.code or 0) if not isinstance(exc.code, str) else ExitCode.BAD_CONFIG
    flags: dict[str, str | None] = {f.env: getattr(args, f.env, None) for f in FIELDS}
    flags["CONFIG_FILE"] = getattr(args, "config", None)
    try:
        settings = load_settings(flags)
    except ConfigError as exc:
        print(f"ERROR de configuración: {exc}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    command: str = args.command or "run"
    if command == "loop":
        return _loop(settings, argv)
    handlers: dict[str, Callable[[Settings, logging.Logger, Stop], int]] = {
        "run": _run,
        "check": _check,
        "symbols": _symbols,
    }
    # First thing: a signal during the banner or the lock must still end in a FIN
    # line, a summary and 143/130, never in a KeyboardInterrupt traceback.
    stop = Stop()
    restore = stop.listen()
    # `symbols` prints its answer on stdout; its logs must not mix into it.
    log = setup_logging(
        settings.log.level,
        settings.log.dir,
        settings.log.format,
        stream=sys.stderr if command == "symbols" else sys.stdout,
    )
    try:
        return int(handlers[command](settings, log, stop))
    finally:
        restore()
        shutdown_logging()


def _context(settings: Settings, log: logging.Logger, stop: Stop, state: StateStore | None = None) -> PassContext:
    # Imported here: `--help` and config errors should not pay for requests/backoff.
    from coin_sync.backend.client import make_client
    from coin_sync.clock import RealClock
    from coin_sync.sync.context import PassContext
    from coin_sync.sync.state import MemoryStateStore

    client = make_client(settings.backend, settings.sync.connections)
    log.info("Cliente del backend inicializado: %s", client.shown_url)
    return PassContext(settings, client, log, stop, RealClock(), state if state is not None else MemoryStateStore())


def _banner(settings: Settings, log: logging.Logger) -> None:
    log.info("=" * 60)
    log.info("SERVICIO DE SINCRONIZACIÓN AUTOMÁTICA (coin-sync %s)", __version__)
    log.info("=" * 60)
    if settings.config_file is not None:
        log.info("  CONFIG_FILE: %s", settings.config_file)
    for name, value in settings.describe():
        log.info("  %s: %s", name, value)


def _run(settings: Settings, log: logging.Logger, stop: Stop) -> int:
    from coin_sync.clock import RealClock
    from coin_sync.k8s import open_guard
    from coin_sync.locks.filelock import FileLockGuard
    from coin_sync.observe.publish import publish
    from coin_sync.sync.runner import new_report

    _banner(settings, log)
    kube_guard = open_guard(settings, log, os.environ)
    guard: PassGuard | FileLockGuard = kube_guard
    try:
        lock = guard.acquire()
        kube = kube_guard if lock.state != "inactive" else None
        if kube is None:
            # Outside Kubernetes the run lock is LOCK_FILE (off: "inactive" again). It
            # fails open whatever K8S_LOCK_REQUIRED says: that setting is about the API.
            guard = FileLockGuard(settings.log.lock_file, log)
            lock = guard.acquire()
        report = _guarded_pass(settings, log, stop, lock, kube)
    except Exception as exc:
        # One line, no traceback: the report below says the rest, and the Lease must
        # not stay held until it expires.
        log.error("La pasada terminó por un error interno: %r", exc)
        report = new_report(settings, RealClock(), EndReason.CRASHED)
        report.detail = repr(exc)
    return publish(report, settings, log, guard)


def _guarded_pass(
    settings: Settings, log: logging.Logger, stop: Stop, lock: LockOutcome, kube: PassGuard | None
) -> PassReport:
    """kube: the Kubernetes guard, when the lock is its Lease (else LOCK_FILE, or none)."""
    from coin_sync.clock import RealClock
    from coin_sync.sync.runner import new_report, run_pass
    from coin_sync.sync.state import FileStateStore

    if stop.signum is not None:
        # SIGTERM/SIGINT while the lock was being taken: whatever its answer, this pass
        # was interrupted before it began.
        report = new_report(settings, RealClock(), EndReason.INTERRUPTED)
        report.signum = stop.signum
        return report
    if lock.state == "held":
        log.warning("Otra pasada está en curso (%s); se omite esta pasada", lock.detail)
        report = new_report(settings, RealClock(), EndReason.LOCK_HELD)
        report.detail = lock.detail
        return report
    if lock.state == "unavailable" and kube is not None and settings.kubernetes.lock_required:
        # open_guard already logged why, and that the pass will not run.
        report = new_report(settings, RealClock(), EndReason.LOCK_UNAVAILABLE)
        report.detail = lock.detail
        return report
    # The ambiguous syncs remembered across passes: with the Lease ours, in the status
    # ConfigMap (a pod is new every pass); otherwise (outside Kubernetes, the API down or
    # the lock not taken) in STATE_FILE, so a dead API is never asked again.
    state: StateStore | None = kube.state_store() if kube is not None and lock.state == "acquired" else None
    if state is None:
        assert settings.log.state_file is not None  # resolved by config._validated
        state = FileStateStore(settings.log.state_file, log)
    return run_pass(_context(settings, log, stop, state))


def _check(settings: Settings, log: logging.Logger, stop: Stop) -> int:
    from coin_sync.backend.health import wait_until_healthy

    ctx = _context(settings, log, stop)
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


def _symbols(settings: Settings, log: logging.Logger, stop: Stop) -> int:
    from coin_sync.sync.plan import resolve_symbols

    ctx = _context(settings, log, stop)
    try:
        with stop.raising():
            symbols = resolve_symbols(ctx)
    except Interrupted:
        symbols = None
    if stop.signum is not None:
        return int(EndReason.INTERRUPTED.exit_code(stop.signum))
    if symbols is None:
        return ExitCode.BACKEND_UNAVAILABLE
    if not symbols:
        log.warning("No hay símbolos que sincronizar")
    for symbol in symbols:
        print(symbol)
    return ExitCode.OK


def _loop(settings: Settings, argv: list[str]) -> int:
    from coin_sync.loop.wrapper import run_loop

    # Every flag given to `loop` applies to each pass too.
    passthrough = list(argv)
    passthrough.remove("loop")
    log = setup_logging(settings.log.level, settings.log.dir, settings.log.format)
    try:
        _banner(settings, log)
        return run_loop(settings, [sys.executable, "-m", "coin_sync", "run", *passthrough], log)
    finally:
        shutdown_logging()
