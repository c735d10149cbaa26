"""Logging set-up: structlog, configured once per process.

Console output is human-readable on a terminal and JSON otherwise; every event also goes as
JSON lines to `<run folder>/<process>.log.jsonl`. Loops never log per tick: they log a
summary per window and rate-limit warnings.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

import structlog

# `hil run` sets this for its children while it draws a live status line on the terminal:
# their info lines then go to the log files only, not across the status line.
CONSOLE_LEVEL_ENV = "HIL_CONSOLE_LEVEL"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class _Tee:
    """Renders each event twice: for the console and as JSON for the log file."""

    def __init__(self, console: structlog.types.Processor, logfile: TextIO | None,
                 console_level: int = logging.DEBUG) -> None:
        self._console = console
        self._json = structlog.processors.JSONRenderer()
        self._logfile = logfile
        self._console_level = console_level

    def __call__(self, logger: object, name: str, event: dict) -> str:
        if self._logfile is not None:
            self._logfile.write(self._json(logger, name, dict(event)) + "\n")
            self._logfile.flush()
        if _LEVELS.get(name, logging.CRITICAL) < self._console_level:
            raise structlog.DropEvent  # in the file only
        return self._console(logger, name, event)


def configure(process: str, level: str = "info", run_dir: Path | None = None,
              stream: TextIO | None = None) -> structlog.stdlib.BoundLogger:
    """Configure structlog for this process and return its logger."""
    stream = stream or sys.stderr
    logfile = None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        logfile = open(run_dir / f"{process}.log.jsonl", "a", buffering=1)  # noqa: SIM115
    console: structlog.types.Processor
    if stream.isatty():
        console = structlog.dev.ConsoleRenderer(colors=True)
    else:
        console = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _Tee(console, logfile, _LEVELS.get(os.environ.get(CONSOLE_LEVEL_ENV, ""),
                                               logging.DEBUG)),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger(process=process)
