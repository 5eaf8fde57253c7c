"""The image's command, run the way the image runs it, without Docker.

- a fresh venv built only from requirements.txt (with no pip in it, as in the image),
- the package built from pyproject.toml out of the files the Dockerfile copies,
- the runtime stage's ENV, USER, ENTRYPOINT and CMD read from the Dockerfile,
- the code read-only, LOG_DIR and TMPDIR the only writable places; the working and home
  directories are writable too, as traps: they must stay empty.

The venv with the requirements is cached per requirements.txt and interpreter (it is
the slow part and does not depend on our code); the package is rebuilt every session.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from container_support import REPO_ROOT, LineProcess, parse_dockerfile, stage_named

from fake_backend import FakeBackend

STAGES = parse_dockerfile()
RUNTIME = stage_named(STAGES, "runtime")
BUILDER = stage_named(STAGES, "builder")
UID, GID = (int(x) for x in (RUNTIME.last("USER") or "").split(":"))
# As root, everything runs as the image's UID/GID; otherwise we already are non-root.
SWITCH_USER = os.geteuid() == 0
AS_USER = (UID, GID) if SWITCH_USER else None
# What a pass may leave in LOG_DIR: its daily logs, and beside them the lock file and the
# state file of the ambiguous syncs (LOCK_FILE, STATE_FILE).
LOG_FILE = re.compile(r"coin_sync_(errors_)?\d{4}-\d{2}-\d{2}\.txt|\.coin-sync\.lock|\.coin-sync-state\.json")


def _as_user(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    if AS_USER is not None:
        kwargs.update(user=UID, group=GID, extra_groups=[])
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def _interpreter() -> str:
    """A Python >= 3.11 that the image's UID can run (/root/... often is out of its reach)."""
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable))]
    candidates += [p for p in ("/usr/local/bin/python3", "/usr/bin/python3") if os.path.exists(p)]
    for candidate in dict.fromkeys(candidates):
        try:
            probe = _as_user([candidate, "-c", "import sys; print(sys.version_info >= (3, 11))"], timeout=30)
        except PermissionError:  # exec() itself refused: a parent directory it cannot enter
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    pytest.fail(f"ningún Python >= 3.11 ejecutable por el UID {UID} entre {candidates}")


def _pip(python: Path, *args: str) -> None:
    # The running interpreter's pip installs into the target venv (--python), as the
    # Dockerfile does with the base image's pip: the venv itself has no pip.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def _readable_by_all(root: Path, *, read_only: bool = False) -> None:
    """Readable (and searchable) by the image's UID; writable by nobody else, or by no one."""
    no_write = stat.S_IWGRP | stat.S_IWOTH | (stat.S_IWUSR if read_only else 0)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            path.chmod((mode | extra) & ~no_write)


