"""Command line: `coin-sync [run|check|symbols|loop] [options]`.

main(argv) returns the exit code instead of exiting, so tests can call it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from coin_sync import __version__
from coin_sync.config.load import load_settings
from coin_sync.config.settings import FIELDS, Settings
from coin_sync.config.sources import ConfigError
from coin_sync.observe.logs import setup_logging, shutdown_logging
from coin_sync.outcome import ExitCode
from coin_sync.stop import Stop

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
        from coin_sync import session  # only now: `--help` and config errors do not pay for requests/backoff

        handlers: dict[str, Callable[[Settings, logging.Logger, Stop], int]] = {
            "run": session.run_guarded,
            "check": session.check,
            "symbols": session.symbols,
        }
        if command == "run":
            _banner(settings, log)
        return int(handlers[command](settings, log, stop))
    finally:
        restore()
        shutdown_logging()


def _banner(settings: Settings, log: logging.Logger) -> None:
    log.info("=" * 60)
    log.info("SERVICIO DE SINCRONIZACIÓN AUTOMÁTICA (coin-sync %s)", __version__)
    log.info("=" * 60)
    if settings.config_file is not None:
        log.info("  CONFIG_FILE: %s", settings.config_file)
    for name, value in settings.describe():
        log.info("  %s: %s", name, value)


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
