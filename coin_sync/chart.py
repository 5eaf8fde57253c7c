"""The chart's side of the settings, derived from the settings table (FIELDS).

The chart exposes each program setting once, as `config.<ENV_NAME>`, rendered as that
environment variable. What the chart needs to know about them is generated from the
declarations in coin_sync.config.settings and committed:

- the `config` part of chart/values.schema.json (types, bounds, choices, docs);
- the `config:` block of chart/values.yaml (the program's defaults, each with its help);
- the `config.*` table of chart/README.md;
- chart/templates/_program.tpl: facts of the program the alerts need at render time.

`python -m coin_sync.chart` rewrites them; `--check` exits 1 if any is stale
(tests/core/test_config_chart.py runs the same check). Adding an ordinary setting is
its declaration plus its docs: the chart picks it up on regeneration.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from coin_sync.config import parsing as p
from coin_sync.config.settings import FIELDS, Field
from coin_sync.sync.freshness import CANDLE_SECONDS

# Settings the chart sets from its own values (or from Kubernetes): not in `config`.
CHART_OWNED = {
    "BACKEND_URL": "backend.url",
    "BACKEND_TOKEN": "backend.token o backend.existingSecret",
    "BACKEND_TOKEN_FILE": "backend.tokenAsFile",
    "SHARD_COUNT": "shards",
    "SHARD_INDEX": "el índice del Job Indexed (JOB_COMPLETION_INDEX)",
    "SYNC_SCHEDULE": "schedule",
    "K8S_INTEGRATION": "kubernetes.integration.enabled y kubernetes.integration.mode",
    "K8S_LOCK_REQUIRED": "kubernetes.integration.lockRequired",
    "LEASE_NAME": "el chart (<fullname>-lock)",
    "LEASE_DURATION_SECONDS": "kubernetes.integration.leaseDurationSeconds",
    "STATUS_CONFIGMAP": "el chart (<fullname>-status)",
    "METRICS_PUSHGATEWAY_URL": "metrics.pushgateway.url",
    "METRICS_JOB": "metrics.job",
    "METRICS_PUSHGATEWAY_USERNAME": "metrics.pushgateway.basicAuth.username",
    "METRICS_PUSHGATEWAY_PASSWORD": "metrics.pushgateway.basicAuth.existingSecret",
    "METRICS_PUSHGATEWAY_PASSWORD_FILE": "metrics.pushgateway.basicAuth.existingSecret",
}
# Settings with no use in a CronJob's pod.
NOT_IN_A_POD = {
    "SYNC_INTERVAL_SECONDS": "solo `loop`",
    "SYNC_PASS_NUMBER": "solo `loop`",
    "METRICS_PORT": "solo `loop`",
    "METRICS_ADDRESS": "solo `loop`",
    "METRICS_TEXTFILE": "el textfile collector de node_exporter lee el disco del nodo",
    "TERMINATION_MESSAGE_PATH": "el de Kubernetes (terminationMessagePolicy)",
    "LOCK_FILE": "con la integración el cerrojo es el Lease; sin ella, LOG_DIR",
    "STATE_FILE": "en LOG_DIR",
}

# What the chart itself does with a setting (its own checks and mounts), for the docs.
CHART_NOTES = {
    "LOG_DIR": "Ahí se monta el volumen `logs`.",
    "PASS_DEADLINE_SECONDS": "Debe ser menor que `activeDeadlineSeconds` (el chart lo comprueba).",
    "SHUTDOWN_GRACE_SECONDS": "Como mucho `terminationGracePeriodSeconds` - 10 (el chart lo comprueba).",
    "STALE_AFTER_SECONDS": "Más la duración de una vela (60 s), el umbral de la alerta CoinSyncSymbolStale.",
}
AS_TEXT = 'Admite el número como texto (`--set` convierte 0.5 en "0.5").'
POSITIVE_TEXT = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$"
NON_NEGATIVE_TEXT = r"^[0-9]+(\.[0-9]+)?$"
SYMBOL_LIST: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string", "minLength": 1, "pattern": "^[^,]+$"}},
    ]
}


def _integer(minimum: int, maximum: int | None = None) -> dict[str, Any]:
    bounds = {"minimum": minimum} | ({} if maximum is None else {"maximum": maximum})
    return {"type": "integer", **bounds}


# The schema of each parser's values, as a chart user writes them (YAML or --set).
TYPES: dict[Callable[[str], Any], dict[str, Any]] = {
    p.positive: {"type": ["number", "string"], "exclusiveMinimum": 0, "pattern": POSITIVE_TEXT},
    p.non_negative: {"type": ["number", "string"], "minimum": 0, "pattern": NON_NEGATIVE_TEXT},
    p.non_negative_int: _integer(0),
    p.positive_int: _integer(1),
    p.concurrency: _integer(1, p.MAX_CONCURRENCY),
    p.concurrency_or_auto: {
        "oneOf": [{"type": "string", "const": "auto"}, _integer(1, p.MAX_CONCURRENCY)],
    },
    p.boolean: {"type": "boolean"},
    p.symbol_list: SYMBOL_LIST,
    p.text: {"type": "string"},
    p.http_url: {"type": "string", "pattern": "^https?://.+"},
    # Absolute: the pod's working directory is the image's, not a place to write.
    p.path: {"type": "string", "pattern": "^/.+"},
}


def chart_fields() -> list[Field]:
    """The settings a chart user sets under `config`, in declaration order."""
    return [f for f in FIELDS if f.env not in CHART_OWNED and f.env not in NOT_IN_A_POD]


def value_schema(f: Field) -> dict[str, Any]:
    """The JSON schema of `config.<f.env>`; a setting with no default also takes null
    (not rendered: the program decides)."""
    parse = f.spec.parse
    if isinstance(parse, p.Choice):
        schema: dict[str, Any] = {"type": "string", "enum": list(parse.options)}
    elif parse in TYPES:
        schema = json.loads(json.dumps(TYPES[parse]))
    else:
        raise ValueError(f"{f.env}: falta el esquema de su parser en coin_sync.chart.TYPES")
    if f.default() is None:
        schema = _nullable(schema)
    text = AS_TEXT if parse in (p.positive, p.non_negative) else ""
    return {**schema, "description": " ".join(filter(None, [_sentence(f.help), text]))}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "oneOf" in schema:
        return {"oneOf": [*schema["oneOf"], {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    nullable = {**schema, "type": [*types, "null"]}
    if "enum" in nullable:
        nullable["enum"] = [*nullable["enum"], None]
    if nullable.get("pattern") == TYPES[p.path]["pattern"]:
        nullable["pattern"] = "^(/.*)?$"  # empty counts as unset too
    return nullable


def constraint(f: Field) -> str:
    """The values a setting takes, in words, from its parser."""
    parse = f.spec.parse
    if isinstance(parse, p.Choice):
        return "Uno de: " + ", ".join(f"`{o}`" for o in parse.options) + "."
    words = {
        p.positive: "Número mayor que 0.",
        p.non_negative: "Número no negativo.",
        p.non_negative_int: "Entero no negativo.",
        p.positive_int: "Entero positivo.",
        p.concurrency: f"Entero de 1 a {p.MAX_CONCURRENCY}.",
        p.concurrency_or_auto: f"`auto` o un entero de 1 a {p.MAX_CONCURRENCY}.",
        p.symbol_list: "Texto separado por comas o lista.",
        p.path: "Ruta absoluta.",
    }
    return words.get(parse, "")


def doc(f: Field) -> str:
    """A setting's documentation in the chart: its help, its values, what the chart does."""
    unset = "`null` = sin definir." if f.default() is None else ""
    return " ".join(filter(None, [_sentence(f.help), constraint(f), unset, CHART_NOTES.get(f.env, "")]))


