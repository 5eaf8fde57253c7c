"""The README's promises: every setting and exit code documented, monitoring greps work."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from coin_sync.config.settings import FIELDS
from coin_sync.outcome import ExitCode
from fake_backend import FakeBackend, error400, ok
from harness import clean_env

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_opens_with_the_two_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert "tests/fake_backend.py" in blocks[0] and "coin-sync" in blocks[0]
    assert blocks[1].strip() == "bash .ci/run"


def test_seed_sections_exist() -> None:
    for title in (
        "Funcionalidad",
        "Características",
        "Configuración",
        "Códigos de salida",
        "Logs",
        "Uso",
        "Monitoreo",
        "Troubleshooting",
    ):
        _section(title)


def test_every_setting_is_in_the_configuration_table() -> None:
    table = _section("Configuración")
    for f in FIELDS:
        assert f"`{f.env}`" in table, f.env


def test_every_exit_code_is_documented() -> None:
    table = _section("Códigos de salida")
    for code in ExitCode:
        assert f"| `{int(code)}` |" in table


def test_monitoring_commands_work_on_real_log_files(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    with FakeBackend(symbols=5) as backend:
        backend.script("ETHUSDT", error400("nope"))
        assert run_cli(BACKEND_URL=backend.url, LOG_DIR=str(tmp_path / "logs")).code == 1
    block = re.search(r"```bash\n(.*?)```", _section("Monitoreo"), re.S)
    assert block
    commands = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("tail -f")]
    assert len(commands) >= 4
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and proc.stdout.strip(), f"{command!r} found nothing: {proc.stderr}"


def test_the_first_command_runs_a_real_pass(tmp_path: Path) -> None:
    """The part after the installs, with .venv/bin/ mapped to this interpreter's bin/."""
    first = re.findall(r"```bash\n(.*?)```", README, re.S)[0].strip()
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install")
    pass_command = first.split(" && ")[-1]
    bindir = Path(sys.executable).parent
    argv = [
        str(bindir / Path(word).name) if word.startswith(".venv/bin/") else word for word in shlex.split(pass_command)
    ]
    env = clean_env(LOG_DIR=str(tmp_path / "logs"), K8S_INTEGRATION="off")
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count(" sincronizado: ") == 50
    assert "FIN DE SINCRONIZACIÓN #1" in proc.stdout


def _codes(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\b\d{1,3}\b", text)}


def test_every_exit_code_is_in_notes_the_image_label_and_the_docker_run_example() -> None:
    every = {int(code) for code in ExitCode}
    notes = (REPO / "chart" / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    notes_codes = re.search(r"Código de salida \((.*?)\)\s+y resumen", notes, re.S)
    assert notes_codes and _codes(notes_codes.group(1)) == every
    label = re.search(r"código de estado \(([^)]*)\)", (REPO / "Dockerfile").read_text(encoding="utf-8"))
    assert label and _codes(label.group(1)) == every
    echo = re.search(r"^echo \$\?\s+#(.*)$", _section("Uso"), re.M)
    assert echo and _codes(echo.group(1)) == every


def test_the_sample_log_line_names_the_real_file_and_line(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    sample = re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - coin_sync - (\w+) - \[(\S+?):(\d+)\] - (.*)$", README, re.M)
    assert sample, "no sample log line in the README"
    level, filename, lineno, message = sample.groups()
    (source,) = (REPO / "coin_sync").rglob(filename)  # the file exists, and only once
    assert "log." in source.read_text(encoding="utf-8").splitlines()[int(lineno) - 1]
    symbol = message.split()[1]
    with FakeBackend(symbols=[symbol]) as backend:
        backend.script(symbol, ok(1))
        run = run_cli(BACKEND_URL=backend.url, LOG_DIR=str(tmp_path / "logs"))
    assert run.code == 0
    # The very line a pass logs there, but for its date.
    assert f" - coin_sync - {level} - [{filename}:{lineno}] - {message}" in run.stdout, run.stdout


def _summary_keys(value: object, prefix: str = "") -> set[str]:
    """Every key of the summary, nested ones included (symbols' items as one)."""
    keys: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            keys |= {key} | _summary_keys(inner)
    elif isinstance(value, list) and value:
        keys |= _summary_keys(value[0])
    return keys


def test_every_summary_field_is_documented() -> None:
    from coin_sync.outcome import EndReason, PassReport, SymbolResult, SymbolStatus

    report = PassReport(pass_number=1, started_at="2026-01-01T00:00:00+00:00", reason=EndReason.CRASHED)
    report.results = [SymbolResult("BTCUSDT", SymbolStatus.OK)]
    report.detail = "x"  # present only on some ends: documented all the same
    keys = _summary_keys(report.to_dict())
    start = README.index("`SUMMARY_FILE` guarda el mismo resumen en JSON")
    documented = set(re.findall(r"`([a-z_]+)`", README[start : README.index("Sin métricas", start)]))
    assert keys - documented == set()
    assert {"pass_number", "started_at", "shard", "concurrency", "requeued", "index", "count"} <= documented


def test_without_metrics_the_readmes_show_stale_and_max_lag_with_jq() -> None:
    block = re.search(r"Sin métricas.*?```bash\n(.*?)```", README, re.S)
    assert block and "jq" in block.group(1) and "SUMMARY_FILE" in block.group(1)
    assert "stale" in block.group(1) and "max_lag_seconds" in block.group(1)
    chart = (REPO / "chart" / "README.md").read_text(encoding="utf-8")
    assert re.search(r"Sin métricas, `stale` y `max_lag_seconds`.*?jq", chart, re.S)


def test_the_real_backend_example_sets_log_dir_and_the_speed_claims_match_the_table() -> None:
    line = next(line for line in README.splitlines() if line.startswith("Contra un backend real:"))
    assert "LOG_DIR=" in line
    claimed = re.search(r"una\s+pasada de un símbolo tarda ~(\d+),(\d+) s", README)
    measured = re.search(r"\| Pasada de un símbolo \| mediana (\d+),(\d+) s", README)
    assert claimed and measured
    assert abs(float(".".join(claimed.groups())) - float(".".join(measured.groups()))) <= 0.1
