"""Settings, built once: defaults < YAML file < environment < flags, validated here.

What each setting is lives in coin_sync.config.settings; this module reads the layers
(coin_sync.config.sources), parses each value and validates the whole in one place. Every
failure is a ConfigError, whose message is one Spanish line naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Set
from dataclasses import replace
from pathlib import Path
from typing import Any

from coin_sync.config import parsing as p
from coin_sync.config.schedule import interval_seconds, pass_budget
from coin_sync.config.settings import FIELDS, FIELDS_BY_ENV, MetricsSettings, Settings
from coin_sync.config.sources import ConfigError, env_layer, secret_or_file, yaml_layer
from coin_sync.config.table import settings_from


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
        raw.update(yaml_layer(config_path, {f.env: f.spec.parse is p.symbol_list for f in FIELDS}))
    raw.update(env_layer(environ, [f.env for f in FIELDS]))
    raw.update(given_flags)

    values: dict[str, Any] = {}
    for name, text in raw.items():
        spec = FIELDS_BY_ENV[name].spec
        try:
            values[name] = spec.parse(text)
        except ValueError as exc:
            shown = "****" if spec.secret else repr(p.redact_credentials(text))
            raise ConfigError(f"{name}: valor inválido {shown}: {exc}") from None
    return validated(settings_from(values, config_path), given=set(values))


def validated(settings: Settings, given: Set[str] = frozenset()) -> Settings:
    """The checks across settings and the defaults that depend on others (pure but for
    the `*_FILE` secrets it reads). given: the settings set explicitly, whose values win
    over the derived defaults."""
    sync, backend = settings.sync, settings.backend
    if sync.shard_index >= sync.shard_count:
        raise ConfigError(
            f"SHARD_INDEX: valor inválido {sync.shard_index}: debe ser menor que SHARD_COUNT ({sync.shard_count})"
        )
    backend = replace(backend, token=secret_or_file(backend.token, backend.token_file, "BACKEND_TOKEN"))
    token = backend.token
    if token and not all("!" <= c <= "~" for c in token):
        # It travels in an HTTP header: visible ASCII only (no spaces, newlines or
        # letters outside latin-1 that http.client cannot encode).
        raise ConfigError("BACKEND_TOKEN: valor inválido: solo admite caracteres ASCII visibles, sin espacios")
    # Defaults that depend on other settings (None in the table: see settings.setting),
    # resolved here only; one lock and one state file per shard, as the Lease.
    log, shard = settings.log, (sync.shard_index, sync.shard_count)
    lock = p.per_shard(log.lock_file if "LOCK_FILE" in given else log.dir / ".coin-sync.lock", *shard)
    state = p.per_shard(log.state_file if "STATE_FILE" in given else log.dir / ".coin-sync-state.json", *shard)
    if "AMBIGUOUS_HOLD_SECONDS" not in given:
        sync = replace(sync, ambiguous_hold_seconds=2 * backend.http_timeout)
    sync = replace(sync, budget_seconds=_budget(sync.budget_seconds, sync.schedule))
    return replace(
        settings,
        backend=backend,
        sync=sync,
        log=replace(log, lock_file=lock, state_file=state),
        metrics=_validated_metrics(settings.metrics),
    )


def _budget(budget: float | None, schedule: str | None) -> float | None:
    """PASS_BUDGET_SECONDS as given (0 = none), else the share of SYNC_SCHEDULE's interval;
    a schedule whose interval varies gives no budget."""
    if budget is not None or schedule is None:
        return budget
    interval = interval_seconds(schedule)
    return None if interval is None else pass_budget(interval)


def _validated_metrics(metrics: MetricsSettings) -> MetricsSettings:
    password = secret_or_file(metrics.password, metrics.password_file, "METRICS_PUSHGATEWAY_PASSWORD")
    metrics = replace(metrics, password=password)
    if (metrics.username is None) != (metrics.password is None):
        raise ConfigError("METRICS_PUSHGATEWAY_USERNAME: la autenticación básica necesita usuario y contraseña")
    if metrics.username is not None and metrics.pushgateway_url is None:
        raise ConfigError("METRICS_PUSHGATEWAY_USERNAME: requiere METRICS_PUSHGATEWAY_URL")
    if not metrics.job:
        raise ConfigError("METRICS_JOB: no puede estar vacío")
    if metrics.textfile is not None and metrics.textfile.suffix != ".prom":
        # node_exporter's textfile collector reads *.prom only.
        raise ConfigError(f"METRICS_TEXTFILE: valor inválido {str(metrics.textfile)!r}: debe terminar en .prom")
    return metrics
