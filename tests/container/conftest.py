"""Fixtures of the container tests (image, loop wrapper, compose, skaffold)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

# Same trick as tests/conftest.py: this folder is not a package, and putting it on
# sys.path makes `import container_support` work under any pytest import mode.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from container_support import ListHandler  # noqa: E402


@pytest.fixture
def loop_log() -> tuple[logging.Logger, ListHandler]:
    """A logger for run_loop that keeps its records, detached from 'coin_sync'.

    Not 'coin_sync' itself: other suites call setup_logging(), which turns its
    propagation off, so caplog would see nothing depending on test order.
    """
    handler = ListHandler()
    log = logging.Logger("coin_sync.loop.wrapper-test", logging.DEBUG)
    log.addHandler(handler)
    return log, handler
