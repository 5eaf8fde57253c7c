"""SIGTERM/SIGINT handling shared by every command that talks to the backend."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from coin_sync.summary import ExitCode

SIGNAL_EXIT = {signal.SIGINT: ExitCode.SIGINT, signal.SIGTERM: ExitCode.SIGTERM}


def exit_code_for_signal(signum: int | None) -> ExitCode:
    """130 for SIGINT, 143 for SIGTERM (and, as the safe default, for anything else)."""
    return SIGNAL_EXIT.get(signal.Signals(signum), ExitCode.SIGTERM) if signum else ExitCode.SIGTERM


class Interrupted(BaseException):
    """Raised out of a wait when a signal arrives in a phase with nothing to finish.

    A BaseException so that no `except Exception` on the way (requests, urllib3)
    swallows it.
    """


class SignalStop:
    """Records SIGTERM/SIGINT. The handler only assigns an attribute (it may run while
    the main thread holds any lock) or, inside `abort_on_signal()`, raises."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raise = False

    def install(self) -> Callable[[], None]:
        previous = {sig: signal.signal(sig, self._handle) for sig in SIGNAL_EXIT}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def exit_code(self) -> int:
        return int(exit_code_for_signal(self.signum))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if self._raise:
            raise Interrupted()

    @contextmanager
    def abort_on_signal(self) -> Iterator[None]:
        self._raise = True
        try:
            if self.signum is not None:
                raise Interrupted()
            yield
        finally:
            self._raise = False


def signal_name(signum: int) -> str:
    """SIGTERM for 15; the bare number for a signal Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
