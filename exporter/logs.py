"""structlog set-up: logfmt, JSON, or a console renderer on a terminal.

I/O: configure_logging changes structlog's process-wide configuration, and the loggers it makes
write to stderr (whether stderr is a terminal picks the console renderer for logfmt)."""

from __future__ import annotations

import logging
import sys

import structlog

# "warn" is the exporter-toolkit's spelling (--log.level warn), "warning" Python's: the same level
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(fmt: str, level: str) -> None:
    """Every logger from now on: `fmt` (one of LOG_FORMATS), events below `level` (a LEVELS name)
    dropped."""
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif fmt == "console" or (fmt == "logfmt" and sys.stderr.isatty()):
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.LogfmtRenderer(key_order=["ts", "level", "event"])
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", key="ts"),
            structlog.processors.dict_tracebacks if fmt == "json" else structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
