"""Adapters: read conversations from OpenAI messages, OpenTelemetry spans and Langfuse exports.

:func:`conversations_from` reads one decoded JSON record; :func:`read_stream` reads JSON Lines
(or a single JSON document) lazily, so a file of any size is analysed in constant memory.
Consecutive records of the same conversation (a session's traces exported one per line) are
joined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import IO, Any, Literal

import orjson

from opsloom.insights.adapters import langfuse, openai, otel
from opsloom.insights.conversation import Conversation, ConversationFormatError

Format = Literal["auto", "openai", "otel", "langfuse"]
FORMATS: tuple[str, ...] = ("auto", "openai", "otel", "langfuse")

_READERS: dict[str, Callable[..., list[Conversation]]] = {
    "otel": otel.conversations,
    "langfuse": langfuse.conversations,
    "openai": openai.conversations,
}
# Checked in this order: OTLP and Langfuse shapes are more specific than a message list.
_DETECTORS: tuple[tuple[str, Callable[[object], bool]], ...] = (
    ("otel", otel.looks_like),
    ("langfuse", langfuse.looks_like),
    ("openai", openai.looks_like),
)


def detect(payload: object, *, where: str = "") -> str:
    """The format of one record; raises :class:`ConversationFormatError` when none fits."""
    for name, looks_like in _DETECTORS:
        if looks_like(payload):
            return name
    raise ConversationFormatError(
        "not a conversation in a known format (OpenAI messages, OTLP spans, Langfuse traces)",
        where=where,
    )


def conversations_from(
    payload: Any, format: str = "auto", *, where: str = ""
) -> list[Conversation]:
    """The conversations in one decoded JSON record."""
    if format not in FORMATS:
        raise ConversationFormatError(f"unknown format {format!r}; use one of {FORMATS}")
    name = detect(payload, where=where) if format == "auto" else format
    try:
        return _READERS[name](payload, where=where)
    except ConversationFormatError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        # A record of the right general shape whose parts have the wrong types.
        raise ConversationFormatError(f"malformed {name} record ({exc})", where=where) from exc


def read_stream(
    stream: IO[bytes], format: str = "auto", *, name: str = "input"
) -> Iterator[Conversation]:
    """Conversations from JSON Lines, or from one JSON document spanning the whole stream.

    Errors name the line (``input:12``).
    """
    first = stream.readline()
    while first and not first.strip():
        first = stream.readline()
    if not first:
        return
    try:
        head: Any = orjson.loads(first)
    except orjson.JSONDecodeError:
        # Not a complete JSON value on its first line: a pretty-printed document.
        document = first + stream.read()
        try:
            payload = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            raise ConversationFormatError(f"not JSON or JSON Lines ({exc})", where=name) from exc
        yield from _join(iter(conversations_from(payload, format, where=name)))
        return
    yield from _join(_records(head, stream, format, name))


def _records(head: Any, stream: IO[bytes], format: str, name: str) -> Iterator[Conversation]:
    yield from conversations_from(head, format, where=f"{name}:1")
    for number, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        try:
            payload = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConversationFormatError(
                f"invalid JSON ({exc})", where=f"{name}:{number}"
            ) from exc
        yield from conversations_from(payload, format, where=f"{name}:{number}")


def merge(first: Conversation, second: Conversation) -> Conversation:
    """``second`` continuing ``first`` (same id): turns appended, a repeated start kept once."""
    # A later record may repeat the start (the system prompt, earlier messages).
    known, more = first.turns, second.turns
    same = 0
    while same < min(len(known), len(more)) and (known[same].role, known[same].text) == (
        more[same].role,
        more[same].text,
    ):
        same += 1
    return replace(first, turns=known + more[same:])


def _join(items: Iterable[Conversation]) -> Iterator[Conversation]:
    pending: Conversation | None = None
    for conversation in items:
        if pending is not None and pending.id == conversation.id:
            pending = merge(pending, conversation)
            continue
        if pending is not None:
            yield pending
        pending = conversation
    if pending is not None:
        yield pending


def read_chunk(
    path: str, offset: int, size: int, format: str = "auto"
) -> tuple[list[Conversation], int, bool]:
    """Up to ``size`` records from byte ``offset``: conversations, next offset, end reached.

    The chunk goes on past ``size`` while records continue the last conversation (a session
    exported one trace per line), so a conversation is never split between two chunks.
    """
    found: list[Conversation] = []
    with open(path, "rb") as file:
        file.seek(offset)
        position = offset
        records = 0
        while True:
            line = file.readline()
            if not line:
                return found, position, True
            where = f"{path}@{position}"
            if line.strip():
                try:
                    payload = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ConversationFormatError(f"invalid JSON ({exc})", where=where) from exc
                batch = conversations_from(payload, format, where=where)
                if records >= size and batch and found and batch[0].id != found[-1].id:
                    return found, position, False
                for conversation in batch:
                    if found and found[-1].id == conversation.id:
                        found[-1] = merge(found[-1], conversation)
                    else:
                        found.append(conversation)
                records += 1
            position += len(line)


__all__ = [
    "FORMATS",
    "Format",
    "conversations_from",
    "detect",
    "merge",
    "read_chunk",
    "read_stream",
]
