"""The log contract the users' grep monitoring depends on."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from datetime import date
from pathlib import Path

from coin_sync.observe.logs import DatedFileHandler, setup_logging, shutdown_logging
from fake_backend import FakeBackend, error400

LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - coin_sync - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - "
    r"\[[\w.]+\.py:\d+\] - .*$"
)


def test_every_line_has_the_seed_format_on_stdout_and_in_files(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    fake_backend.script("ETHUSDT", error400("nope"))
    run = run_cli(BACKEND_URL=fake_backend.url)
    assert run.code == 1
    today = date.today().isoformat()
    files = run.log_files()
    assert set(files) == {f"coin_sync_{today}.txt", f"coin_sync_errors_{today}.txt"}
    for text in [run.stdout, *files.values()]:
        lines = text.splitlines()
        assert lines and all(LINE.match(line) for line in lines), [line for line in lines if not LINE.match(line)]
    assert files[f"coin_sync_{today}.txt"].splitlines() == run.stdout.splitlines()
    errors = files[f"coin_sync_errors_{today}.txt"].splitlines()
    assert errors and all(" - ERROR - " in line for line in errors)
    assert any("✗ ETHUSDT" in line for line in errors)


def test_log_level_filters(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    run = run_cli(BACKEND_URL=fake_backend.url, LOG_LEVEL="WARNING")
    assert run.code == 0
    assert not run.lines("sincronizado:")


def test_unwritable_log_dir_warns_once_and_carries_on(fake_backend: FakeBackend, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = run_cli(BACKEND_URL=fake_backend.url, LOG_DIR=str(blocker / "logs"))
    assert run.code == 0
    assert run.stderr.count("AVISO") == 1 and "LOG_DIR" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.lines("FIN DE SINCRONIZACIÓN #1")


def test_json_stdout_keeps_text_files(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    run = run_cli(BACKEND_URL=fake_backend.url, LOG_FORMAT="json", SYNC_PASS_NUMBER="7")
    assert run.code == 0
    entries = [json.loads(line) for line in run.stdout.splitlines()]
    assert {"time", "level", "logger", "message", "file", "line"} <= set(entries[0])
    assert any(e["message"] == "INICIO DE SINCRONIZACIÓN #7" for e in entries)
    assert any(e["message"].startswith("FIN DE SINCRONIZACIÓN #7 - correctos: ") for e in entries)
    # Decorations are text's: no "====" record in JSON...
    assert not [e for e in entries if set(e["message"]) == {"="}]
    (main_file,) = [t for name, t in run.log_files().items() if "errors" not in name]
    assert all(LINE.match(line) for line in main_file.splitlines())
    # ...while the text files keep them around INICIO and FIN, as before.
    messages = [line.split("] - ", 1)[1] for line in main_file.splitlines()]
    at = messages.index("INICIO DE SINCRONIZACIÓN #7")
    assert messages[at - 1] == messages[at + 1] == "=" * 60
    fin = next(i for i, m in enumerate(messages) if m.startswith("FIN DE SINCRONIZACIÓN #7 - "))
    assert messages[fin - 1] == messages[fin + 1] == "=" * 60


def test_the_banner_shows_what_differs_from_the_defaults_and_a_digest(fake_backend: FakeBackend, run_cli) -> None:  # type: ignore[no-untyped-def]
    from coin_sync.config.settings import FIELDS

    run = run_cli(BACKEND_URL=fake_backend.url, BACKEND_TOKEN="t0ps3cret", FAIL_ON_STALE="true")
    assert run.code == 0
    shown = [line.split("] -   ", 1)[1] for line in run.stdout.splitlines() if "] -   " in line]
    assert f"BACKEND_URL: {fake_backend.url}" in shown and "BACKEND_TOKEN: ****" in shown
    assert "FAIL_ON_STALE: true" in shown and "t0ps3cret" not in run.stdout
    assert not [line for line in shown if line.startswith(("MAX_RETRIES:", "LEASE_NAME:", "SYNC_CONCURRENCY:"))]
    assert len(shown) < len(FIELDS) // 2
    (digest,) = run.lines("Configuración: ")
    assert f"{len(shown)} de {len(FIELDS)} ajustes cambiados, huella " in digest and "coin-sync config" in digest
    # Every setting under LOG_LEVEL=DEBUG.
    debug = run_cli(BACKEND_URL=fake_backend.url, LOG_LEVEL="DEBUG")
    for f in FIELDS:
        assert debug.lines(f"] -   {f.env}: "), f.env
    assert debug.lines("] -   MAX_RETRIES: 3 (por defecto)")


def test_config_prints_every_setting_with_secrets_masked(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from coin_sync.config.settings import FIELDS

    run = run_cli("config", BACKEND_TOKEN="t0ps3cret", MAX_RETRIES="5", LOG_DIR=str(tmp_path / "never"))
    assert run.code == 0 and not run.stderr
    lines = run.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines[:-1]] == [f.env for f in FIELDS]
    assert "MAX_RETRIES=5" in lines and "HTTP_TIMEOUT=300.0  # por defecto" in lines
    assert "BACKEND_TOKEN=****" in lines and "t0ps3cret" not in run.stdout
    assert "FAIL_ON_STALE=false  # por defecto" in lines  # never Python's False
    changed = [line for line in lines[:-1] if not line.endswith("  # por defecto")]
    assert lines[-1].startswith(f"# {len(changed)} de {len(FIELDS)} ajustes cambiados, huella ")
    assert not (tmp_path / "never").exists()  # it logs nothing: no LOG_DIR created


class _Clock:
    day = date(2026, 1, 31)

    @classmethod
    def today(cls) -> date:
        return cls.day


def test_dated_file_switches_at_midnight(tmp_path: Path) -> None:
    handler = DatedFileHandler(tmp_path, "coin_sync_", today=_Clock)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("test-dated")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("before midnight")
        _Clock.day = date(2026, 2, 1)
        log.warning("after midnight")
    finally:
        log.removeHandler(handler)
        handler.close()
    assert (tmp_path / "coin_sync_2026-01-31.txt").read_text() == "before midnight\n"
    assert (tmp_path / "coin_sync_2026-02-01.txt").read_text() == "after midnight\n"


def test_lines_from_many_threads_reach_stdout_and_the_file_in_one_order(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = setup_logging("INFO", tmp_path, stream=stream)
    try:

        def chatter(worker: int) -> None:
            for line in range(400):
                log.info("worker %d line %d", worker, line)

        threads = [threading.Thread(target=chatter, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        shutdown_logging()
    (written,) = tmp_path.glob(f"coin_sync_{date.today().isoformat()}.txt")
    lines = written.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8 * 400
    assert lines == stream.getvalue().splitlines()
    # Left as found: later tests in this process see their own DEBUG lines.
    assert logging.getLogger("coin_sync").level == logging.NOTSET and logging.getLogger("coin_sync").propagate
