"""Every way a pass ends is published the same way: FIN line, SUMMARY_FILE and the
termination message (the Kubernetes ends are in tests/k8s/test_k8s_passes.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fake_backend import FakeBackend
from harness import REPO

# The pass itself raises: a bug. Replacing the pass from outside is the only way to make
# the real program crash on purpose; everything around it is the real CLI.
CRASHING = (
    "import sys\n"
    "import coin_sync.sync.runner as runner\n"
    "def boom(ctx):\n"
    "    raise RuntimeError('fallo inesperado')\n"
    "runner.run_pass = boom\n"
    "from coin_sync.cli import main\n"
    "sys.exit(main(['run']))\n"
)


def test_a_crashed_pass_is_published_with_exit_1_and_one_line(
    fake_backend: FakeBackend, base_env: dict[str, str], tmp_path: Path
) -> None:
    summary, termination = tmp_path / "s.json", tmp_path / "termination-log"
    termination.write_text("")
    env = {**base_env, "BACKEND_URL": fake_backend.url, "SUMMARY_FILE": str(summary)}
    env["TERMINATION_MESSAGE_PATH"] = str(termination)
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING], env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    (error,) = [line for line in out.splitlines() if " ERROR " in line]
    assert "La pasada terminó por un error interno: RuntimeError('fallo inesperado')" in error
    (fin,) = [line for line in out.splitlines() if "FIN DE SINCRONIZACIÓN #1" in line]
    assert "(ERROR INTERNO)" in fin and "código de salida: 1 (crashed)" in fin
    data = json.loads(summary.read_text())
    assert (data["exit_code"], data["reason"]) == (1, "crashed")
    assert json.loads(termination.read_text())["reason"] == "crashed"
