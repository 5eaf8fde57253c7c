"""The command line's words: each command's settings and exit codes for its --help, and
argparse in Spanish: its own words (usage:, error:, the -h line, the section titles) and
its error messages, which it builds in English through gettext. A small mapping rather
than a gettext catalogue: these are the only sentences a user can meet."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

from coin_sync.config.settings import FIELDS

# argparse's error messages (Python 3.11), English pattern -> Spanish template.
MESSAGES = [
    (r"the following arguments are required: (.*)", r"faltan los argumentos obligatorios: \1"),
    (
        r"argument (.+?): invalid choice: (.+?) \(choose from (.*)\)",
        r"argumento \1: opción inválida: \2 (elige entre \3)",
    ),
    (r"argument (.+?): expected one argument", r"argumento \1: necesita un valor"),
    (r"argument (.+?): expected at most one argument", r"argumento \1: admite como mucho un valor"),
    (r"argument (.+?): expected at least one argument", r"argumento \1: necesita al menos un valor"),
    (r"argument (.+?): ignored explicit argument (.*)", r"argumento \1: no admite el valor \2"),
    (r"argument (.+?): not allowed with argument (.*)", r"argumento \1: no se puede usar junto con \2"),
    (r"argument (.+?): (.*)", r"argumento \1: \2"),
    (r"unrecognized arguments: (.*)", r"argumentos no reconocidos: \1"),
    (r"ambiguous option: (.+?) could match (.*)", r"opción ambigua: \1 puede ser \2"),
    (r"one of the arguments (.*) is required", r"se necesita uno de los argumentos \1"),
]


def spanish(message: str) -> str:
    for pattern, template in MESSAGES:
        if re.fullmatch(pattern, message, flags=re.DOTALL):
            return re.sub(pattern, template, message, count=1, flags=re.DOTALL)
    return message


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, actions, groups, "uso: " if prefix is None else prefix)


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that speaks Spanish: -h, section titles, usage and errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        add_help = kwargs.pop("add_help", True)
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs["add_help"] = False  # ours below, in Spanish
        super().__init__(*args, **kwargs)
        self._positionals.title = "argumentos"
        self._optionals.title = "opciones"
        if add_help:
            self.add_argument("-h", "--help", action="help", help="muestra esta ayuda y termina")

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {spanish(message)}\n")


# What each exit code means, per command that can end with it.
EXIT_CODES = {
    "run": [
        ("0", "todos los símbolos sincronizados (o nada que sincronizar, u otra pasada en curso: lock_held)"),
        (
            "1",
            "uno o más símbolos fallaron u omitidos por PASS_DEADLINE_SECONDS o PASS_BUDGET_SECONDS\n"
            "(con FAIL_ON_STALE=true, también si alguno quedó desactualizado;\n"
            "con FAIL_ON_GAPS=true, si alguno tiene huecos: minutos sin datos)",
        ),
        (
            "2",
            "configuración o uso incorrectos\n(en 'loop', también si no puede servir /metrics en METRICS_PORT: "
            "puerto ocupado)",
        ),
        ("3", "backend no disponible (nunca sano, lista de símbolos inutilizable o caído a mitad de pasada)"),
        ("4", "el exchange limitó o bloqueó al backend (429/418): pasada detenida, el resto omitido"),
        ("130", "interrumpido por SIGINT"),
        ("143", "interrumpido por SIGTERM"),
    ],
    "check": [
        ("0", "backend sano"),
        ("2", "configuración o uso incorrectos"),
        ("3", "backend no disponible en BACKEND_WAIT_SECONDS"),
        ("130", "interrumpido por SIGINT"),
        ("143", "interrumpido por SIGTERM"),
    ],
    "symbols": [
        ("0", "lista impresa (una línea por símbolo; puede estar vacía)"),
        ("2", "configuración o uso incorrectos"),
        ("3", "backend no disponible en BACKEND_WAIT_SECONDS o lista de símbolos inutilizable"),
        ("130", "interrumpido por SIGINT"),
        ("143", "interrumpido por SIGTERM"),
    ],
    "config": [("0", "configuración impresa"), ("2", "configuración o uso incorrectos")],
}
# The settings `check` and `symbols` read; every other command takes them all.
CHECK_SETTINGS = {"BACKEND_URL", "BACKEND_TOKEN", "BACKEND_TOKEN_FILE", "BACKEND_WAIT_SECONDS"}
CHECK_SETTINGS |= {"LOG_LEVEL", "LOG_DIR", "LOG_FORMAT"}
SYMBOLS_SETTINGS = CHECK_SETTINGS | {"HTTP_TIMEOUT", "MAX_RETRIES", "RETRY_DELAY_SECONDS", "RETRY_MAX_DELAY_SECONDS"}
SYMBOLS_SETTINGS |= {"SYMBOLS_TO_SYNC", "SYMBOLS_INCLUDE", "SYMBOLS_EXCLUDE", "SHARD_COUNT", "SHARD_INDEX"}
COMMAND_SETTINGS = {"check": CHECK_SETTINGS, "symbols": SYMBOLS_SETTINGS}


def epilog(command: str) -> str:
    rows = "\n".join(
        f"  {code:<5}{text.replace(chr(10), chr(10) + ' ' * 7)}"
        for code, text in EXIT_CODES.get(command, EXIT_CODES["run"])
    )
    return (
        f"códigos de salida:\n{rows}\n\n"
        "Cada opción equivale a la variable de entorno del mismo nombre (--http-timeout = HTTP_TIMEOUT).\n"
        "Prioridad: valores por defecto < fichero YAML (CONFIG_FILE / --config) < entorno < opciones."
    )


def _shown_default(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_flags(names: set[str] | None) -> ArgumentParser:
    """The settings' flags (only `names`, when given). SUPPRESS: an option not given
    leaves no attribute at all, so the subcommand's parser cannot overwrite a flag given
    before the command with its own default."""
    flags = ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = flags.add_argument_group("configuración")
    group.add_argument(
        "--config", metavar="FICHERO", help="fichero YAML con las mismas claves que el entorno (CONFIG_FILE)"
    )
    for f in FIELDS:
        if names is not None and f.env not in names:
            continue
        default = f.default()
        # A help text that already says its default (SHARD_INDEX) is not told it twice.
        quiet = f.secret or default in (None, "", ()) or "por defecto" in f.help
        shown = "" if quiet else f" (por defecto: {_shown_default(default)})"
        group.add_argument(f.flag, dest=f.env, metavar=f.env, help=f"{f.help}{shown}")
    # Given by `loop` to its passes: the loop showed the settings once already.
    flags.add_argument("--no-banner", action="store_true", help=argparse.SUPPRESS)
    return flags
