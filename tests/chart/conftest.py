"""Fixtures of the chart tests (tests/chart): the real helm binary and cached renders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .helm import CI_VALUES, Doc, Helm, HelmNotFound, find_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The real helm ($HELM, PATH or .venv/bin/helm). Missing helm fails, never skips."""
    try:
        return Helm(find_helm(), tmp_path_factory.mktemp("helm-home"))
    except HelmNotFound as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def default_docs(helm: Helm) -> list[Doc]:
    return helm.render()


@pytest.fixture(scope="session")
def ci_docs(helm: Helm) -> dict[str, list[Doc]]:
    """Each chart/ci/*.yaml rendered, by file stem (e.g. "full-values")."""
    return {f.stem: helm.render(f) for f in CI_VALUES}


@pytest.fixture
def values_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a values file from YAML text; returns its path."""

    def write(text: str, name: str = "values.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
