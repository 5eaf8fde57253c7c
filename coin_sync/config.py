"""Settings: one typed object built from defaults < YAML file < environment < flags.

Every setting is described once in FIELDS (env name, parser, default, help); the
command line, the YAML loader, the banner and the docs all read that table, so a new
setting cannot be half-wired. All validation happens here and fails with ConfigError,
whose message is one Spanish line naming the setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Far above any sane value (115 days in seconds), far below what breaks timers.
MAX_NUMBER = 10_000_000
MAX_CONCURRENCY = 1024


class ConfigError(Exception):
    """A bad setting. str(error) is the one-line message shown to the user."""


# --- parsers: raw text -> typed value, raising ValueError with a Spanish reason ----------


def _numeric(
    kind: type[int] | type[float],
    minimum: float,
    *,
    exclusive: bool = False,
    maximum: float = MAX_NUMBER,
) -> Callable[[str], Any]:
    """A parser for numbers of `kind` in [minimum, maximum] ((minimum, ...] if exclusive)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text.strip())
        except ValueError:
            raise ValueError("debe ser un número entero" if kind is int else "debe ser un número") from None
        if not math.isfinite(value):
            raise ValueError("debe ser un número finito")
        if exclusive and value <= minimum:
            raise ValueError(f"debe ser mayor que {minimum:g}")
        if value < minimum:
            raise ValueError("no puede ser negativo" if minimum == 0 else f"debe ser al menos {minimum:g}")
        if value > maximum:
            raise ValueError(f"es demasiado grande (máximo {maximum:g})")
        return value

    return parse


_non_negative = _numeric(float, 0)
_positive = _numeric(float, 0, exclusive=True)
_non_negative_int = _numeric(int, 0)
_positive_int = _numeric(int, 1)
_concurrency = _numeric(int, 1, maximum=MAX_CONCURRENCY)


