"""A pass in its own process, as the loop sees it: started, waited for, signalled."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Protocol

from coin_sync.stop import Stop


class Child(Protocol):
    """What the loop needs of a running pass: the part of `subprocess.Popen` it uses."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


# Starts pass `argv` with exactly the environment `env`; raises OSError if it cannot.
Spawner = Callable[[list[str], dict[str, str]], Child]


def spawn_process(argv: list[str], env: dict[str, str]) -> Child:
    # Own process group: a terminal's Ctrl+C reaches the pass once, forwarded by the
    # loop, instead of twice (once from the terminal, once from us).
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, process_group=0)


def notify_on_exit(child: Child, stop: Stop) -> None:
    """The waker: wait for the pass to end (a Popen is reaped here), then wake the loop,
    which reads the exit code with poll()."""
    child.wait()
    stop.notify()
