"""Structured logs: one JSON object per line on stderr (``SAFECITY_LOG_JSON=true``, default).

:func:`configure_logging` installs one handler on the root logger; it is idempotent (it
replaces the handler it installed before) and is called by :func:`safecity.app.create_app`,
so every uvicorn worker process logs the same way. Fields passed with ``extra=`` become
top-level JSON keys::

    log.info("request", extra={"request_id": rid, "status": 200})

The request middleware writes one ``safecity.access`` line per request; uvicorn's own
access log is silenced so requests are not logged twice.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from safecity.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("safecity_request_id", default=None)
"""The id of the request being answered (set by the request middleware); every log line
written while answering it carries it as ``request_id``."""

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for development (``SAFECITY_LOG_JSON=false``)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and k[:1] != "_"
        }
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` from :data:`REQUEST_ID` to records that do not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    _safecity = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(settings: Settings, *, level: int = logging.INFO) -> None:
    """Install SafeCity's log handler on the root logger (JSON or text per settings)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_safecity", False):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    logging.getLogger("safecity").setLevel(level)
    # One access line per request comes from our middleware, with the request id.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
