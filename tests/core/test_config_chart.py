"""The chart's side of the settings is derived from the settings table and committed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from coin_sync import chart as cc
from coin_sync.config.settings import FIELDS

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_chart_files_match_the_settings() -> None:
    """Fails when a setting changes without `python -m coin_sync.chart`."""
    assert cc.stale_files(ROOT) == []


def test_the_check_command_names_the_stale_file(tmp_path: Path) -> None:
    for path in (cc.SCHEMA_PATH, cc.VALUES_PATH, cc.README_PATH, cc.PROGRAM_TPL_PATH):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((ROOT / path).read_text(encoding="utf-8"), encoding="utf-8")
    assert cc.stale_files(tmp_path) == []
    values = tmp_path / cc.VALUES_PATH
    values.write_text(values.read_text(encoding="utf-8").replace("  MAX_RETRIES: 3\n", ""), encoding="utf-8")
    assert cc.stale_files(tmp_path) == [cc.VALUES_PATH]
    command = [sys.executable, "-m", "coin_sync.chart", "--check"]
    proc = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_setting_is_in_config_or_set_by_the_chart() -> None:
    exposed = {f.env for f in cc.chart_fields()}
    for f in FIELDS:
        assert (f.env in exposed) + (f.env in cc.CHART_OWNED) + (f.env in cc.NOT_IN_A_POD) == 1, f.env
    assert set(cc.CHART_OWNED) | set(cc.NOT_IN_A_POD) <= {f.env for f in FIELDS}


def test_the_schema_follows_the_parsers() -> None:
    props = cc.config_schema()["properties"]
    assert props["LOG_LEVEL"]["enum"] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    assert props["HTTP_TIMEOUT"]["exclusiveMinimum"] == 0 and "number" in props["HTTP_TIMEOUT"]["type"]
    assert props["MAX_RETRIES"]["type"] == "integer" and props["MAX_RETRIES"]["minimum"] == 0
    assert props["SYNC_CONCURRENCY_MAX"]["maximum"] == 1024
    assert props["FAIL_ON_STALE"]["type"] == "boolean"
    # No default in the program: null is accepted (and not rendered).
    assert "null" in props["PASS_BUDGET_SECONDS"]["type"] and "null" not in props["HTTP_TIMEOUT"]["type"]
    assert "null" in props["AMBIGUOUS_HOLD_SECONDS"]["type"] and "null" in props["SUMMARY_FILE"]["type"]
    assert props["LOG_DIR"]["pattern"] == "^/.+" and props["SUMMARY_FILE"]["pattern"] == "^(/.*)?$"
    assert "BACKEND_URL" not in props and "BACKEND_TOKEN" not in props  # set by backend.*


def test_values_defaults_are_the_programs() -> None:
    config = yaml.safe_load((ROOT / cc.VALUES_PATH).read_text(encoding="utf-8"))["config"]
    for f in cc.chart_fields():
        default = f.default()
        expected = ",".join(default) if isinstance(default, tuple) else default
        assert config[f.env] == (str(expected) if hasattr(expected, "parts") else expected), f.env
    schema = json.loads((ROOT / cc.SCHEMA_PATH).read_text(encoding="utf-8"))
    assert list(schema["properties"]["config"]["properties"]) == list(config)


def test_the_candle_reaches_the_chart() -> None:
    assert '"coin-sync.candleSeconds" -}}\n60\n' in cc.program_tpl()
