"""Command line: `coin-sync [run|check|symbols|loop] [options]`.

main(argv) returns the exit code instead of exiting, so tests can call it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from coin_sync import __version__
from coin_sync.config import FIELDS, ConfigError, Settings, load_settings, redact_url
from coin_sync.logs import setup_logging, shutdown_logging
from coin_sync.signals import Interrupted, SignalStop
from coin_sync.summary import (
    REASON_CRASHED,
    REASON_LOCK_HELD,
    REASON_LOCK_UNAVAILABLE,
    ExitCode,
    PassReport,
    write_summary_file,
    write_termination_message,
)

if TYPE_CHECKING:
    from coin_sync.runner import PassRunner

COMMANDS = {
    "run": "una pasada de sincronización completa (por defecto)",
    "check": "solo la comprobación de salud del backend: 0 sano, 3 no disponible",
    "symbols": "imprime los símbolos que sincronizaría esta pasada, sin sincronizar",
    "loop": "una pasada cada SYNC_INTERVAL_SECONDS, cada una en un proceso nuevo (docker compose)",
}

EXIT_CODES_HELP = """códigos de salida:
  0    todos los símbolos sincronizados (o nada que sincronizar)
  1    uno o más símbolos fallaron u omitidos por PASS_DEADLINE_SECONDS
  2    configuración o uso incorrectos
  3    backend no disponible (nunca sano, lista de símbolos inutilizable o caído a mitad de pasada)
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
    defaults = Settings()
    for f in FIELDS:
        default = getattr(defaults, f.attr)
        shown = "" if f.secret or default in (None, "", ()) else f" (por defecto: {default})"
        group.add_argument(f.flag, dest=f.attr, metavar=f.env, help=f"{f.help}{shown}")

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
    flags: dict[str, str | None] = {f.env: getattr(args, f.attr, None) for f in FIELDS}
    flags["CONFIG_FILE"] = getattr(args, "config", None)
    try:
        settings = load_settings(flags)
    except ConfigError as exc:
        print(f"ERROR de configuración: {exc}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    command: str = args.command or "run"
    if command == "loop":
        return _loop(settings, argv)
    handlers: dict[str, Callable[[Settings, logging.Logger, SignalStop], int]] = {
        "run": _run,
        "check": _check,
        "symbols": _symbols,
    }
    # First thing: a signal during the banner or the lock must still end in a FIN
    # line, a summary and 143/130, never in a KeyboardInterrupt traceback.
    stop = SignalStop()
    restore = stop.install()
    # `symbols` prints its answer on stdout; its logs must not mix into it.
    log = setup_logging(
        settings.log_level,
        settings.log_dir,
        settings.log_format,
        stream=sys.stderr if command == "symbols" else sys.stdout,
    )
    try:
        return int(handlers[command](settings, log, stop))
    finally:
        restore()
        shutdown_logging()


def _runner(settings: Settings, log: logging.Logger, stop: SignalStop) -> PassRunner:
    # Imported here: `--help` and config errors should not pay for requests/backoff.
    from coin_sync.client import BackendClient, make_session
    from coin_sync.runner import PassRunner

    session = make_session(settings.backend_token, settings.sync_concurrency)
    client = BackendClient(settings.backend_url, session, settings.http_timeout)
    log.info("Cliente del backend inicializado: %s", redact_url(settings.backend_url))
    return PassRunner(settings, client, log, stop)


def _banner(settings: Settings, log: logging.Logger) -> None:
    log.info("=" * 60)
    log.info("SERVICIO DE SINCRONIZACIÓN AUTOMÁTICA (coin-sync %s)", __version__)
    log.info("=" * 60)
    if settings.config_file is not None:
        log.info("  CONFIG_FILE: %s", settings.config_file)
    for name, value in settings.describe():
        log.info("  %s: %s", name, value)


def _run(settings: Settings, log: logging.Logger, stop: SignalStop) -> int:
    from coin_sync.k8s import open_guard

    _banner(settings, log)
    guard = open_guard(settings, log)
    outcome = guard.acquire()
    if outcome.state == "held":
        log.warning("Otra pasada está en curso (%s); se omite esta pasada", outcome.detail)
        report = PassReport(settings.sync_pass_number, started_at="", reason=REASON_LOCK_HELD)
        guard.finish(report)
        return ExitCode.OK
    if outcome.state == "unavailable" and settings.k8s_lock_required:
        # open_guard already logged why, and that the pass will not run.
        report = PassReport(
            settings.sync_pass_number,
            started_at="",
            reason=REASON_LOCK_UNAVAILABLE,
            exit_code=ExitCode.BACKEND_UNAVAILABLE,
        )
        guard.finish(report)
        return ExitCode.BACKEND_UNAVAILABLE
    try:
        report = _runner(settings, log, stop).run()
    except BaseException:
        # Even a crash must not leave the Lease held until it expires.
        crashed = PassReport(
            settings.sync_pass_number, started_at="", reason=REASON_CRASHED, exit_code=ExitCode.SYMBOLS_FAILED
        )
        guard.finish(crashed)
        raise
    # The local summary first: it costs nothing, while the API calls may time out.
    _publish(report, settings, log)
    guard.finish(report)
    return int(report.exit_code)


def _publish(report: PassReport, settings: Settings, log: logging.Logger) -> None:
    if settings.summary_file is not None:
        try:
            write_summary_file(report, settings.summary_file)
        except OSError as exc:
            log.error("No se pudo escribir SUMMARY_FILE %s: %s", settings.summary_file, exc.strerror or exc)
        else:
            log.info("Resumen escrito en %s", settings.summary_file)
    write_termination_message(report, settings.termination_message_path)


def _check(settings: Settings, log: logging.Logger, stop: SignalStop) -> int:
    runner = _runner(settings, log, stop)
    try:
        with stop.abort_on_signal():
            healthy, why = runner.wait_until_healthy()
    except Interrupted:
        return stop.exit_code()
    if not healthy:
        log.error("El backend no está disponible: %s", why)
        return ExitCode.BACKEND_UNAVAILABLE
    return ExitCode.OK


def _symbols(settings: Settings, log: logging.Logger, stop: SignalStop) -> int:
    runner = _runner(settings, log, stop)
    try:
        with stop.abort_on_signal():
            symbols = runner.resolve_symbols()
    except Interrupted:
        return stop.exit_code()
    if symbols is None:
        return ExitCode.BACKEND_UNAVAILABLE
    if not symbols:
        log.warning("No hay símbolos que sincronizar")
    for symbol in symbols:
        print(symbol)
    return ExitCode.OK


def _loop(settings: Settings, argv: list[str]) -> int:
    from coin_sync.loop import run_loop

    # Every flag given to `loop` applies to each pass too.
    passthrough = list(argv)
    passthrough.remove("loop")
    log = setup_logging(settings.log_level, settings.log_dir, settings.log_format)
    try:
        _banner(settings, log)
        return run_loop(settings, [sys.executable, "-m", "coin_sync", "run", *passthrough], log)
    finally:
        shutdown_logging()
