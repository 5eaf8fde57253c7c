"""The settings, as a process shows them: once, at its start, only what differs from the
defaults plus a one-line digest; every setting under LOG_LEVEL=DEBUG and in `coin-sync
config`. A setting's shown value is describe(Settings)'s: secrets masked."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from coin_sync import __version__
from coin_sync.config.load import validated
from coin_sync.config.settings import Settings
from coin_sync.config.table import describe


@dataclass(frozen=True)
class Shown:
    name: str
    value: str
    default: bool  # the effective value is the default one (derived defaults included)


def shown_settings(settings: Settings) -> list[Shown]:
    """Every setting, CONFIG_FILE first when there is one. A derived default (LOCK_FILE
    under LOG_DIR) counts as changed when what it derives from changed: it is not the
    value a reader of the defaults would expect."""
    defaults = dict(describe(validated(Settings())))
    shown = [Shown("CONFIG_FILE", str(settings.config_file), False)] if settings.config_file is not None else []
    return shown + [Shown(name, value, value == defaults[name]) for name, value in describe(settings)]


def digest(shown: list[Shown]) -> str:
    """`4 de 43 ajustes cambiados, huella 1a2b3c4d`: the fingerprint (of the shown, masked
    values) tells two pods' configurations apart at a glance."""
    fingerprint = hashlib.sha256("\n".join(f"{s.name}={s.value}" for s in shown).encode()).hexdigest()[:8]
    changed = sum(1 for s in shown if not s.default)
    return f"{changed} de {len(shown)} ajustes cambiados, huella {fingerprint}"


def log_banner(settings: Settings, log: logging.Logger) -> None:
    log.info("=" * 60)
    log.info("SERVICIO DE SINCRONIZACIÓN AUTOMÁTICA (coin-sync %s)", __version__)
    log.info("=" * 60)
    shown = shown_settings(settings)
    for s in shown:
        if not s.default:
            log.info("  %s: %s", s.name, s.value)
        else:
            log.debug("  %s: %s (por defecto)", s.name, s.value)
    log.info("Configuración: %s (todos: 'coin-sync config' o LOG_LEVEL=DEBUG)", digest(shown))


def config_text(settings: Settings) -> str:
    """What `coin-sync config` prints: every setting, one NAME=value a line."""
    shown = shown_settings(settings)
    lines = [f"{s.name}={s.value}" + ("  # por defecto" if s.default else "") for s in shown]
    return "\n".join([*lines, f"# {digest(shown)}"]) + "\n"
