"""The six Temporal-style examples in ``examples/temporal`` run to completion on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


async def test_temporal_examples__all_six_complete(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from examples.temporal.__main__ import run_all
    from examples.temporal.activities import ALL as ACTIVITIES
    from examples.temporal.workflows import ALL as WORKFLOWS

    from opsloom.compat.temporal.client import Client
    from opsloom.compat.temporal.worker import Worker

    client = await Client.connect(db_url)
    try:
        async with Worker(
            client, task_queue="examples", workflows=WORKFLOWS, activities=ACTIVITIES
        ):
            results = await run_all(client)
    finally:
        await client.close()
    assert results["conversation"]["frustration"] >= 0.5
    assert results["conversation"]["ticket"].startswith("TICKET-")
    assert results["learning"] == {"score": 2.0, "level": 1}  # the third answer is wrong
    assert results["incident"][0] == "paged the database on-call (critical)"
    assert results["incident"][2].startswith("TICKET-")  # a database is never restarted
    assert results["approval"] == {"approved": True, "stage": None, "reason": None}
    assert results["compliance"] == 2  # one failing control, two cycles
    assert results["data_sync"] == {"users": 6, "orders": 6}
