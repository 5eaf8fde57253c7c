"""The one stop mechanism, shared by the pass, its workers, the loop and the Lease renewer.

A Stop is a condition variable with a flag. Policy (a deadline, a lost backend, the end
of a pass) and signals set it; everyone who waits (a retry wait, the health wait, the
coordinator, the loop between passes, the renewer between renewals) waits on it, so a
stop wakes them all at once. `notify()` wakes waiters whose own condition changed (a
worker finished, a child process exited) without stopping anything.

Signals: `listen()` installs SIGTERM/SIGINT handlers. The Python handler only records the
signal (it may run while the main thread holds any lock) and, inside `raising()`,
raises Interrupted to abort a blocking call in the main thread. The waking is done by a
small thread that reads the signal numbers `signal.set_wakeup_fd` writes, so no lock is
ever taken inside a handler.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from coin_sync.outcome import EndReason

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """Raised out of a blocking call in the main thread when a signal arrives inside
    `Stop.raising()`. A BaseException so that no `except Exception` on the way (requests,
    urllib3) swallows it."""


class Stop:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stopped = False
        self.reason: EndReason | None = None
        self.signum: int | None = None  # the first stop signal received
        self._signals: deque[int] = deque()  # every one received, for the loop to forward
        self._raising = False

    # -- setting and waiting ----------------------------------------------------------
    def request(self, reason: EndReason | None = None, *, override: bool = False) -> None:
        """Stop. The first reason given wins, unless a later one overrides it."""
        with self._cond:
            if reason is not None and (self.reason is None or override):
                self.reason = reason
            self._stopped = True
            self._cond.notify_all()

    def is_set(self) -> bool:
        return self._stopped

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Until predicate() holds (checked on every request/notify) or timeout; its value."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait(self, timeout: float | None) -> bool:
        """Sleep until stopped or timeout; True when stopped."""
        return self.wait_for(self.is_set, timeout)

    def take_signals(self) -> list[int]:
        with self._cond:
            taken = list(self._signals)
            self._signals.clear()
            return taken

    # -- signals ----------------------------------------------------------------------
    def listen(self, signals: tuple[int, ...] = STOP_SIGNALS) -> Callable[[], None]:
        """Install the handlers; returns the function that puts the previous ones back.

        Outside the main thread Python cannot install handlers: nothing is installed.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        previous: dict[int, Any] = {sig: signal.signal(sig, self._handle) for sig in signals}
        watcher = threading.Thread(target=self._watch, args=(reader, frozenset(signals)), name="signals", daemon=True)
        watcher.start()

        def restore() -> None:
            for sig, handler in previous.items():
                if handler is not None:  # None: set outside Python, cannot be put back
                    signal.signal(sig, handler)
            signal.set_wakeup_fd(old_fd)
            writer.close()  # the watcher's recv() returns b"" and it ends
            watcher.join(1.0)
            reader.close()

        return restore

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum  # a plain assignment: safe whatever lock is held
        if self._raising:
            raise Interrupted()

    def _watch(self, reader: socket.socket, wanted: frozenset[int]) -> None:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in wanted:
                    self.deliver(signum)

    def deliver(self, signum: int) -> None:
        """A stop signal arrived: record it (the loop forwards each one) and stop."""
        with self._cond:
            if self.signum is None:
                self.signum = signum
            self._signals.append(signum)
            self._stopped = True
            self._cond.notify_all()

    @contextmanager
    def raising(self) -> Iterator[None]:
        """Inside, a stop signal raises Interrupted in the main thread at once."""
        self._raising = True
        try:
            if self.signum is not None:
                raise Interrupted()
            yield
        finally:
            self._raising = False
