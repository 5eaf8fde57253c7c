"""Shared pytest fixtures: the fake backend and a port nobody listens on; how many
pytest-xdist workers `-n auto` starts."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests live in subfolders (tests/core, tests/chart, ...) that are not packages; putting
# this folder on sys.path lets all of them `from fake_backend import ...` the same module.
TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

# Every xdist worker imports, and pytest rewrites, every test module. Where the
# environment sets PYTHONDONTWRITEBYTECODE nothing is cached, and each worker redoes it
# all (about 1.4 s of CPU); cache it in pytest's own folder instead, never in the sources.
if sys.dont_write_bytecode:
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(Path(TESTS_DIR).parent / ".pytest_cache" / "pycache")

from fake_backend import FakeBackend  # noqa: E402


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Two workers per CPU: most of a test's time is spent waiting on a subprocess, a
    socket or a server, not computing. PYTEST_XDIST_AUTO_NUM_WORKERS, when set, is left
    to xdist, as is counting the CPUs."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    from xdist.plugin import pytest_xdist_auto_num_workers as one_per_cpu

    return 2 * one_per_cpu(config)


@pytest.fixture
def fake_backend() -> Iterator[FakeBackend]:
    """A running FakeBackend with 3 symbols (BTCUSDT, ETHUSDT, BNBUSDT), stopped afterwards."""
    backend = FakeBackend(symbols=3).start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def free_port() -> int:
    """A localhost port with no listener right now (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
