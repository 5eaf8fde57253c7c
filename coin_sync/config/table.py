"""The settings as a table keyed by their environment names: built from typed values,
listed, and shown (secrets masked) for the banner and `coin-sync config`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from coin_sync.config import parsing as p
from coin_sync.config.settings import FIELDS, FIELDS_BY_ENV, Settings


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


def describe(settings: Settings) -> list[tuple[str, str]]:
    """(ENV_NAME, shown value) pairs for the banner; secrets masked."""
    shown = []
    for f in FIELDS:
        value = f.value(settings)
        if f.secret:
            text = "****" if value else "(no definido)"
        elif f.env in ("BACKEND_URL", "METRICS_PUSHGATEWAY_URL") and value:
            text = p.redact_url(value)
        elif isinstance(value, tuple):
            text = ",".join(value) or ("(todos)" if f.env == "SYMBOLS_TO_SYNC" else "(ninguno)")
        elif value is None:
            text = "(no definido)"
        elif isinstance(value, bool):
            text = "true" if value else "false"  # as the setting is written, not Python's True
        else:
            text = str(value)
        shown.append((f.env, text))
    return shown