def config_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Ajustes del programa: cada clave es su variable de entorno (generado por "
        "`python -m coin_sync.chart` desde coin_sync/config/settings.py).",
        "properties": {f.env: value_schema(f) for f in chart_fields()},
    }


def default_text(f: Field) -> str:
    """The program's default as YAML text."""
    value = f.default()
    if isinstance(value, tuple):
        value = ",".join(value)
    elif isinstance(value, Path):
        value = str(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if value == "":
        return '""'
    text: str = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True)
    return text.removesuffix("\n...\n").strip()


def values_block() -> str:
    lines = []
    for f in chart_fields():
        lines += _wrap(f"# -- {doc(f)}", "  ")
        lines.append(f"  {f.env}: {default_text(f)}")
    return "\n".join(lines) + "\n"


def readme_rows() -> str:
    rows = [f"| `config.{f.env}` | `{default_text(f)}` | {doc(f)} |" for f in chart_fields()]
    return "\n".join(rows) + "\n"


def program_tpl() -> str:
    return (
        "{{/* Generated by `python -m coin_sync.chart` from the program: do not edit. */}}\n"
        "{{/* Seconds of one candle: a symbol's data age minus this is its lag (coin_sync.sync.freshness). */}}\n"
        '{{- define "coin-sync.candleSeconds" -}}\n'
        f"{CANDLE_SECONDS:g}\n"
        "{{- end }}\n"
    )


