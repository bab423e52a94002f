"""Reading loosely typed source values: times, numbers, message content."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from opsloom.insights.conversation import ConversationFormatError


def parse_time(value: object, *, where: str = "") -> datetime | None:
    """A UTC datetime from ISO 8601 text, epoch seconds/milliseconds or OTLP nanoseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConversationFormatError(f"not a time: {value!r}", where=where)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float):
        seconds = float(value)
        # Magnitude tells the unit: nanoseconds (OTLP), milliseconds (JS), else seconds.
        if seconds > 1e17:
            seconds /= 1e9
        elif seconds > 1e11:
            seconds /= 1e3
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConversationFormatError(f"not an ISO 8601 time: {value!r}", where=where) from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ConversationFormatError(f"not a time: {value!r}", where=where)


def as_int(value: object) -> int | None:
    """An integer count, or None when absent or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def as_float(value: object) -> float | None:
    """A number, or None when absent or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_str(value: object) -> str | None:
    """A non-empty string, or None."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def content_text(content: object) -> str:
    """The text of message content: a string, a list of parts, or a ``{"text"}`` part.

    Non-text parts (images, audio) contribute nothing; they carry no words to analyse.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for t in (content_text(part) for part in content) if t)
    if isinstance(content, dict):
        for key in ("text", "content", "value"):
            if key in content:
                return content_text(content[key])
        return ""
    return str(content)


def stable_id(payload: Any) -> str:
    """A content-derived id for a conversation its source left unnamed (same input, same id)."""
    digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"conv-{digest[:24]}"
