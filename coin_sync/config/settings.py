"""The settings: what each one is, declared once.

Each setting is a field of its group's dataclass (default, env name, parser, help); the
command line, the YAML loader, the banner and the docs read the table derived from them
(FIELDS), so a new setting cannot be half-wired. Reading and validation: coin_sync.config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from coin_sync.config import parsing as p

SPEC = "coin_sync.setting"


@dataclass(frozen=True)
class Spec:
    env: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


def setting(env: str, parse: Callable[[str], Any], help: str, default: Any, *, secret: bool = False) -> Any:
    """default None on a field whose type has no None: derived from other settings when not
    given (coin_sync.config.load resolves it), so a loaded setting is never None there."""
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
        "SYMBOLS_TO_SYNC", p.symbol_list, "exactamente estos símbolos, por comas (siembra); vacío = /api/symbols", ()
    )
    include: tuple[str, ...] = setting(
        "SYMBOLS_INCLUDE", p.symbol_list, "símbolos sincronizados siempre, además de /api/symbols (monedas nuevas)", ()
    )
    exclude: tuple[str, ...] = setting(
        "SYMBOLS_EXCLUDE", p.symbol_list, "símbolos que nunca se sincronizan (gana a SYMBOLS_INCLUDE)", ()
    )
    ambiguous_hold_seconds: float = setting(
        "AMBIGUOUS_HOLD_SECONDS", p.non_negative, "tras timeout/504, segundos sin reenviar (2 × HTTP_TIMEOUT)", None
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
    backfill_concurrency: int = setting(
        "BACKFILL_CONCURRENCY", p.concurrency, "backfills (monedas nuevas o muy atrasadas) a la vez, en su carril", 2
    )
    deadline_seconds: float = setting(
        "PASS_DEADLINE_SECONDS", p.non_negative, "0 = sin límite; si no, deja de despachar tras ese tiempo", 0.0
    )
    budget_seconds: float | None = setting(
        "PASS_BUDGET_SECONDS",
        p.non_negative,
        "no programa reintentos que acaben después y deja de despachar al agotarlo; 0 = sin presupuesto; "
        "sin definir: 5/6 del intervalo de SYNC_SCHEDULE ('loop': de SYNC_INTERVAL_SECONDS), si no ninguno",
        None,
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
    schedule: str | None = setting(
        "SYNC_SCHEDULE",
        p.text,
        "programación cron de las pasadas (la pone el chart): sin PASS_BUDGET_SECONDS, el presupuesto es 5/6 "
        "de su intervalo",
        None,
    )
    pass_number: int = setting("SYNC_PASS_NUMBER", p.positive_int, "el N de las líneas INICIO/FIN", 1)
    shard_count: int = setting("SHARD_COUNT", p.positive_int, "número de fragmentos (shards)", 1)
    shard_index: int = setting(
        "SHARD_INDEX", p.non_negative_int, "fragmento de esta pasada (por defecto JOB_COMPLETION_INDEX o 0)", 0
    )
    stale_after_seconds: float = setting(
        "STALE_AFTER_SECONDS",
        p.positive,
        "un símbolo cuyo último registro lleva más retraso que esto (en segundos) está desactualizado",
        180.0,
    )
    fail_on_stale: bool = setting(
        "FAIL_ON_STALE", p.boolean, "true: una pasada que deja algún símbolo desactualizado sale con 1", False
    )
    fail_on_gaps: bool = setting(
        "FAIL_ON_GAPS",
        p.boolean,
        "true: una pasada en la que algún símbolo tiene huecos (minutos sin datos) sale con 1",
        False,
    )
    exchange_weight_per_minute: int = setting(
        "EXCHANGE_WEIGHT_PER_MINUTE", p.positive_int, "peso de Binance por minuto; el backfill que no cabe espera", 4800
    )

    @property
    def max_in_flight(self) -> int:
        """The most syncs ever in flight: the fixed number, or the adaptive maximum."""
        return self.concurrency if isinstance(self.concurrency, int) else self.concurrency_max

    @property
    def connections(self) -> int:
        """The most requests ever in flight at once: catch-ups plus the backfill lane."""
        return self.max_in_flight + self.backfill_concurrency


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
    lock_file: Path = setting(
        "LOCK_FILE", p.path_or_off, "cerrojo fcntl sin Kubernetes (LOG_DIR/.coin-sync.lock); off = ninguno", None
    )
    state_file: Path = setting(
        "STATE_FILE", p.path, "sincronizaciones ambiguas entre pasadas (LOG_DIR/.coin-sync-state.json)", None
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
        "STATUS_CONFIGMAP", p.text, "ConfigMap con la última pasada y las sincronizaciones ambiguas", "coin-sync-status"
    )


@dataclass(frozen=True)
class MetricsSettings:
    pushgateway_url: str | None = setting(
        "METRICS_PUSHGATEWAY_URL", p.http_url, "envía las métricas de cada pasada a ese Pushgateway (HTTP POST)", None
    )
    job: str = setting("METRICS_JOB", p.text, "etiqueta 'job' de la agrupación en el Pushgateway", "coin-sync")
    username: str | None = setting(
        "METRICS_PUSHGATEWAY_USERNAME", p.text, "usuario de autenticación básica del Pushgateway", None
    )
    password: str | None = setting(
        "METRICS_PUSHGATEWAY_PASSWORD",
        p.text,
        "contraseña de autenticación básica del Pushgateway; nunca se registra",
        None,
        secret=True,
    )
    password_file: Path | None = setting(
        "METRICS_PUSHGATEWAY_PASSWORD_FILE", p.path, "fichero con esa contraseña (alternativa a la variable)", None
    )
    textfile: Path | None = setting(
        "METRICS_TEXTFILE",
        p.path,
        "escribe las métricas en ese fichero .prom para el textfile collector de node_exporter",
        None,
    )
    port: int | None = setting("METRICS_PORT", p.port, "solo para 'loop': sirve /metrics en ese puerto", None)
    address: str = setting("METRICS_ADDRESS", p.host, "solo para 'loop': dirección de METRICS_PORT", "0.0.0.0")

    @property
    def enabled(self) -> bool:
        return self.pushgateway_url is not None or self.textfile is not None


@dataclass(frozen=True)
class Settings:
    backend: BackendSettings = field(default_factory=BackendSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    log: LogSettings = field(default_factory=LogSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    config_file: Path | None = None


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
