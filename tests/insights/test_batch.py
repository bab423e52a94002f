"""The durable batch workflow: chunks as steps, events stored once even when a chunk reruns."""

from __future__ import annotations

import json
from pathlib import Path

from payloads import langfuse_trace

from opsloom import App
from opsloom.insights import Analysis, conversations_from
from opsloom.insights.adapters import read_chunk
from opsloom.insights.event import ANALYZED
from opsloom.insights.trend import Trends
from opsloom.services.conversation import (
    BATCH_WORKFLOW,
    analyze_into,
    register_batch,
    stored_results,
)
from opsloom.store.event import EventQuery


def conversation(n: int) -> dict[str, object]:
    return {
        "id": f"b-{n}",
        "messages": [
            {"role": "user", "content": f"Question {n}: where is my order?"},
            {"role": "assistant", "content": "I can't help with that."},
            {"role": "user", "content": "Useless. Get me a human."},
        ],
    }


def write(path: Path, records: list[object]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_read_chunk__keeps_a_session_together(tmp_path: Path) -> None:
    records: list[object] = [
        conversation(1),
        langfuse_trace("t1", "s-1", "q1", "a1", 1),
        langfuse_trace("t2", "s-1", "q2", "a2", 2),
        conversation(2),
    ]
    path = write(tmp_path / "c.jsonl", records)
    first, offset, done = read_chunk(path, 0, 2)
    assert [c.id for c in first] == ["b-1", "s-1"]
    assert len(first[1].turns) == 5  # both traces, system prompt once
    assert not done
    second, end, done = read_chunk(path, offset, 2)
    assert [c.id for c in second] == ["b-2"]
    assert done and end == Path(path).stat().st_size


async def test_batch__analyses_every_chunk_and_reruns_store_nothing(
    tmp_path: Path, db_url: str
) -> None:
    path = write(tmp_path / "c.jsonl", [conversation(n) for n in range(5)])
    analysis = Analysis.discover()
    app = App(db_url)
    register_batch(app, analysis, chunk=2)
    async with app:
        # As if an earlier attempt of the first chunk stored its events, then died.
        [first] = read_chunk(path, 0, 1)[0]
        await analyze_into(app, analysis, [first])
        handle = await app.start(BATCH_WORKFLOW, {"path": path}, run_id="batch-1")
        totals = await handle.result(timeout=60)
        assert totals["conversations"] == 5
        assert totals["chunks"] == 3
        assert totals["attention"] == 5
        analyzed = await app.store.list_events(EventQuery(type=ANALYZED, limit=100))
        assert sorted(e.event.subject or "" for e in analyzed) == [f"b-{n}" for n in range(5)]
        again = await app.start(BATCH_WORKFLOW, {"path": path}, run_id="batch-1")
        assert not again.created
        assert await again.result(timeout=10) == totals


async def test_trends__from_stored_analyses(tmp_path: Path, db_url: str) -> None:
    analysis = Analysis.discover()
    app = App(db_url)
    async with app:
        conversations = [c for n in range(3) for c in conversations_from(conversation(n))]
        await analyze_into(app, analysis, conversations)
        table = Trends("day", "model")
        async for result, moment in stored_results(app):
            table.add(result, moment)
    [row] = list(table.rows())
    assert row["conversations"] == 3
    assert row["flags"]["human_requested"]["rate"] == 1.0
