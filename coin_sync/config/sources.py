"""Where the raw texts of the settings come from: a YAML file, the environment and the
files of the `*_FILE` secrets.

coin_sync.config parses and validates them; all of these raise ConfigError, whose
message is one Spanish line naming the setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


class ConfigError(Exception):
    """A bad setting. str(error) is the one-line message shown to the user."""


def yaml_layer(path: Path, known: Mapping[str, bool]) -> dict[str, str]:
    """known: every setting name, True for those that take a list."""
    import yaml  # only needed when a config file is given

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"CONFIG_FILE: no se puede leer {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"CONFIG_FILE: {str(path)!r} no es texto UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (línea {where.line + 1})" if where is not None else ""
        raise ConfigError(f"CONFIG_FILE: YAML inválido en {str(path)!r}{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"CONFIG_FILE: {str(path)!r} debe contener un mapa CLAVE: valor")
    layer: dict[str, str] = {}
    for key, value in data.items():
        name = str(key)
        if name not in known:
            raise ConfigError(f"CONFIG_FILE: clave desconocida {name!r} en {str(path)!r}")
        if isinstance(value, list) and known[name]:
            layer[name] = ",".join(str(item) for item in value)
        elif isinstance(value, (dict, list)):
            raise ConfigError(f"{name}: valor inválido en {str(path)!r}: debe ser un valor simple")
        elif value is None:
            continue
        elif isinstance(value, bool):
            layer[name] = "true" if value else "false"
        else:
            layer[name] = str(value)
    return layer


def env_layer(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    # An empty variable counts as unset: compose files pass `VAR=${VAR:-}` through.
    layer = {name: environ[name] for name in names if environ.get(name, "").strip()}
    if "SHARD_INDEX" not in layer and environ.get("JOB_COMPLETION_INDEX", "").strip():
        # Set by Kubernetes in every pod of an Indexed Job.
        layer["SHARD_INDEX"] = environ["JOB_COMPLETION_INDEX"]
    return layer


def secret_or_file(value: str | None, path: Path | None, name: str) -> str | None:
    """A secret given either as `name` or in the file `name`_FILE (a mounted Secret),
    never both: the file's text, stripped and not empty, else the value."""
    if value and path is not None:
        raise ConfigError(f"{name}_FILE: no se puede usar junto con {name}")
    return value if path is None else read_secret(path, f"{name}_FILE")


def read_secret(path: Path, name: str) -> str:
    """The text of a `*_FILE` setting's file (a mounted Secret), stripped; never empty."""
    try:
        from_file = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "no es texto UTF-8"
        raise ConfigError(f"{name}: no se puede leer {str(path)!r}: {reason}") from None
    if not from_file:
        raise ConfigError(f"{name}: {str(path)!r} está vacío")
    return from_file
