"""Shared pytest fixtures: the fake backend and a port nobody listens on."""

from __future__ import annotations

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

from fake_backend import FakeBackend  # noqa: E402


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