def _http_url(text: str) -> str:
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("debe ser una URL http:// o https:// con host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError("tiene un puerto inválido") from None
    return url


def _choice(*options: str, upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in options:
            raise ValueError("debe ser uno de: " + ", ".join(options))
        return value

    return parse


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("debe ser true o false")


def _text(text: str) -> str:
    return text.strip()


def _path(text: str) -> Path:
    return Path(text.strip())


def _symbol_list(text: str) -> tuple[str, ...]:
    # Kept raw, empty entries included: normalisation warns about bad names, and
    # warnings need logging, which is not set up yet while settings load.
    return tuple(text.split(",")) if text.strip() else ()


def redact_url(url: str) -> str:
    """The URL without any user:password, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"****@{host}", parts.path, parts.query, parts.fragment))


# --- the table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    env: str
    attr: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    in_banner: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")


FIELDS: tuple[Field, ...] = (
    Field("BACKEND_URL", "backend_url", _http_url, "URL base del backend"),
    Field(
        "SYMBOLS_TO_SYNC",
        "symbols_to_sync",
        _symbol_list,
        "símbolos separados por comas; vacío = todos los de /api/symbols",
    ),
    Field("SYNC_CONCURRENCY", "sync_concurrency", _concurrency, "sincronizaciones en curso a la vez (1 = secuencial)"),
    Field("HTTP_TIMEOUT", "http_timeout", _positive, "timeout de lectura de una petición, en segundos"),
    Field(
        "MAX_RETRIES",
        "max_retries",
        _non_negative_int,
        "reintentos tras el primer intento (máximo MAX_RETRIES+1 intentos)",
    ),
    Field(
        "RETRY_DELAY_SECONDS",
        "retry_delay_seconds",
        _non_negative,
        "primera espera entre reintentos; se duplica en cada uno",
    ),
    Field("RETRY_MAX_DELAY_SECONDS", "retry_max_delay_seconds", _non_negative, "tope de una espera entre reintentos"),
    Field(
        "BACKEND_WAIT_SECONDS",
        "backend_wait_seconds",
        _non_negative,
        "cuánto esperar a que /health responda sano antes de rendirse (salida 3)",
    ),
    Field(
        "PASS_DEADLINE_SECONDS",
        "pass_deadline_seconds",
        _non_negative,
        "0 = sin límite; si no, deja de despachar tras ese tiempo",
    ),
    Field(
        "SHUTDOWN_GRACE_SECONDS",
        "shutdown_grace_seconds",
        _non_negative,
        "tras SIGTERM/SIGINT, cuánto pueden terminar las sincronizaciones en curso",
    ),
    Field(
        "SYNC_INTERVAL_SECONDS",
        "sync_interval_seconds",
        _positive,
        "solo para 'loop': segundos entre el inicio de dos pasadas",
    ),
    Field("SYNC_PASS_NUMBER", "sync_pass_number", _positive_int, "el N de las líneas INICIO/FIN"),
    Field(
        "BACKEND_TOKEN",
        "backend_token",
        _text,
        "token enviado como 'Authorization: Bearer'; nunca se registra",
        secret=True,
    ),
    Field("BACKEND_TOKEN_FILE", "backend_token_file", _path, "fichero con el token (alternativa a BACKEND_TOKEN)"),
    Field("SHARD_COUNT", "shard_count", _positive_int, "número de fragmentos (shards)"),
    Field(
        "SHARD_INDEX",
        "shard_index",
        _non_negative_int,
        "fragmento de esta pasada (por defecto JOB_COMPLETION_INDEX o 0)",
    ),
    Field("LOG_LEVEL", "log_level", _choice(*LOG_LEVELS, upper=True), "nivel de log"),
    Field("LOG_DIR", "log_dir", _path, "carpeta de los ficheros de log diarios"),
    Field(
        "LOG_FORMAT",
        "log_format",
        _choice("text", "json"),
        "formato de stdout: text o json (los ficheros siempre en texto)",
    ),
    Field("SUMMARY_FILE", "summary_file", _path, "escribe el resumen de la pasada en JSON ahí"),
    Field(
        "TERMINATION_MESSAGE_PATH",
        "termination_message_path",
        _path,
        "resumen breve para 'kubectl describe' (si existe y se puede escribir)",
    ),
    Field(
        "K8S_INTEGRATION",
        "k8s_integration",
        _choice("auto", "on", "off"),
        "integración con Kubernetes: auto (dentro de un clúster), on, off",
    ),
    Field(
        "K8S_LOCK_REQUIRED",
        "k8s_lock_required",
        _boolean,
        "true: sin acceso a la API de Kubernetes la pasada termina con salida 3",
    ),
    Field("LEASE_NAME", "lease_name", _text, "nombre del Lease usado como cerrojo de la pasada"),
    Field("LEASE_DURATION_SECONDS", "lease_duration_seconds", _positive_int, "duración del Lease, en segundos"),
    Field("STATUS_CONFIGMAP", "status_configmap", _text, "ConfigMap con el estado de la última pasada"),
    Field("POD_NAME", "pod_name", _text, "nombre del pod (API downward)", in_banner=False),
    Field("POD_NAMESPACE", "pod_namespace", _text, "namespace del pod (API downward)", in_banner=False),
    Field("JOB_NAME", "job_name", _text, "nombre del Job propietario (API downward)", in_banner=False),
    Field("JOB_UID", "job_uid", _text, "uid del Job propietario (API downward)", in_banner=False),
    Field("POD_UID", "pod_uid", _text, "uid del pod (API downward)", in_banner=False),
)

FIELDS_BY_ENV = {f.env: f for f in FIELDS}


@dataclass(frozen=True)
class Settings:
    backend_url: str = "http://backend:8888"
    symbols_to_sync: tuple[str, ...] = ()
    sync_concurrency: int = 8
    http_timeout: float = 300.0
    max_retries: int = 3
    retry_delay_seconds: float = 10.0
    retry_max_delay_seconds: float = 60.0
    backend_wait_seconds: float = 60.0
    pass_deadline_seconds: float = 0.0
    shutdown_grace_seconds: float = 20.0
    sync_interval_seconds: float = 60.0
    sync_pass_number: int = 1
    backend_token: str | None = field(default=None, repr=False)
    backend_token_file: Path | None = None
    shard_count: int = 1
    shard_index: int = 0
    log_level: str = "INFO"
    log_dir: Path = Path("/logs")
    log_format: str = "text"
    summary_file: Path | None = None
    termination_message_path: Path = Path("/dev/termination-log")
    k8s_integration: str = "auto"
    k8s_lock_required: bool = False
    lease_name: str = "coin-sync-lock"
    lease_duration_seconds: int = 60
    status_configmap: str = "coin-sync-status"
    pod_name: str = ""
    pod_namespace: str = ""
    job_name: str = ""
    job_uid: str = ""
    pod_uid: str = ""
    config_file: Path | None = None

    def describe(self) -> list[tuple[str, str]]:
        """(ENV_NAME, shown value) pairs for the banner; secrets masked."""
        shown = []
        for f in FIELDS:
            if not f.in_banner:
                continue
            value = getattr(self, f.attr)
            if f.secret:
                text = "****" if value else "(no definido)"
            elif f.attr == "backend_url":
                text = redact_url(value)
            elif isinstance(value, tuple):
                text = ",".join(value) or "(todos)"
            elif value is None:
                text = "(no definido)"
            else:
                text = str(value)
            shown.append((f.env, text))
        return shown


def _yaml_layer(path: Path) -> dict[str, str]:
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
        if name not in FIELDS_BY_ENV:
            raise ConfigError(f"CONFIG_FILE: clave desconocida {name!r} en {str(path)!r}")
        if isinstance(value, list) and name == "SYMBOLS_TO_SYNC":
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


def _env_layer(environ: Mapping[str, str]) -> dict[str, str]:
    # An empty variable counts as unset: compose files pass `VAR=${VAR:-}` through.
    layer = {f.env: environ[f.env] for f in FIELDS if environ.get(f.env, "").strip()}
    if "SHARD_INDEX" not in layer and environ.get("JOB_COMPLETION_INDEX", "").strip():
        # Set by Kubernetes in every pod of an Indexed Job.
        layer["SHARD_INDEX"] = environ["JOB_COMPLETION_INDEX"]
    return layer


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build and validate the settings.

    flags maps ENV names (plus CONFIG_FILE) to the command-line values, None when the
    flag was not given.
    """
    environ = os.environ if environ is None else environ
    given_flags = {k: v for k, v in (flags or {}).items() if v is not None}

    config_path_text = given_flags.pop("CONFIG_FILE", None) or environ.get("CONFIG_FILE", "").strip()
    config_path = Path(config_path_text) if config_path_text else None

    raw: dict[str, str] = {}
    if config_path is not None:
        raw.update(_yaml_layer(config_path))
    raw.update(_env_layer(environ))
    raw.update(given_flags)

    values: dict[str, Any] = {"config_file": config_path}
    for name, text in raw.items():
        f = FIELDS_BY_ENV[name]
        try:
            values[f.attr] = f.parse(text)
        except ValueError as exc:
            shown = "****" if f.secret else repr(text)
            raise ConfigError(f"{name}: valor inválido {shown}: {exc}") from None
    settings = Settings(**values)
    return _validated(settings)


def _validated(settings: Settings) -> Settings:
    if settings.shard_index >= settings.shard_count:
        raise ConfigError(
            f"SHARD_INDEX: valor inválido {settings.shard_index}: debe ser menor que "
            f"SHARD_COUNT ({settings.shard_count})"
        )
    if settings.backend_token and settings.backend_token_file:
        raise ConfigError("BACKEND_TOKEN_FILE: no se puede usar junto con BACKEND_TOKEN")
    if settings.backend_token_file is not None:
        path = settings.backend_token_file
        try:
            from_file = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "no es texto UTF-8"
            raise ConfigError(f"BACKEND_TOKEN_FILE: no se puede leer {str(path)!r}: {reason}") from None
        if not from_file:
            raise ConfigError(f"BACKEND_TOKEN_FILE: {str(path)!r} está vacío")
        settings = replace(settings, backend_token=from_file)
    token = settings.backend_token
    if token and not all("!" <= c <= "~" for c in token):
        # It travels in an HTTP header: visible ASCII only (no spaces, newlines or
        # letters outside latin-1 that http.client cannot encode).
        raise ConfigError("BACKEND_TOKEN: valor inválido: solo admite caracteres ASCII visibles, sin espacios")
    return settings


def setting_names() -> list[str]:
    """Every settable name, for docs and tests."""
    return [f.env for f in FIELDS]
