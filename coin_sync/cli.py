"""Command line: `coin-sync [run|check|symbols|loop|config] [options]`.

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
from coin_sync.observe.banner import config_text, log_banner
from coin_sync.observe.logs import setup_logging, shutdown_logging
from coin_sync.outcome import ExitCode
from coin_sync.stop import Stop
from coin_sync.usage import COMMAND_SETTINGS, ArgumentParser, epilog, settings_flags

COMMANDS = {
    "run": "una pasada de sincronización completa (por defecto)",
    "check": "solo la comprobación de salud del backend: 0 sano, 3 no disponible",
    "symbols": "imprime los símbolos que sincronizaría esta pasada, sin sincronizar",
    "loop": "una pasada cada SYNC_INTERVAL_SECONDS, cada una en un proceso nuevo (docker compose)",
    "config": "imprime la configuración efectiva, todos los ajustes (secretos ocultos), y termina",
}


def build_parser() -> argparse.ArgumentParser:
    every_flag = settings_flags(None)
    parser = ArgumentParser(
        prog="coin-sync",
        usage="%(prog)s [{" + ",".join(COMMANDS) + "}] [opciones]",
        description="Sincroniza las velas de 1 minuto de cada símbolo del backend: una pasada y un código de salida.",
        epilog=epilog("run"),
        parents=[every_flag],
    )
    parser.add_argument(
        "--version", action="version", version=f"coin-sync {__version__}", help="muestra la versión y termina"
    )
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}", title="órdenes")
    for name, help_text in COMMANDS.items():
        names = COMMAND_SETTINGS.get(name)
        commands.add_parser(
            name,
            help=help_text,
            prog=f"coin-sync {name}",
            usage="%(prog)s [opciones]",
            description=help_text,
            epilog=epilog(name),
            parents=[every_flag if names is None else settings_flags(names)],
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
    if command == "config":
        print(config_text(settings), end="")
        return ExitCode.OK
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
        if command == "run" and not getattr(args, "no_banner", False):
            log_banner(settings, log)
        return int(handlers[command](settings, log, stop))
    finally:
        restore()
        shutdown_logging()


def _loop(settings: Settings, argv: list[str]) -> int:
    from coin_sync.loop.wrapper import run_loop

    # Every flag given to `loop` applies to each pass too.
    passthrough = list(argv)
    passthrough.remove("loop")
    log = setup_logging(settings.log.level, settings.log.dir, settings.log.format)
    try:
        log_banner(settings, log)
        return run_loop(settings, [sys.executable, "-m", "coin_sync", "run", "--no-banner", *passthrough], log)
    finally:
        shutdown_logging()
