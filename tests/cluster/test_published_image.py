"""The image as users get it: built from the Dockerfile, pushed to the registry, pulled
back by digest and run by podman the way Kubernetes runs it (its own USER, a read-only
root, /logs and /dev/termination-log mounted) against the fake backend on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from publish import Podman, PublishedImage, podman, project_version

from fake_backend import FakeBackend, error400, exchange_error, hang

# The image's USER (tests/container/test_dockerfile.py pins it in the Dockerfile).
UID = GID = 10001


@dataclass(frozen=True)
class Mounts:
    logs: Path  # mounted at /logs (LOG_DIR), as the chart's emptyDir
    out: Path  # mounted at /out: SUMMARY_FILE goes there
    termination_log: Path  # mounted at /dev/termination-log, as the kubelet does

    def summary(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.out / "summary.json").read_text(encoding="utf-8"))
        return data

    def termination_message(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.termination_log.read_text(encoding="utf-8"))
        return data


@pytest.fixture(scope="module")
def pulled(coin_sync_image: PublishedImage) -> tuple[Podman, str]:
    """The image pulled from the registry by digest: what a node would run."""
    tool = podman()
    tool.run("pull", "--quiet", "--tls-verify=false", coin_sync_image.ref)
    return tool, coin_sync_image.ref


@pytest.fixture
def mounts(tmp_path: Path) -> Mounts:
    logs, out = tmp_path / "logs", tmp_path / "out"
    termination_log = tmp_path / "termination-log"
    for directory in (logs, out):
        directory.mkdir()
    termination_log.touch()
    # The kubelet hands the container an emptyDir and a termination-log it can write.
    for path in (tmp_path, logs, out, termination_log):
        if os.geteuid() == 0:
            os.chown(path, UID, GID)
    tmp_path.chmod(0o755)
    return Mounts(logs, out, termination_log)


def podman_run_args(ref: str, mounts: Mounts, env: dict[str, str], name: str) -> list[str]:
    args = [
        "run",
        "--rm",
        "--name",
        name,
        "--network=host",
        "--read-only",  # readOnlyRootFilesystem; podman adds a tmpfs on /tmp as the chart does
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--volume",
        f"{mounts.logs}:/logs",
        "--volume",
        f"{mounts.out}:/out",
        "--volume",
        f"{mounts.termination_log}:/dev/termination-log",
        "--env",
        "SUMMARY_FILE=/out/summary.json",
    ]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return [*args, ref]


def run_image(
    pulled: tuple[Podman, str], mounts: Mounts, *command: str, **env: str
) -> subprocess.CompletedProcess[str]:
    tool, ref = pulled
    name = f"coin-sync-test-{uuid.uuid4().hex[:12]}"
    return tool.run(*podman_run_args(ref, mounts, env, name), *command, check=False, timeout=120)


@pytest.fixture
def container_names(pulled: tuple[Podman, str]) -> Iterator[list[str]]:
    """Names of containers a test starts in the background; removed afterwards, running or not."""
    names: list[str] = []
    yield names
    for name in names:
        pulled[0].run("rm", "--force", "--time", "0", name, check=False)


def test_the_published_image_is_the_runtime_stage_with_its_own_user(
    pulled: tuple[Podman, str], coin_sync_image: PublishedImage
) -> None:
    tool, ref = pulled
    config = json.loads(tool.run("image", "inspect", ref).stdout)[0]["Config"]
    assert config["User"] == f"{UID}:{GID}"
    assert config["Entrypoint"] == ["python", "-m", "coin_sync"]
    assert config["Cmd"] == ["run"]
    assert config["Labels"]["org.opencontainers.image.version"] == project_version()
    # What the registry serves by that digest is the image that was built.
    assert tool.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == coin_sync_image.image_id


def test_one_pass_against_the_fake_backend_as_kubernetes_runs_it(
    pulled: tuple[Podman, str], mounts: Mounts, fake_backend: FakeBackend
) -> None:
    result = run_image(pulled, mounts, BACKEND_URL=fake_backend.url, BACKEND_WAIT_SECONDS="5")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "INICIO DE SINCRONIZACIÓN #1" in result.stdout
    fin = re.search(
        r"FIN DE SINCRONIZACIÓN #1 - correctos: 3, fallidos: 0\b.*código de salida: 0 \(ok\)", result.stdout
    )
    assert fin, result.stdout
    assert sorted(call.symbol for call in fake_backend.sync_calls()) == sorted(fake_backend.symbols)
    summary = mounts.summary()
    assert (summary["exit_code"], summary["reason"]) == (0, "ok")
    message = mounts.termination_message()
    assert (message["exit_code"], message["reason"], message["ok"]) == (0, "ok", 3)
    # Written by the image's user, on a read-only root: LOG_DIR is the one place it writes.
    logs = list(mounts.logs.iterdir())
    assert any(re.fullmatch(r"coin_sync_\d{4}-\d{2}-\d{2}\.txt", p.name) for p in logs), logs
    assert {p.stat().st_uid for p in [*logs, mounts.out / "summary.json"]} == {UID}
    assert "AVISO" not in result.stderr, result.stderr


def test_the_root_filesystem_is_really_read_only(pulled: tuple[Podman, str]) -> None:
    # The pass above proves the program needs no writable root; this proves the run
    # really had none, and no root user to get around it.
    probe = "import os; print(os.getuid()); open('/opt/venv/probe', 'w')"
    tool, ref = pulled
    result = tool.run(
        "run",
        "--rm",
        "--network=host",
        "--read-only",
        "--entrypoint",
        "python",
        ref,
        "-c",
        probe,
        check=False,
    )
    assert result.stdout.strip() == str(UID)
    assert "Read-only file system" in result.stderr, result.stderr


# case -> (exit code, reason in the summary; None: the configuration is refused before a pass)
EXIT_CASES: dict[str, tuple[int, str | None]] = {
    "a symbol fails": (1, "symbols_failed"),
    "bad configuration": (2, None),
    "backend down": (3, "backend_unavailable"),
    "exchange rate limit": (4, "exchange_limited"),
}


@pytest.mark.parametrize("case", EXIT_CASES)
def test_exit_codes_from_the_image(
    pulled: tuple[Podman, str], mounts: Mounts, fake_backend: FakeBackend, free_port: int, case: str
) -> None:
    code, reason = EXIT_CASES[case]
    env = {"BACKEND_URL": fake_backend.url, "BACKEND_WAIT_SECONDS": "1", "MAX_RETRIES": "1"}
    if case == "a symbol fails":
        fake_backend.script("BTCUSDT", error400("El parámetro 'symbol' es requerido"))
    elif case == "bad configuration":
        env["SYNC_CONCURRENCY"] = "cero"
    elif case == "backend down":
        env["BACKEND_URL"] = f"http://127.0.0.1:{free_port}"
    else:
        fake_backend.script("BTCUSDT", exchange_error("rate_limited"))
        env["SYNC_CONCURRENCY"] = "1"

    result = run_image(pulled, mounts, **env)

    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    if reason is None:
        # A configuration error ends before any pass: one line naming the setting.
        assert "SYNC_CONCURRENCY" in result.stderr, result.stderr
        return
    assert re.search(rf"FIN DE SINCRONIZACIÓN #1 .*código de salida: {code} \({reason}\)", result.stdout), result.stdout
    message = mounts.termination_message()
    assert (message["exit_code"], message["reason"]) == (code, reason)


def test_sigterm_reaches_the_program_as_pid_1(
    pulled: tuple[Podman, str], mounts: Mounts, fake_backend: FakeBackend, container_names: list[str]
) -> None:
    """Exec-form ENTRYPOINT: `podman stop` / the kubelet's SIGTERM goes to Python itself."""
    fake_backend.script("BTCUSDT", hang(60))
    tool, ref = pulled
    name = f"coin-sync-test-{uuid.uuid4().hex[:12]}"
    container_names.append(name)
    # A short grace: the hung sync is abandoned at once instead of awaited.
    env = {"BACKEND_URL": fake_backend.url, "BACKEND_WAIT_SECONDS": "5", "SHUTDOWN_GRACE_SECONDS": "1"}
    proc = subprocess.Popen(
        [tool.binary, *podman_run_args(ref, mounts, env, name)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not fake_backend.sync_calls("BTCUSDT") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_backend.sync_calls("BTCUSDT"), "la pasada no llegó a sincronizar BTCUSDT"

    tool.run("kill", "--signal", "TERM", name)
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()

    assert proc.returncode == 143, output
    assert re.search(r"FIN DE SINCRONIZACIÓN #1 \(INTERRUMPIDA por SIGTERM\).*código de salida: 143", output), output
    assert mounts.termination_message()["exit_code"] == 143
