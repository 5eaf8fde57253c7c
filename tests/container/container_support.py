"""Helpers of the container tests.

No Docker engine runs here, so the Dockerfile, .dockerignore and compose files are read
the way Docker reads them (stages, exec forms, ignore patterns, `${VAR:-default}`), and
the programs they describe are run as plain processes whose output is timed line by line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from required import shared_schema_path

from fake_backend import FakeBackend

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_schema(name: str) -> dict[str, Any]:
    """A JSON schema from ../shared/schemas (tests/required.py's rule when it is absent)."""
    schema: dict[str, Any] = json.loads(shared_schema_path(name).read_text(encoding="utf-8"))
    return schema


def find_tool(name: str) -> str | None:
    """`name` on PATH, else beside the running interpreter (a venv's bin/, where pip puts it)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if os.access(beside, os.X_OK) else None


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelno == level]


# --- Dockerfile ---------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        """The last ENTRYPOINT/CMD as a JSON array; AssertionError if it is the shell form."""
        args = self.last(keyword)
        assert args is not None, f"la etapa {self.name} no tiene {keyword}"
        try:
            value = json.loads(args)
        except ValueError:
            raise AssertionError(f"{keyword} {args} está en forma shell, no exec (JSON)") from None
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
        return value

    def pairs(self, keyword: str) -> dict[str, str]:
        """ENV or LABEL key=value pairs of this stage, later ones winning."""
        result: dict[str, str] = {}
        for args in self.all(keyword):
            words = shlex.split(args)
            if words and "=" not in words[0]:  # legacy `ENV KEY value with spaces`
                result[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                result[key] = value
        return result

    def copies(self) -> list[tuple[dict[str, str], list[str], str]]:
        """Each COPY as (flags such as {'from': 'builder'}, sources, destination)."""
        result = []
        for args in self.all("COPY"):
            words = shlex.split(args)
            flags = {}
            while words and words[0].startswith("--"):
                key, _, value = words.pop(0)[2:].partition("=")
                flags[key] = value
            result.append((flags, words[:-1], words[-1]))
        return result


def parse_dockerfile(path: Path = REPO_ROOT / "Dockerfile") -> list[Stage]:
    """The stages in order; line continuations joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # comments inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)

    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        elif keyword != "ARG":
            raise AssertionError(f"instrucción antes del primer FROM: {line}")
    return stages


def stage_named(stages: Sequence[Stage], name: str) -> Stage:
    for stage in stages:
        if stage.name == name:
            return stage
    raise AssertionError(f"el Dockerfile no tiene la etapa {name!r}")


# --- .dockerignore --------------------------------------------------------------------


def read_dockerignore(path: Path = REPO_ROOT / ".dockerignore") -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_excludes(patterns: Sequence[str], path: str) -> bool:
    """Whether Docker leaves `path` (relative, with /) out of the build context.

    Docker's rules: patterns apply in order and the last one that matches wins; `!`
    re-includes; a pattern that matches a parent directory matches everything in it.
    """
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = os.path.normpath(raw[1:] if negate else raw).lstrip("/")
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


# --- compose --------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset), `$$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        name = m.group("name")
        if name is None:
            return "$"
        current = env.get(name)
        if m.group("op") == ":-" and not current:
            return m.group("default")
        if m.group("op") == "-" and current is None:
            return m.group("default")
        return current or ""

    return _VARIABLE.sub(substitute, value)


# --- processes ------------------------------------------------------------------------


def loop_env(backend: FakeBackend, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a real `coin-sync loop` against `backend`: a pass a second."""
    from coin_sync.config.table import setting_names

    # Nothing of the caller's coin-sync settings (a CI runner may export BACKEND_URL...).
    env = {k: v for k, v in os.environ.items() if k not in setting_names() and k != "CONFIG_FILE"}
    env.update(
        BACKEND_URL=backend.url,
        SYNC_INTERVAL_SECONDS="1",
        LOG_DIR=str(tmp_path / "logs"),
        LOG_FORMAT="json",  # times to the millisecond, by the process that logs
        BACKEND_WAIT_SECONDS="2",
        RETRY_DELAY_SECONDS="0",
        K8S_INTEGRATION="off",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def start_loop(env: dict[str, str]) -> LineProcess:
    """`python -m coin_sync loop`, its output kept line by line."""
    return LineProcess([sys.executable, "-m", "coin_sync", "loop"], env=env, cwd=REPO_ROOT)


class LineProcess:
    """A subprocess whose stdout+stderr lines are kept with their arrival time (monotonic)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        user: tuple[int, int] | None = None,
    ) -> None:
        """user: (uid, gid) to run as, with no supplementary groups (needs root)."""
        self.argv = list(argv)
        self.started = time.monotonic()
        as_user: dict[str, Any] = {} if user is None else {"user": user[0], "group": user[1], "extra_groups": []}
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **as_user,
        )
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append((time.monotonic(), line))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def times(self, pattern: str) -> list[float]:
        regex = re.compile(pattern)
        with self._cond:
            return [t for t, line in self.lines if regex.search(line)]

    def wait_for(self, pattern: str, timeout: float) -> float:
        """Arrival time of the first line matching `pattern` (already seen or coming)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, line in self.lines:
                    if regex.search(line):
                        return t
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise AssertionError(
                        f"ninguna línea con {pattern!r} en {timeout} s (código de salida: "
                        f"{self.proc.poll()}). Salida:\n{self.output}"
                    )
                self._cond.wait(left)

    def send_signal(self, signum: int = signal.SIGTERM) -> float:
        self.proc.send_signal(signum)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.argv} no terminó en {timeout} s. Salida:\n{self.output}") from None
        self._reader.join(5)
        return code

    def __enter__(self) -> LineProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
