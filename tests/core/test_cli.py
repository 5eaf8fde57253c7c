"""The command line surface: help, usage errors, bad config, check, symbols."""

from __future__ import annotations

from pathlib import Path

import pytest

from coin_sync.config.settings import FIELDS
from fake_backend import FakeBackend, bad_json


def test_help_documents_every_option_and_exit_code(run_cli) -> None:  # type: ignore[no-untyped-def]
    for args in (("--help",), ("run", "--help")):
        run = run_cli(*args)
        assert run.code == 0
        for f in FIELDS:
            assert f.flag in run.stdout
        for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130", "143"):
            assert f"\n  {code}" in run.stdout
        assert "--config" in run.stdout


def test_help_says_each_default_once_and_as_it_is_written(run_cli) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(run_cli("--help").stdout.split())  # argparse wraps lines anywhere
    assert "(por defecto JOB_COMPLETION_INDEX o 0)" in text and "JOB_COMPLETION_INDEX o 0) (por defecto" not in text
    assert "False" not in text and "True" not in text
    assert "(por defecto: false)" in text and "(por defecto: 300)" in text  # HTTP_TIMEOUT, not 300.0


def _exit_codes(help_text: str) -> list[str]:
    section = help_text.split("códigos de salida:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line[2].isdigit()]


@pytest.mark.parametrize(
    ("command", "codes"),
    [("check", ["0", "2", "3", "130", "143"]), ("symbols", ["0", "2", "3", "130", "143"]), ("config", ["0", "2"])],
)
def test_a_command_help_lists_only_its_options_and_exit_codes(run_cli, command: str, codes: list[str]) -> None:  # type: ignore[no-untyped-def]
    from coin_sync.usage import COMMAND_SETTINGS

    run = run_cli(command, "--help")
    assert run.code == 0 and _exit_codes(run.stdout) == codes
    assert run.stdout.startswith(f"uso: coin-sync {command} [opciones]")
    options = run.stdout.split("códigos de salida:", 1)[0]
    if command in COMMAND_SETTINGS:
        used = COMMAND_SETTINGS[command]
        for f in FIELDS:
            assert (f" {f.flag} " in options) == (f.env in used), f.flag
    assert _exit_codes(run_cli("run", "--help").stdout) == ["0", "1", "2", "3", "4", "130", "143"]


def test_check_uses_no_retry_or_pass_setting(run_cli) -> None:  # type: ignore[no-untyped-def]
    from coin_sync.usage import CHECK_SETTINGS

    assert not CHECK_SETTINGS & {"MAX_RETRIES", "HTTP_TIMEOUT", "SYMBOLS_TO_SYNC", "SYNC_CONCURRENCY"}
    run = run_cli("check", "--max-retries", "2")  # a flag check never reads is a usage error
    assert run.code == 2 and "argumentos no reconocidos: --max-retries 2" in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bogus",), "coin-sync: error: argumentos no reconocidos: --bogus"),
        (("--http-timeout",), "error: argumento --http-timeout: necesita un valor"),
        (("run", "--log-level"), "error: argumento --log-level: necesita un valor"),
    ],
)
def test_argparse_speaks_spanish(run_cli, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    run = run_cli(*args)
    assert run.code == 2 and message in run.stderr
    assert run.stderr.startswith("uso: coin-sync") and "usage:" not in run.stderr


def test_help_has_no_english_left(run_cli) -> None:  # type: ignore[no-untyped-def]
    for args in (("--help",), ("run", "--help"), ("check", "--help")):
        text = run_cli(*args).stdout
        assert text.startswith("uso: coin-sync")
        assert "-h, --help            muestra esta ayuda y termina" in text
        for english in ("usage:", "show this help", "options:", "positional arguments", "version number"):
            assert english not in text, english


def test_invalid_choice_and_required_argument_messages_are_spanish() -> None:
    from coin_sync.usage import spanish

    assert spanish("argument command: invalid choice: 'x' (choose from 'run', 'check')") == (
        "argumento command: opción inválida: 'x' (elige entre 'run', 'check')"
    )
    assert spanish("the following arguments are required: command") == "faltan los argumentos obligatorios: command"


def test_unknown_flag_is_a_usage_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    run = run_cli("--bogus")
    assert run.code == 2 and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HTTP_TIMEOUT": "0"}, "HTTP_TIMEOUT"),
        ({"MAX_RETRIES": "lots"}, "MAX_RETRIES"),
        ({"BACKEND_URL": "ftp://x"}, "BACKEND_URL"),
        ({"METRICS_PUSHGATEWAY_URL": "http://ops:s3cr3t-pw@gateway:abc"}, "METRICS_PUSHGATEWAY_URL"),
        ({"LOG_LEVEL": "CHATTY"}, "LOG_LEVEL"),
        ({"CONFIG_FILE": "/nonexistent.yaml"}, "CONFIG_FILE"),
        # Every entry empty or impossible: a broken deploy, not "nothing to sync" (exit 0).
        ({"SYMBOLS_TO_SYNC": ",,,"}, "SYMBOLS_TO_SYNC"),
        ({"SYMBOLS_TO_SYNC": "@@@,ÑOÑO"}, "SYMBOLS_TO_SYNC"),
        ({"SYMBOLS_INCLUDE": " , "}, "SYMBOLS_INCLUDE"),
        # A URL that does not parse: at once, never after BACKEND_WAIT_SECONDS.
        ({"BACKEND_URL": "http://exa mple.com"}, "BACKEND_URL"),
        ({"BACKEND_URL": "http://backend:99999"}, "BACKEND_URL"),
        ({"BACKEND_URL": "http://backend:0"}, "BACKEND_URL"),
        ({"BACKEND_URL": "http://:8888"}, "BACKEND_URL"),
    ],
)
def test_bad_config_exits_2_with_one_line(run_cli, env: dict[str, str], named: str) -> None:  # type: ignore[no-untyped-def]
    run = run_cli(**env)
    assert run.code == 2
    assert run.stderr.strip().count("\n") == 0 and named in run.stderr
    assert "Traceback" not in run.stderr and not run.stdout
    assert "s3cr3t-pw" not in run.stderr  # a URL's password never reaches the message


