"""Settings: one typed object built from defaults < YAML file < environment < flags.

Each setting is declared once, as a field of its group's dataclass: its default, its
environment name, its parser and its help text sit together. The command line, the YAML
loader, the banner and the docs all read the table derived from those declarations
(FIELDS), so a new setting cannot be half-wired. All validation happens here and fails
with ConfigError, whose message is one Spanish line naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from coin_sync import parsing as p

SPEC = "coin_sync.setting"


class ConfigError(Exception):
    """A bad setting. str(error) is the one-line message shown to the user."""


@dataclass(frozen=True)
class Spec:
    env: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


def setting(env: str, parse: Callable[[str], Any], help: str, default: Any, *, secret: bool = False) -> Any:
    return field(default=default, repr=not secret, metadata={SPEC: Spec(env, parse, help, secret)})


@dataclass(frozen=True)
class BackendSettings:
    url: str = setting("BACKEND_URL", p.http_url, "URL base del backend", "http://backend:8888")
    token: str | None = setting(
        "BACKEND_TOKEN", p.text, "token enviado como 'Authorization: Bearer'; nunca se registra", None, secret=True
    )
    token_file: Path | None = setting(
        "BACKEND_TOKEN_FILE", p.path, "fichero con el token (alternativa a BACKEND_TOKEN)", None
    )
    http_timeout: float = setting("HTTP_TIMEOUT", p.positive, "timeout de lectura de una petición, en segundos", 300.0)
    wait_seconds: float = setting(
        "BACKEND_WAIT_SECONDS",
        p.non_negative,
        "cuánto esperar a que /health responda sano antes de rendirse (salida 3)",
        60.0,
    )


@dataclass(frozen=True)
class RetrySettings:
    max_retries: int = setting(
        "MAX_RETRIES", p.non_negative_int, "reintentos tras el primer intento (máximo MAX_RETRIES+1 intentos)", 3
    )
    delay_seconds: float = setting(
        "RETRY_DELAY_SECONDS", p.non_negative, "primera espera entre reintentos; se duplica en cada uno", 10.0
    )
    max_delay_seconds: float = setting(
        "RETRY_MAX_DELAY_SECONDS", p.non_negative, "tope de una espera entre reintentos", 60.0
    )


@dataclass(frozen=True)
class SyncSettings:
    symbols: tuple[str, ...] = setting(
        "SYMBOLS_TO_SYNC", p.symbol_list, "símbolos separados por comas; vacío = todos los de /api/symbols", ()
    )
    concurrency: int | str = setting(
        "SYNC_CONCURRENCY",
        p.concurrency_or_auto,
        "sincronizaciones en curso a la vez: auto (adaptativa, hasta SYNC_CONCURRENCY_MAX) o un número fijo "
        "(1 = secuencial)",
        "auto",
    )
    concurrency_max: int = setting(
        "SYNC_CONCURRENCY_MAX", p.concurrency, "con SYNC_CONCURRENCY=auto, el máximo en curso a la vez", 64
    )
    deadline_seconds: float = setting(
        "PASS_DEADLINE_SECONDS", p.non_negative, "0 = sin límite; si no, deja de despachar tras ese tiempo", 0.0
    )
    budget_seconds: float = setting(
        "PASS_BUDGET_SECONDS",
        p.non_negative,
        "0 = sin presupuesto; si no, no programa reintentos que acaben después y deja de despachar al agotarlo",
        0.0,
    )
    shutdown_grace_seconds: float = setting(
        "SHUTDOWN_GRACE_SECONDS",
        p.non_negative,
        "tras SIGTERM/SIGINT, cuánto pueden terminar las sincronizaciones en curso",
        20.0,
    )
    interval_seconds: float = setting(
        "SYNC_INTERVAL_SECONDS", p.positive, "solo para 'loop': segundos entre el inicio de dos pasadas", 60.0
    )
    pass_number: int = setting("SYNC_PASS_NUMBER", p.positive_int, "el N de las líneas INICIO/FIN", 1)
    shard_count: int = setting("SHARD_COUNT", p.positive_int, "número de fragmentos (shards)", 1)
    shard_index: int = setting(
        "SHARD_INDEX", p.non_negative_int, "fragmento de esta pasada (por defecto JOB_COMPLETION_INDEX o 0)", 0
    )

    @property
    def max_in_flight(self) -> int:
        """The most syncs ever in flight: the fixed number, or the adaptive maximum."""
        return self.concurrency if isinstance(self.concurrency, int) else self.concurrency_max


@dataclass(frozen=True)
class LogSettings:
    level: str = setting("LOG_LEVEL", p.choice(*p.LOG_LEVELS, upper=True), "nivel de log", "INFO")
    dir: Path = setting("LOG_DIR", p.path, "carpeta de los ficheros de log diarios", Path("/logs"))
    format: str = setting(
        "LOG_FORMAT", p.choice("text", "json"), "formato de stdout: text o json (los ficheros siempre en texto)", "text"
    )
    summary_file: Path | None = setting("SUMMARY_FILE", p.path, "escribe el resumen de la pasada en JSON ahí", None)
    termination_message_path: Path = setting(
        "TERMINATION_MESSAGE_PATH",
        p.path,
        "resumen breve para 'kubectl describe' (si existe y se puede escribir)",
        Path("/dev/termination-log"),
    )


@dataclass(frozen=True)
class KubernetesSettings:
    integration: str = setting(
        "K8S_INTEGRATION",
        p.choice("auto", "on", "off"),
        "integración con Kubernetes: auto (dentro de un clúster), on, off",
        "auto",
    )
    lock_required: bool = setting(
        "K8S_LOCK_REQUIRED", p.boolean, "true: sin acceso a la API de Kubernetes la pasada termina con salida 3", False
    )
    lease_name: str = setting(
        "LEASE_NAME", p.text, "nombre del Lease usado como cerrojo de la pasada", "coin-sync-lock"
    )
    lease_duration_seconds: int = setting(
        "LEASE_DURATION_SECONDS", p.positive_int, "duración del Lease, en segundos", 60
    )
    status_configmap: str = setting(
        "STATUS_CONFIGMAP", p.text, "ConfigMap con el estado de la última pasada", "coin-sync-status"
    )


@dataclass(frozen=True)
class Settings:
    backend: BackendSettings = field(default_factory=BackendSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    log: LogSettings = field(default_factory=LogSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    config_file: Path | None = None

    def describe(self) -> list[tuple[str, str]]:
        """(ENV_NAME, shown value) pairs for the banner; secrets masked."""
        shown = []
        for f in FIELDS:
            value = f.value(self)
            if f.secret:
                text = "****" if value else "(no definido)"
            elif f.env == "BACKEND_URL":
                text = p.redact_url(value)
            elif isinstance(value, tuple):
                text = ",".join(value) or "(todos)"
            elif value is None:
                text = "(no definido)"
            else:
                text = str(value)
            shown.append((f.env, text))
        return shown


@dataclass(frozen=True)
class Field:
    """One setting as the outside world names it (env, flag) and where it lives."""

    env: str
    group: str
    name: str
    spec: Spec

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")

    @property
    def help(self) -> str:
        return self.spec.help

    @property
    def secret(self) -> bool:
        return self.spec.secret

    def value(self, settings: Settings) -> Any:
        return getattr(getattr(settings, self.group), self.name)

    def default(self) -> Any:
        return self.value(Settings())


def _fields() -> Iterator[Field]:
    for group in fields(Settings):
        if not isinstance(group.default_factory, type):
            continue
        for f in fields(group.default_factory):
            yield Field(f.metadata[SPEC].env, group.name, f.name, f.metadata[SPEC])


FIELDS: tuple[Field, ...] = tuple(_fields())
FIELDS_BY_ENV = {f.env: f for f in FIELDS}


def setting_names() -> list[str]:
    """Every settable name, for docs and tests."""
    return [f.env for f in FIELDS]


def settings_from(values: Mapping[str, Any], config_file: Path | None = None) -> Settings:
    """Settings from typed values keyed by ENV name; the rest keep their defaults."""
    groups: dict[str, dict[str, Any]] = {}
    for env, value in values.items():
        f = FIELDS_BY_ENV[env]
        groups.setdefault(f.group, {})[f.name] = value
    base = Settings()
    return replace(
        base,
        config_file=config_file,
        **{group: replace(getattr(base, group), **kw) for group, kw in groups.items()},
    )


# --- layers ------------------------------------------------------------------------------


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
        if isinstance(value, list) and FIELDS_BY_ENV[name].spec.parse is p.symbol_list:
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

    values: dict[str, Any] = {}
    for name, text in raw.items():
        spec = FIELDS_BY_ENV[name].spec
        try:
            values[name] = spec.parse(text)
        except ValueError as exc:
            shown = "****" if spec.secret else repr(text)
            raise ConfigError(f"{name}: valor inválido {shown}: {exc}") from None
    return _validated(settings_from(values, config_path))


def _validated(settings: Settings) -> Settings:
    sync, backend = settings.sync, settings.backend
    if sync.shard_index >= sync.shard_count:
        raise ConfigError(
            f"SHARD_INDEX: valor inválido {sync.shard_index}: debe ser menor que SHARD_COUNT ({sync.shard_count})"
        )
    if backend.token and backend.token_file:
        raise ConfigError("BACKEND_TOKEN_FILE: no se puede usar junto con BACKEND_TOKEN")
    if backend.token_file is not None:
        backend = replace(backend, token=_read_token(backend.token_file))
        settings = replace(settings, backend=backend)
    token = backend.token
    if token and not all("!" <= c <= "~" for c in token):
        # It travels in an HTTP header: visible ASCII only (no spaces, newlines or
        # letters outside latin-1 that http.client cannot encode).
        raise ConfigError("BACKEND_TOKEN: valor inválido: solo admite caracteres ASCII visibles, sin espacios")
    return settings


def _read_token(path: Path) -> str:
    try:
        from_file = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "no es texto UTF-8"
        raise ConfigError(f"BACKEND_TOKEN_FILE: no se puede leer {str(path)!r}: {reason}") from None
    if not from_file:
        raise ConfigError(f"BACKEND_TOKEN_FILE: {str(path)!r} está vacío")
    return from_file
