"""Settings: defaults, precedence, validation, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from coin_sync.config.load import load_settings
from coin_sync.config.parsing import redact_url
from coin_sync.config.settings import FIELDS, Field, Settings
from coin_sync.config.sources import ConfigError
from coin_sync.config.table import describe


def test_seed_names_and_defaults_are_kept() -> None:
    s = load_settings({}, {})
    assert (s.backend.url, s.sync.interval_seconds, s.log.level, s.log.dir) == (
        "http://backend:8888",
        60,
        "INFO",
        Path("/logs"),
    )
    assert (s.backend.http_timeout, s.retry.max_retries, s.retry.delay_seconds, s.sync.symbols) == (300, 3, 10, ())
    assert (s.sync.concurrency, s.backend.wait_seconds, s.retry.max_delay_seconds) == ("auto", 60, 60)
    assert (s.sync.concurrency_max, s.sync.budget_seconds, s.sync.max_in_flight) == (64, None, 64)
    assert (s.sync.deadline_seconds, s.sync.shutdown_grace_seconds, s.sync.shard_count, s.sync.shard_index) == (
        0,
        20,
        1,
        0,
    )
    assert (s.log.summary_file, s.log.format, s.sync.pass_number, s.backend.token) == (None, "text", 1, None)


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("HTTP_TIMEOUT: 120\nMAX_RETRIES: 5\nLOG_LEVEL: debug\nSYMBOLS_TO_SYNC: [btcusdt, ETHUSDT]\n")
    env = {"CONFIG_FILE": str(config), "MAX_RETRIES": "7", "LOG_LEVEL": "WARNING"}
    s = load_settings({"LOG_LEVEL": "ERROR"}, env)
    assert s.backend.http_timeout == 120  # file over default
    assert s.retry.max_retries == 7  # env over file
    assert s.log.level == "ERROR"  # flag over env
    assert s.sync.symbols == ("btcusdt", "ETHUSDT")
    assert s.retry.delay_seconds == 10  # default where nobody says otherwise


def test_config_flag_beats_config_env(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("MAX_RETRIES: 1\n")
    b.write_text("MAX_RETRIES: 2\n")
    assert load_settings({"CONFIG_FILE": str(b)}, {"CONFIG_FILE": str(a)}).retry.max_retries == 2


def test_empty_env_value_counts_as_unset() -> None:
    assert load_settings({}, {"HTTP_TIMEOUT": "", "SYMBOLS_TO_SYNC": " "}).backend.http_timeout == 300


def test_floats_and_zero_delay_allowed() -> None:
    s = load_settings({}, {"RETRY_DELAY_SECONDS": "0", "HTTP_TIMEOUT": "0.5"})
    assert (s.retry.delay_seconds, s.backend.http_timeout) == (0, 0.5)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HTTP_TIMEOUT": "abc"}, "HTTP_TIMEOUT"),
        ({"HTTP_TIMEOUT": "0"}, "HTTP_TIMEOUT"),
        ({"HTTP_TIMEOUT": "nan"}, "HTTP_TIMEOUT"),
        ({"MAX_RETRIES": "-1"}, "MAX_RETRIES"),
        ({"MAX_RETRIES": "2.5"}, "MAX_RETRIES"),
        ({"RETRY_DELAY_SECONDS": "-0.1"}, "RETRY_DELAY_SECONDS"),
        ({"SYNC_CONCURRENCY": "0"}, "SYNC_CONCURRENCY"),
        ({"BACKEND_URL": "ftp://backend"}, "BACKEND_URL"),
        ({"BACKEND_URL": "backend:8888"}, "BACKEND_URL"),
        ({"BACKEND_URL": "http://backend:port"}, "BACKEND_URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"SHARD_COUNT": "2", "SHARD_INDEX": "2"}, "SHARD_INDEX"),
        ({"K8S_LOCK_REQUIRED": "maybe"}, "K8S_LOCK_REQUIRED"),
        ({"SYNC_INTERVAL_SECONDS": "0"}, "SYNC_INTERVAL_SECONDS"),
        ({"HTTP_TIMEOUT": "1e300"}, "HTTP_TIMEOUT"),
        ({"RETRY_MAX_DELAY_SECONDS": "1e300"}, "RETRY_MAX_DELAY_SECONDS"),
        ({"MAX_RETRIES": "99999999999"}, "MAX_RETRIES"),
        ({"SYNC_CONCURRENCY": "100000"}, "SYNC_CONCURRENCY"),
        ({"BACKEND_TOKEN": "токен"}, "BACKEND_TOKEN"),
        ({"BACKEND_TOKEN": "two words"}, "BACKEND_TOKEN"),
        ({"STALE_AFTER_SECONDS": "-1"}, "STALE_AFTER_SECONDS"),
        ({"FAIL_ON_STALE": "maybe"}, "FAIL_ON_STALE"),
        ({"METRICS_PUSHGATEWAY_URL": "pushgateway:9091"}, "METRICS_PUSHGATEWAY_URL"),
        ({"METRICS_TEXTFILE": "/var/lib/node_exporter/coin_sync.txt"}, "METRICS_TEXTFILE"),
        (
            {"METRICS_PUSHGATEWAY_URL": "http://pg:9091", "METRICS_PUSHGATEWAY_USERNAME": "u"},
            "METRICS_PUSHGATEWAY_USERNAME",
        ),
        ({"METRICS_PUSHGATEWAY_USERNAME": "u", "METRICS_PUSHGATEWAY_PASSWORD": "p"}, "METRICS_PUSHGATEWAY_USERNAME"),
        (
            {"METRICS_PUSHGATEWAY_PASSWORD": "p", "METRICS_PUSHGATEWAY_PASSWORD_FILE": "/x"},
            "METRICS_PUSHGATEWAY_PASSWORD_FILE",
        ),
        ({"METRICS_PUSHGATEWAY_PASSWORD_FILE": "/nonexistent"}, "METRICS_PUSHGATEWAY_PASSWORD_FILE"),
        ({"METRICS_PORT": "0"}, "METRICS_PORT"),
        ({"METRICS_PORT": "65536"}, "METRICS_PORT"),
        ({"METRICS_PORT": "9464.5"}, "METRICS_PORT"),
        ({"METRICS_ADDRESS": "0.0.0.0:9464"}, "METRICS_ADDRESS"),
        ({"METRICS_ADDRESS": "http://0.0.0.0"}, "METRICS_ADDRESS"),
        ({"METRICS_ADDRESS": "[::]"}, "METRICS_ADDRESS"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({}, env)
    message = str(err.value)
    assert message.startswith(named + ":")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("HTTP_TIMEOUT: [1, 2\n", "YAML inválido"),
        ("- just\n- a list\n", "mapa"),
        ("HTTP_TIMEUOT: 5\n", "clave desconocida 'HTTP_TIMEUOT'"),
        ("HTTP_TIMEOUT: {a: 1}\n", "HTTP_TIMEOUT"),
        ("MAX_RETRIES: many\n", "MAX_RETRIES"),
    ],
)
def test_bad_config_file(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        load_settings({}, {"CONFIG_FILE": str(path)})


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONFIG_FILE: no se puede leer"):
        load_settings({"CONFIG_FILE": str(tmp_path / "missing.yaml")}, {})


def test_shard_index_from_job_completion_index() -> None:
    s = load_settings({}, {"SHARD_COUNT": "4", "JOB_COMPLETION_INDEX": "3"})
    assert (s.sync.shard_count, s.sync.shard_index) == (4, 3)
    assert (
        load_settings({}, {"SHARD_COUNT": "4", "JOB_COMPLETION_INDEX": "3", "SHARD_INDEX": "1"}).sync.shard_index == 1
    )


def test_token_file_is_read_and_token_never_shown(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    s = load_settings({}, {"BACKEND_TOKEN_FILE": str(token_file)})
    assert s.backend.token == "s3cr3t-token"
    assert "s3cr3t" not in repr(s)
    assert "s3cr3t" not in str(describe(s))
    assert ("BACKEND_TOKEN", "****") in describe(s)


@pytest.mark.parametrize(
    "env",
    [
        {"BACKEND_TOKEN_FILE": "/nonexistent/token"},
        {"BACKEND_TOKEN": "a", "BACKEND_TOKEN_FILE": "/etc/hostname"},
    ],
)
def test_token_file_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="BACKEND_TOKEN_FILE"):
        load_settings({}, env)


def test_bad_token_value_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({}, {"BACKEND_TOKEN": "abc\ndef"})
    assert "abc" not in str(err.value)


def test_url_credentials_are_masked() -> None:
    assert redact_url("http://user:pw@backend:8888") == "http://****@backend:8888"
    s = load_settings({}, {"BACKEND_URL": "https://user:pw@backend/api/"})
    assert dict(describe(s))["BACKEND_URL"] == "https://****@backend/api"


def test_every_field_is_a_settings_attribute_and_a_flag() -> None:
    defaults = Settings()
    assert len({f.env for f in FIELDS}) == len(FIELDS)
    for f in FIELDS:
        assert hasattr(getattr(defaults, f.group), f.name)
        assert f.flag == "--" + f.env.lower().replace("_", "-")


def _optional(f: Field) -> bool:
    hints = get_type_hints(type(getattr(Settings(), f.group)))
    return type(None) in get_args(hints[f.name])


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"LOG_DIR": "/x", "SHARD_COUNT": "2", "SHARD_INDEX": "1", "HTTP_TIMEOUT": "5"},
        {"LOCK_FILE": "off", "STATE_FILE": "/s.json", "AMBIGUOUS_HOLD_SECONDS": "0"},
    ],
)
def test_loaded_settings_are_complete(env: dict[str, str]) -> None:
    """A setting whose type has no None is never None once loaded: the defaults derived
    from other settings (None in the table) are resolved while loading."""
    derived = {f.env for f in FIELDS if f.default() is None and not _optional(f)}
    assert derived == {"AMBIGUOUS_HOLD_SECONDS", "LOCK_FILE", "STATE_FILE"}
    settings = load_settings({}, env)
    assert [f.env for f in FIELDS if not _optional(f) and f.value(settings) is None] == []


def test_freshness_and_metrics_defaults() -> None:
    s = load_settings({}, {})
    assert (s.sync.stale_after_seconds, s.sync.fail_on_stale) == (180.0, False)
    assert s.metrics.job == "coin-sync" and not s.metrics.enabled
    assert load_settings({}, {"METRICS_TEXTFILE": "/tmp/x/coin_sync.prom"}).metrics.enabled
    # The loop's /metrics: off by default, on all interfaces when on (a container's port).
    assert (s.metrics.port, s.metrics.address) == (None, "0.0.0.0")
    served = load_settings({}, {"METRICS_PORT": "9464", "METRICS_ADDRESS": "::"}).metrics
    assert (served.port, served.address, served.enabled) == (9464, "::", False)  # no pass publishes for it


def test_pushgateway_password_is_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    env = {"METRICS_PUSHGATEWAY_URL": "http://u:urlpw@pg:9091", "METRICS_PUSHGATEWAY_USERNAME": "coin"}
    s = load_settings({}, {**env, "METRICS_PUSHGATEWAY_PASSWORD_FILE": str(secret)})
    assert s.metrics.password == "hunter2"
    shown = dict(describe(s))
    assert shown["METRICS_PUSHGATEWAY_PASSWORD"] == "****"
    assert shown["METRICS_PUSHGATEWAY_URL"] == "http://****@pg:9091"
    assert "hunter2" not in repr(s) and "urlpw" not in str(shown)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (",,,", "solo comas"),
        ("@@@", "'@@@': carácter no permitido '@'"),
        ("ÑOÑO,  ", "'ÑOÑO': carácter no permitido 'Ñ'"),
        ("BTC USDT", "'BTC USDT'"),
        ("A" * 21, "más de 20 caracteres"),
    ],
)
def test_a_symbol_list_with_no_valid_name_is_a_config_error(raw: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"SYMBOLS_TO_SYNC": raw})
    assert str(caught.value).startswith(f"SYMBOLS_TO_SYNC: valor inválido {raw!r}: ")
    assert reason in str(caught.value)


def test_empty_entries_of_a_symbol_list_are_dropped_silently() -> None:
    # A trailing comma is no mistake: nothing to warn about later.
    assert load_settings({}, {"SYMBOLS_TO_SYNC": "btcusdt,,ETHUSDT,"}).sync.symbols == ("btcusdt", "ETHUSDT")
    # One good name among bad ones: the bad ones are warned about by the pass, not fatal.
    assert load_settings({}, {"SYMBOLS_TO_SYNC": "@@@,BTCUSDT"}).sync.symbols == ("@@@", "BTCUSDT")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://exa mple.com", "espacios"),
        ("http://backend:8888/\tx", "espacios"),
        ("http://backend:99999", "puerto inválido"),
        ("http://backend:0", "puerto inválido"),
        ("http://backend:abc", "puerto inválido"),
        ("http://:8888", "con host"),
        ("http://back!end:8888", "'back!end'"),
        ("http://[::1:8888", "corchetes"),
    ],
)
def test_a_url_that_does_not_parse_is_a_config_error(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"BACKEND_URL": url})
    assert str(caught.value).startswith("BACKEND_URL: valor inválido") and reason in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://backend:8888", "https://binance_backend", "http://127.0.0.1:8888/", "http://[::1]:8888", "http://müll.de"],
)
def test_good_urls_still_parse(url: str) -> None:
    assert load_settings({}, {"BACKEND_URL": url}).backend.url == url.rstrip("/")
