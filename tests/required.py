"""What some tests need from outside the repository: ../shared's schemas (beside the
repository in CI and on the developers' machines, never copied in) and the tools that
.ci/run installs. One rule for all of them: absent on a developer's machine, only the
calling test is skipped, with how to get it; absent in CI (CI=true), where it must be
there, the test fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SCHEMAS = REPO_ROOT.parent / "shared" / "schemas"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str) -> NoReturn:
    if in_ci():
        pytest.fail(message + " (en CI es obligatorio)")
    pytest.skip(message)


def shared_schema_path(name: str) -> Path:
    """A file of ../shared/schemas."""
    path = SHARED_SCHEMAS / name
    if not path.is_file():
        missing(f"{path} no existe: ../shared no está junto al repositorio")
    return path
