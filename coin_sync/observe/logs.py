"""Logging with the seed's contract: one line format, stdout plus dated files.

The users' monitoring greps these files, so their names and line format are an API:
  coin_sync_YYYY-MM-DD.txt         everything at LOG_LEVEL
  coin_sync_errors_YYYY-MM-DD.txt  ERROR and above
named by the local date at the moment each line is written.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import IO, TextIO

LOGGER_NAME = "coin_sync"
LINE_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - [%(filename)s:%(lineno)d] - %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
FILE_PREFIX = "coin_sync_"
ERRORS_PREFIX = "coin_sync_errors_"


class DatedFileHandler(logging.Handler):
    """Appends to PREFIX<local date>.txt, switching files when the date changes.

    Checked on every line rather than at a scheduled rollover, so a pass that runs
    across midnight writes the next day's file and nothing is renamed under tail -f.
    """

    def __init__(self, directory: Path, prefix: str, today: type[date] = date) -> None:
        super().__init__()
        self.directory = directory
        self.prefix = prefix
        self._today = today
        self._day: date | None = None
        self._stream: IO[str] | None = None
        self._failed = False

    def path_for(self, day: date) -> Path:
        return self.directory / f"{self.prefix}{day.isoformat()}.txt"

    def emit(self, record: logging.LogRecord) -> None:
        if self._failed:
            return
        try:
            day = self._today.today()
            if day != self._day or self._stream is None:
                self._close_stream()
                self._stream = open(self.path_for(day), "a", encoding="utf-8")  # noqa: SIM115
                self._day = day
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except OSError as exc:
            # A full disk must not kill the pass nor spray tracebacks: say it once and
            # carry on with stdout alone.
            self._failed = True
            print(f"AVISO: no se puede escribir el log en {self.directory}: {exc.strerror or exc}", file=sys.stderr)

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self.acquire()
        try:
            self._close_stream()
        finally:
            self.release()
        super().close()


class InOrder(logging.Handler):
    """Hands each record to every sink under one lock: with one handler per sink, two
    workers' lines could cross between them, and a file would not read like stdout."""

    def __init__(self, sinks: list[logging.Handler]) -> None:
        super().__init__()
        self.sinks = sinks

    def emit(self, record: logging.LogRecord) -> None:
        for sink in self.sinks:
            if record.levelno >= sink.level:
                sink.handle(record)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        super().close()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "file": record.filename,
            "line": record.lineno,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _not_decoration(record: logging.LogRecord) -> bool:
    """A line of '=' only (around INICIO, FIN, the banner) decorates text; as a JSON
    record it is noise."""
    return set(record.getMessage()) != {"="}


def _usable_dir(directory: Path) -> str | None:
    """None when files can be written there, else why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(directory, os.W_OK | os.X_OK):
        return "sin permiso de escritura"
    return None


def setup_logging(
    level: str,
    log_dir: Path,
    log_format: str = "text",
    stream: TextIO | None = None,
) -> logging.Logger:
    """Configure the 'coin_sync' logger (idempotent: replaces its handlers)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = False

    text = logging.Formatter(LINE_FORMAT, DATE_FORMAT)
    console = logging.StreamHandler(stream if stream is not None else sys.stdout)
    console.setFormatter(JsonFormatter() if log_format == "json" else text)
    if log_format == "json":
        console.addFilter(_not_decoration)
    sinks: list[logging.Handler] = [console]

    problem = _usable_dir(log_dir)
    if problem is None:
        everything = DatedFileHandler(log_dir, FILE_PREFIX)
        errors = DatedFileHandler(log_dir, ERRORS_PREFIX)
        errors.setLevel(logging.ERROR)
        for handler in (everything, errors):
            handler.setFormatter(text)
            sinks.append(handler)
    else:
        print(
            f"AVISO: LOG_DIR {str(log_dir)!r} no se puede usar ({problem}); solo se registra en stdout",
            file=sys.stderr,
        )
    logger.addHandler(InOrder(sinks))
    return logger


def shutdown_logging() -> None:
    """Undo setup_logging: handlers closed, level and propagation as before it, so a
    `main()` called in-process leaves the 'coin_sync' loggers as it found them."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        handler.flush()
        handler.close()
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
