"""Log output of the long-running commands: readable text, or one JSON object per line.

Records carry their facts as ``extra`` fields (``event``, ``run_id``, ``workflow``, ``step``,
``trace_id`` …). The text format appends them as ``key=value``; the JSON format puts them next
to ``time``, ``level``, ``logger`` and ``message``, for log shippers.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of a record, without empty ones."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and value is not None
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(extras(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger message key=value …``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extras(record)
        if not fields:
            return line
        head, sep, rest = line.partition("\n")  # a traceback stays below the fields
        tail = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        return f"{head} {tail}{sep}{rest}"


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return orjson.dumps(text).decode() if (" " in text or not text) else text


def setup_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Send every log record to stderr in ``log_format`` at ``level`` (replacing handlers)."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r} (choose text or json)")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