def test_malformed_yaml_and_unknown_key(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("HTTP_TIMEOUT: [\n")
    assert run_cli("--config", str(bad)).code == 2
    typo = tmp_path / "typo.yaml"
    typo.write_text("MAX_RETRYS: 2\n")
    run = run_cli("run", "--config", str(typo))
    assert run.code == 2 and "MAX_RETRYS" in run.stderr


def test_flags_before_or_after_the_command(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("BTCUSDT", bad_json())
    for args in (("--max-retries", "1", "run"), ("run", "--max-retries", "1"), ("--max-retries", "1")):
        fake_backend.reset_records()
        assert run_cli(*args, BACKEND_URL=fake_backend.url).code == 1
        assert len(fake_backend.sync_calls("BTCUSDT")) == 2


def test_flag_beats_env(fake_backend: FakeBackend, run_cli, free_port: int) -> None:  # type: ignore[no-untyped-def]
    run = run_cli("--backend-url", fake_backend.url, BACKEND_URL=f"http://127.0.0.1:{free_port}")
    assert run.code == 0


def test_check(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("check", BACKEND_URL=fake_backend.url).code == 0
    assert not fake_backend.sync_calls()
    fake_backend.set_healthy(False)
    run = run_cli("check", BACKEND_URL=fake_backend.url, BACKEND_WAIT_SECONDS="0")
    assert run.code == 3 and run.lines("El backend no está disponible")


def test_symbols_prints_this_shard_and_syncs_nothing(run_cli) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=30) as backend:
        shards = []
        for index in range(2):
            run = run_cli("symbols", BACKEND_URL=backend.url, SHARD_COUNT="2", SHARD_INDEX=str(index))
            assert run.code == 0
            shards.append(run.stdout.split())
        assert sorted(shards[0] + shards[1]) == sorted(backend.symbols)
        assert not backend.sync_calls()
    run = run_cli("symbols", SYMBOLS_TO_SYNC="ethusdt, btcusdt,ETHUSDT", BACKEND_URL="http://127.0.0.1:9")
    assert run.code == 0 and run.stdout == "ETHUSDT\nBTCUSDT\n"


def test_symbols_unusable_list_exits_3(free_port: int, run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("symbols", BACKEND_URL=f"http://127.0.0.1:{free_port}", MAX_RETRIES="0").code == 3


def test_symbols_waits_for_health_as_run_does_and_no_longer(run_cli) -> None:  # type: ignore[no-untyped-def]
    # An unhealthy backend: `symbols` gives up after BACKEND_WAIT_SECONDS with exit 3,
    # without one request to /api/symbols (it used to retry it MAX_RETRIES times).
    with FakeBackend(symbols=3) as backend:
        backend.set_healthy(False)
        run = run_cli("symbols", BACKEND_URL=backend.url, BACKEND_WAIT_SECONDS="0", MAX_RETRIES="3")
        assert run.code == 3 and not run.stdout
        assert "El backend no está disponible" in run.stderr
        assert [c.path for c in backend.calls] == ["/health"]


def test_symbols_on_a_dead_backend_takes_the_health_wait_on_virtual_time(free_port: int) -> None:
    import logging

    from coin_sync.backend.client import make_client
    from coin_sync.config.load import load_settings
    from coin_sync.stop import Stop
    from coin_sync.sync.context import PassContext
    from coin_sync.sync.plan import resolve_symbols
    from virtual_clock import VirtualClock

    # The defaults: 3 retries of /api/symbols 10, 20, 40 s apart (74 s in the issue).
    settings = load_settings({}, {"BACKEND_URL": f"http://127.0.0.1:{free_port}", "BACKEND_WAIT_SECONDS": "3"})
    clock = VirtualClock()
    client = make_client(settings.backend, 1)
    try:
        ctx = PassContext(settings, client, logging.getLogger("coin_sync.test.symbols"), Stop(), clock)
        assert resolve_symbols(ctx) is None
    finally:
        client.session.close()
    assert clock.now() == 3.0  # the health wait, to the virtual second; no retry waits after it
    assert sum(clock.sleeps) == 3.0