def _requirements_venv() -> Path:
    requirements = REPO_ROOT / "requirements.txt"
    python = _interpreter()
    key = hashlib.sha256(requirements.read_bytes() + python.encode() + sys.version.encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "coin-sync-image-venvs"
    cache.mkdir(exist_ok=True)
    cache.chmod(0o755)
    venv = cache / key
    if venv.is_dir():
        return venv
    building = cache / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([python, "-m", "venv", "--without-pip", str(building)], check=True, timeout=60)
    _pip(building / "bin" / "python", "install", "--quiet", "-r", str(requirements))
    _readable_by_all(building)
    try:
        building.rename(venv)  # atomic: a venv in the cache is always complete
    except OSError:  # another session finished the same one first
        shutil.rmtree(building, ignore_errors=True)
    return venv


@dataclass
class Image:
    venv: Path
    app: Path  # the installed package: the image has it in the venv, here it is on PYTHONPATH
    logs: Path
    tmp: Path
    work: Path  # working and home directory: must stay empty

    def env(self, **extra: str) -> dict[str, str]:
        """The runtime stage's ENV with its paths mapped here; nothing of this process's."""
        mapped = {"/opt/venv": str(self.venv), "/logs": str(self.logs)}
        env: dict[str, str] = {}
        for key, image_value in RUNTIME.pairs("ENV").items():
            value = image_value.replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
            for image_path, here in mapped.items():
                value = value.replace(image_path, here)
            env[key] = value
        env.update(PYTHONPATH=str(self.app), HOME=str(self.work), TMPDIR=str(self.tmp), **extra)
        return env

    def argv(self, *command: str) -> list[str]:
        return [*RUNTIME.exec_form("ENTRYPOINT"), *(command or RUNTIME.exec_form("CMD"))]

    def run(self, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        python_argv = self.argv(*command)
        python_argv[0] = shutil.which(python_argv[0], path=self.env()["PATH"]) or python_argv[0]
        return _as_user(python_argv, env=self.env(**extra), cwd=self.work, timeout=60)

    def snapshot(self) -> dict[str, tuple[int, float]]:
        """Every file of the code and the venv, to prove nothing was added or changed."""
        files = (p for root in (self.app, self.venv) for p in root.rglob("*"))
        return {str(p): (p.lstat().st_size, p.lstat().st_mtime) for p in files}


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    venv = _requirements_venv()
    root = Path(tempfile.mkdtemp(prefix="coin-sync-image-"))
    root.chmod(0o755)  # mkdtemp's 0700 would keep the image's UID out
    try:
        # The package, built from exactly what the builder stage copies from the context.
        build = root / "build"
        build.mkdir()
        for flags, sources, _ in BUILDER.copies():
            for source in sources:
                if "from" not in flags and source != "requirements.txt":
                    src = REPO_ROOT / source.rstrip("/")
                    if src.is_dir():  # without what .dockerignore keeps out of the context
                        bytecode = shutil.ignore_patterns("__pycache__", "*.py[cod]")
                        shutil.copytree(src, build / src.name, ignore=bytecode)
                    else:
                        shutil.copy2(src, build / src.name)
        app = root / "app"
        _pip(venv / "bin" / "python", "install", "--quiet", "--no-deps", "--no-compile", f"--target={app}", str(build))
        # Read-only even for its owner, should the tests not run as root.
        _readable_by_all(app, read_only=True)
        writable = []
        for name in ("logs", "tmp", "work"):
            (root / name).mkdir()
            if SWITCH_USER:
                os.chown(root / name, UID, GID)
            writable.append(root / name)
        yield Image(venv, app, *writable)
    finally:
        for directory in [root, *root.rglob("*")]:
            if directory.is_dir() and not directory.is_symlink():
                directory.chmod(directory.stat().st_mode | stat.S_IWUSR)  # so it can be removed
        shutil.rmtree(root, ignore_errors=True)


def test_the_venv_holds_only_the_requirements(image: Image) -> None:
    assert not (image.venv / "bin" / "pip").exists()  # as in the image: no installer
    site = next((image.venv / "lib").glob("python3.*/site-packages"))
    assert not list(site.glob("coin_sync*"))
    assert list(image.app.glob("coin_sync/loop/wrapper.py"))


def test_one_pass_as_the_image_runs_it(image: Image, fake_backend: FakeBackend) -> None:
    before = image.snapshot()
    result = image.run(BACKEND_URL=fake_backend.url, BACKEND_WAIT_SECONDS="5")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "INICIO DE SINCRONIZACIÓN #1" in result.stdout
    assert "FIN DE SINCRONIZACIÓN #1" in result.stdout
    assert len(fake_backend.sync_calls()) == 3
    # Its log files, in LOG_DIR, written by the image's UID...
    logs = sorted(p.name for p in image.logs.iterdir())
    assert f"coin_sync_{date.today().isoformat()}.txt" in logs
    assert all(LOG_FILE.fullmatch(name) for name in logs), logs
    if SWITCH_USER:
        assert {p.stat().st_uid for p in image.logs.iterdir()} == {UID}
    # ...and nothing anywhere else: not in the (writable) working and home directory,
    # not a __pycache__ or anything else beside the code.
    assert list(image.work.iterdir()) == []
    assert image.snapshot() == before
    assert "AVISO" not in result.stderr, result.stderr  # LOG_DIR was usable


@pytest.mark.parametrize("command", ["check", "symbols"])
def test_other_subcommands_work_the_same_way(image: Image, fake_backend: FakeBackend, command: str) -> None:
    result = image.run(command, BACKEND_URL=fake_backend.url, BACKEND_WAIT_SECONDS="5")

    assert result.returncode == 0, result.stdout + result.stderr
    if command == "symbols":
        assert result.stdout.split() == fake_backend.symbols
    assert list(image.work.iterdir()) == []


def test_the_loop_runs_the_same_way_and_stops_on_sigterm(image: Image, fake_backend: FakeBackend) -> None:
    argv = image.argv("loop")
    env = image.env(BACKEND_URL=fake_backend.url, SYNC_INTERVAL_SECONDS="1", BACKEND_WAIT_SECONDS="5")
    argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    with LineProcess(argv, env=env, cwd=image.work, user=AS_USER) as proc:
        proc.wait_for(r"Pasada #1 terminada con código 0\b", timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0, proc.output
    assert list(image.work.iterdir()) == []
