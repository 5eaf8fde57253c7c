"""The README's promises: every setting and exit code documented, monitoring greps work."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from coin_sync.config.settings import FIELDS
from coin_sync.outcome import ExitCode
from fake_backend import FakeBackend, error400
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
