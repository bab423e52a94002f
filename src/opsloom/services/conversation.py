"""Conversation analysis as a use case: analyse into the store, read back, analyse in batches.

Shared by the API and the CLI. Results are stored as CloudEvents through the App's event
intake (all events of one call in one transaction), which is what lets triggers start
follow-up workflows; the latest ``analyzed`` event of a conversation is its analysis.

:func:`register_batch` adds the workflow ``opsloom.insights.batch`` to an App: its input names
a JSON Lines file; each step analyses the next chunk of records from a byte offset and stores
their events, then returns the offset after the chunk. The run records each completed step,
so after a crash it resumes at the first chunk not done; a chunk whose step died midway is
analysed again, and its events (ids derived from the results) are found stored already and
ignored. Records of one conversation in a row stay in one chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsloom.app import App
from opsloom.engine.context import Context
from opsloom.insights.adapters import read_chunk
from opsloom.insights.analysis import Analysis
from opsloom.insights.conversation import Conversation
from opsloom.insights.event import ANALYZED, SOURCE, events_of
from opsloom.model.cloudevent import CloudEvent
from opsloom.store.event import EventQuery

BATCH_WORKFLOW = "opsloom.insights.batch"
#: Records analysed per batch step (one store transaction each).
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing one conversation's analysis did."""

    conversation_id: str
    result: dict[str, Any]
    events: list[str]
    duplicates: list[str]


async def analyze_into(
    app: App, analysis: Analysis, conversations: Iterable[Conversation]
) -> list[Stored]:
    """Analyse ``conversations`` and store their events together (all or none).

    Events already stored (same conversation analysed the same way, an attention rule that
    fired before) are reported as duplicates and start nothing again.
    """
    batch = list(conversations)
    # Analysis is CPU work (and the judge's HTTP calls block): off the event loop.
    now = datetime.fromtimestamp(app.clock.now(), UTC)
    results = await asyncio.to_thread(lambda: [analysis.run(c, now) for c in batch])
    time = datetime.fromtimestamp(app.clock.now(), UTC).isoformat()
    per_result: list[list[CloudEvent]] = [events_of(r, time) for r in results]
    receipts = await app.emit_events([e for events in per_result for e in events])
    stored: list[Stored] = []
    position = 0
    for result, events in zip(results, per_result, strict=True):
        mine = receipts[position : position + len(events)]
        position += len(events)
        stored.append(
            Stored(
                conversation_id=result["conversation"]["id"],
                result=result,
                events=[r.event_id for r in mine if r.stored],
                duplicates=[r.event_id for r in mine if not r.stored],
            )
        )
    return stored


async def latest_analysis(app: App, conversation_id: str) -> dict[str, Any] | None:
    """The newest stored analysis of a conversation, or None."""
    query = EventQuery(type=ANALYZED, source=SOURCE, subject=conversation_id, limit=1)
    events = await app.store.list_events(query)
    if not events:
        return None
    data: dict[str, Any] = events[0].event.data
    return data


async def stored_results(
    app: App, limit: int = 100_000
) -> AsyncIterator[tuple[dict[str, Any], datetime | None]]:
    """Stored analyses, newest first, with when they were stored (pages of 1,000)."""
    before: int | None = None
    seen = 0
    while seen < limit:
        page = await app.store.list_events(
            EventQuery(type=ANALYZED, source=SOURCE, before=before, limit=min(1000, limit - seen))
        )
        if not page:
            return
        for stored in page:
            yield stored.event.data, datetime.fromtimestamp(stored.received_at, UTC)
        seen += len(page)
        before = page[-1].seq


def register_batch(app: App, analysis: Analysis | None = None, chunk: int = CHUNK) -> None:
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

    @app.workflow(name=BATCH_WORKFLOW)
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
