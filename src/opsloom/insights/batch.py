"""Analysing a large file as a durable workflow: a crash resumes, nothing is analysed twice.

:func:`register` adds the workflow ``opsloom.insights.batch`` to an App. Its input names a
JSON Lines file; each step analyses the next chunk of records from a byte offset and stores
their events in one transaction, then returns the offset after the chunk. The run records each
completed step, so after a crash it resumes at the first chunk not done; a chunk whose step
died midway is analysed again, and its events (ids derived from the results) are found stored
already and ignored. Records of one conversation in a row stay in one chunk.
"""

from __future__ import annotations

from typing import Any

import orjson

from opsloom.app import App
from opsloom.engine.context import Context
from opsloom.insights.adapters import conversations_from, merge
from opsloom.insights.analysis import Analysis
from opsloom.insights.conversation import Conversation, ConversationFormatError
from opsloom.insights.intake import analyze_into

WORKFLOW = "opsloom.insights.batch"
#: Records analysed per step (one store transaction each).
CHUNK = 500


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


def register(app: App, analysis: Analysis | None = None, chunk: int = CHUNK) -> None:
    """Add the batch workflow (and its step) to ``app``."""
    loaded: list[Analysis] = [analysis] if analysis is not None else []

    @app.step(name="opsloom.insights.analyze-chunk")
    async def analyze_chunk(path: str, format: str, offset: int) -> dict[str, Any]:
        if not loaded:
            loaded.append(Analysis.discover())
        conversations, following, done = read_chunk(path, offset, chunk, format)
        stored = await analyze_into(app, loaded[0], conversations)
        return {
            "next": following,
            "done": done,
            "conversations": len(stored),
            "attention": sum(1 for s in stored if s.result["attention"]["needed"]),
            "events": sum(len(s.events) for s in stored),
        }

    @app.workflow(name=WORKFLOW)
    async def batch(ctx: Context, input: dict[str, Any]) -> dict[str, Any]:
        offset = 0
        totals = {"conversations": 0, "attention": 0, "events": 0, "chunks": 0}
        while True:
            step = await ctx.step(analyze_chunk, input["path"], input.get("format", "auto"), offset)
            for key in ("conversations", "attention", "events"):
                totals[key] += step[key]
            totals["chunks"] += 1
            if step["done"]:
                return totals
            offset = step["next"]