def _sentence(text: str) -> str:
    if not text.startswith(("true", "false", "auto")):
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _wrap(text: str, indent: str, width: int = 88) -> list[str]:
    return [indent + line for line in textwrap.wrap(text, width - len(indent), subsequent_indent="# ")]


BEGIN_VALUES = "  # BEGIN config: generado por `python -m coin_sync.chart`; no lo edites.\n"
END_VALUES = "  # END config\n"
BEGIN_README = "<!-- BEGIN config: generado por `python -m coin_sync.chart`; no lo edites. -->\n"
END_README = "<!-- END config -->\n"
README_HEAD = "| Valor | Por defecto | Descripción |\n|---|---|---|\n"


def _between(text: str, begin: str, end: str, inner: str, path: str) -> str:
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"{path}: faltan las marcas {begin.strip()!r} / {end.strip()!r}")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return head + begin + inner + end + tail


SCHEMA_PATH, VALUES_PATH, README_PATH = "chart/values.schema.json", "chart/values.yaml", "chart/README.md"
PROGRAM_TPL_PATH = "chart/templates/_program.tpl"


def generate(schema_text: str, values_text: str, readme_text: str) -> dict[str, str]:
    """The generated files' texts by path, from the committed texts around them."""
    schema = json.loads(schema_text)
    schema["properties"]["config"] = config_schema()
    return {
        SCHEMA_PATH: json.dumps(schema, indent=2, ensure_ascii=False) + "\n",
        VALUES_PATH: _between(values_text, BEGIN_VALUES, END_VALUES, values_block(), VALUES_PATH),
        README_PATH: _between(readme_text, BEGIN_README, END_README, README_HEAD + readme_rows(), README_PATH),
        PROGRAM_TPL_PATH: program_tpl(),
    }


def generate_in(root: Path) -> dict[str, str]:
    def read(path: str) -> str:
        return (root / path).read_text(encoding="utf-8")

    return generate(read(SCHEMA_PATH), read(VALUES_PATH), read(README_PATH))


def stale_files(root: Path) -> list[str]:
    """The generated files whose committed text differs from a fresh generation."""
    return [
        path
        for path, text in generate_in(root).items()
        if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(__file__).resolve().parents[1]
    if args == ["--check"]:
        stale = stale_files(root)
        for path in stale:
            print(f"{path}: no coincide con coin_sync/config/settings.py; ejecuta python -m coin_sync.chart")
        return 1 if stale else 0
    if args:
        print("uso: python -m coin_sync.chart [--check]", file=sys.stderr)
        return 2
    for path, text in generate_in(root).items():
        (root / path).write_text(text, encoding="utf-8")
        print(f"escrito {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
