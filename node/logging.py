"""Structured logs for a node process: one event per line, with node id, height and view.

``setup_logging(format, level, context)`` configures structlog once per process. ``context``
is a callable returning the node's current ``{"node": id, "height": h, "view": v}``; it is
called for every event, so each line says where the node was when it happened without every
call site passing it. ``plain`` renders ``key=value`` pairs, ``json`` one JSON object per line.
Messages from other libraries (aiohttp) go through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
KEY_ORDER = ["timestamp", "level", "event", "node", "height", "view"]

_context_provider: Callable[[], dict[str, Any]] | None = None


def set_context(provider: Callable[[], dict[str, Any]] | None) -> None:
    """Make every following event carry ``provider()``'s fields (node, height, view)."""
    global _context_provider
    _context_provider = provider


def _add_node_context(logger: Any, method: str, event: dict) -> dict:
    if _context_provider is not None:
        try:
            for key, value in _context_provider().items():
                event.setdefault(key, value)
        except Exception:  # a log line must never take the node down
            event.setdefault("context_error", True)
    return event


def _renderer(format: str) -> Any:
    if format == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    return structlog.processors.KeyValueRenderer(key_order=KEY_ORDER, drop_missing=True)


def setup_logging(format: str = "plain", level: str = "info",
                  context: Callable[[], dict[str, Any]] | None = None,
                  stream: TextIO | None = None) -> None:
    if format not in ("plain", "json"):
        raise ValueError(f"unknown log format {format!r}")
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    set_context(context)
    shared = [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.add_log_level,
        _add_node_context,
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    _renderer(format)],
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # One line per HTTP request is noise at info level; keep it for debugging.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING)


def get_logger(name: str = "huzhu") -> Any:
    return structlog.get_logger(name)
