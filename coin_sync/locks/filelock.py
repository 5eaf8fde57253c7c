"""The run lock outside Kubernetes: an exclusive fcntl advisory lock on LOCK_FILE.

A PassGuard (coin_sync/locks/guard.py), as the Kubernetes guard: `acquire()` answers a
LockOutcome ("acquired", "held", "unavailable" or "inactive" with LOCK_FILE=off),
`finish(report)` releases it, and `state_store()` is None (the ambiguous syncs stay in
STATE_FILE). The kernel releases the lock when the process dies, so a
killed pass never leaves it taken; the file itself stays (removing it would let two
passes lock two different files). It holds one line naming the holder, for the
`Otra pasada está en curso (...)` line of the pass that finds it taken.

A POSIX record lock (lockf), not flock: it also works across hosts on NFS, as in two
hosts sharing the logs volume. One lock per shard (LOCK_FILE gets `-<index>`).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from coin_sync.config.parsing import OFF
from coin_sync.locks.guard import LockOutcome
from coin_sync.outcome import PassReport
from coin_sync.sync.state import StateStore

HOLDER_LIMIT = 200


class FileLockGuard:
    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self._log = log
        self._fd: int | None = None

    def acquire(self) -> LockOutcome:
        if self.path == OFF:
            return LockOutcome("inactive")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            return self._unavailable(exc)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return LockOutcome("held", self._holder())
            return self._unavailable(exc)
        self._fd = fd
        self._write_holder(fd)
        return LockOutcome("acquired")

    def finish(self, report: PassReport) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        except OSError:
            pass  # closing releases it all the same
        finally:
            os.close(fd)

    def state_store(self) -> StateStore | None:
        return None

    def _unavailable(self, exc: OSError) -> LockOutcome:
        detail = f"LOCK_FILE {self.path}: {exc.strerror or exc}"
        self._log.warning("No se puede usar el cerrojo %s; la pasada sigue sin cerrojo", detail)
        return LockOutcome("unavailable", detail)

    @staticmethod
    def _write_holder(fd: int) -> None:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        line = f"pid {os.getpid()} en {socket.gethostname()} desde {since}\n".encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, line, 0)
        except OSError:
            pass  # the lock is what matters; the holder line is a courtesy

    def _holder(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        holder = " ".join(text.split())[:HOLDER_LIMIT]
        return f"{holder}; LOCK_FILE {self.path}" if holder else f"LOCK_FILE {self.path}"
