"""What every store must do with events and subscriptions, whatever its database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from opsloom.codec import encode
from opsloom.errors import LeaseLostError, StoreError
from opsloom.model import RunStatus, StepKind, StepRecord, StepStatus
from opsloom.model.cloudevent import CloudEvent, parse_event
from opsloom.model.run import Fence, NewRun
from opsloom.store import Store
from opsloom.store.event import EventQuery
from opsloom.store.migration import migrations

KINDS = frozenset({"wf@1"})
T0 = 1_000.0


def event(event_id: str, type: str = "alert.firing", **extra: Any) -> CloudEvent:
    return parse_event(
        {"specversion": "1.0", "id": event_id, "source": "am/prod", "type": type, **extra}
    )


def entry(run_id: str, seq: int, name: str) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        seq=seq,
        kind=StepKind.VALUE,
        name=name,
        status=StepStatus.COMPLETED,
        output=name,
        started_at=T0,
        completed_at=T0,
    )


async def running(store: Store, run_id: str, owner: str = "w1") -> Fence:
    await store.create_run(NewRun(id=run_id, workflow="wf", version="1", input=encode(None)), T0)
    claims = await store.claim(owner, KINDS, 1, T0, 30)
    assert [c.run.id for c in claims] == [run_id]
    return claims[0].fence


async def subscribed(store: Store, run_id: str, filters: list[dict[str, Any]]) -> Fence:
    """A parked run with one subscription ``<run_id>:1``."""
    fence = await running(store, run_id)
    sub = f"{run_id}:1"
    await store.subscribe(fence, sub, filters, entry(run_id, 1, "subscribe"), T0)
    await store.suspend(fence, None, T0)
    return fence


async def woken(store: Store) -> dict[str, list[tuple[str, Any]]]:
    """The runs woken since the last look, with the signals waiting for them."""
    claims = await store.claim("w2", KINDS, 100, T0 + 1, 30)
    for claim in claims:
        await store.suspend(claim.fence, None, T0 + 1)
    return {c.run.id: [(s.name, s.payload) for s in c.signals] for c in claims}


async def delivered(store: Store, run_id: str) -> list[tuple[str, Any]]:
    """The signals waiting for ``run_id`` if it was woken since the last look."""
    return (await woken(store)).get(run_id, [])


async def test_append__a_duplicate_source_and_id_is_ignored(store: Store) -> None:
    assert await store.append_event(event("e1", data={"n": 1}), T0) is True
    assert await store.append_event(event("e1", data={"n": 2}), T0 + 1) is False
    assert await store.append_event(event("e1", source="other"), T0 + 2) is True
    stored = await store.get_event("am/prod", "e1")
    assert stored is not None and stored.event.data == {"n": 1} and stored.received_at == T0
    assert len(await store.list_events(EventQuery())) == 2


async def test_append__keeps_every_attribute(store: Store) -> None:
    original = event(
        "e1",
        subject="db-1",
        time="2024-05-01T12:00:00.123456789+02:00",
        datacontenttype="application/json",
        dataschema="https://example.com/alert.json",
        priority=3,
        urgent=True,
        team="dba",
        data={"labels": {"severity": "page"}, "values": [1, 2.5, None]},
    )
    binary = event("e2", datacontenttype="application/octet-stream", data_base64="AAEC/w==")
    assert await store.append_events([original, binary], T0) == [True, True]
    first = await store.get_event("am/prod", "e1")
    second = await store.get_event("am/prod", "e2")
    assert first is not None and first.event == original
    assert second is not None and second.event == binary
    assert await store.get_event("am/prod", "nope") is None


async def test_list_events__newest_first_filtered_and_paged(store: Store) -> None:
    await store.append_events(
        [
            event("e1"),
            event("e2", type="deploy.done"),
            event("e3", subject="db-1"),
            event("e4", source="ci"),
        ],
        T0,
    )
    everything = await store.list_events(EventQuery())
    assert [e.event.id for e in everything] == ["e4", "e3", "e2", "e1"]
    seqs = [e.seq for e in everything]
    assert seqs == sorted(seqs, reverse=True)
    by_type = await store.list_events(EventQuery(type="alert.firing"))
    assert [e.event.id for e in by_type] == ["e4", "e3", "e1"]
    assert [e.event.id for e in await store.list_events(EventQuery(source="ci"))] == ["e4"]
    assert [e.event.id for e in await store.list_events(EventQuery(subject="db-1"))] == ["e3"]
    page = await store.list_events(EventQuery(limit=2))
    rest = await store.list_events(EventQuery(limit=2, before=page[-1].seq))
    assert [e.event.id for e in page + rest] == ["e4", "e3", "e2", "e1"]


async def test_append__delivers_to_matching_subscriptions_and_wakes_the_runs(
    store: Store,
) -> None:
    await subscribed(store, "r1", [{"type": "deploy.done"}, {"type": "alert.firing"}])
    await subscribed(store, "r2", [{"type": "alert.firing", "subject": "db-2"}])
    await subscribed(store, "r3", [{"type": "alert.firing", "where": ".data.n > 1"}])
    await subscribed(store, "r4", [{"type": "alert.firing", "where": ".data.n > 2"}])
    fired = event("e1", subject="db-1", data={"n": 2})
    assert await store.append_event(fired, T0) is True
    got = await woken(store)
    assert sorted(got) == ["r1", "r3"], "only the matching runs are woken"
    assert got["r1"] == [("events:r1:1", {"filter": 1, "event": fired.to_dict()})]
    assert got["r3"] == [("events:r3:1", {"filter": 0, "event": fired.to_dict()})]


async def test_append__one_event_reaches_many_runs_in_one_transaction(store: Store) -> None:
    for n in range(5):
        await subscribed(store, f"r{n}", [{"type": "alert.firing"}])
    await store.append_event(event("e1"), T0)
    claims = await store.claim("w2", KINDS, 10, T0 + 1, 30)
    got = {c.run.id: [s.name for s in c.signals] for c in claims}
    assert got == {f"r{n}": [f"events:r{n}:1"] for n in range(5)}


async def test_append__other_types_and_duplicates_are_not_delivered(store: Store) -> None:
    await subscribed(store, "r1", [{"type": "alert.firing", "source": "am/prod"}])
    await store.append_event(event("e1", type="alert.resolved"), T0)
    await store.append_event(event("e2", source="am/staging"), T0)
    assert await delivered(store, "r1") == []
    await store.append_event(event("e3"), T0)
    await store.append_event(event("e3"), T0)  # a retried delivery by the producer
    assert [p["event"]["id"] for _, p in await delivered(store, "r1")] == ["e3"]


async def test_append__a_failing_where_does_not_match(store: Store) -> None:
    await subscribed(store, "r1", [{"type": "alert.firing", "where": ".data.n + 1"}])
    await store.append_event(event("e1", data={"n": "text"}), T0)  # jq: string + number fails
    assert await delivered(store, "r1") == []
    await store.append_event(event("e2", data={"n": 1}), T0)  # yields 2, not true
    assert await delivered(store, "r1") == []


async def test_append__a_failed_batch_stores_nothing_and_delivers_nothing(store: Store) -> None:
    await subscribed(store, "r1", [{"type": "alert.firing"}])
    unstorable = CloudEvent(id="bad", source="am/prod", type="alert.firing", data={1j})
    with pytest.raises(StoreError):
        await store.append_events([event("e1"), unstorable], T0)
    assert await store.list_events(EventQuery()) == []
    assert await delivered(store, "r1") == []
    assert await store.append_events([event("e1")], T0) == [True]
    assert [n for n, _ in await delivered(store, "r1")] == ["events:r1:1"]


async def test_subscribe__records_the_step_and_is_fenced(store: Store) -> None:
    fence = await running(store, "r1")
    await store.subscribe(fence, "r1:1", [{"type": "a"}], entry("r1", 1, "subscribe"), T0)
    [sub] = await store.subscriptions_of("r1")
    assert (sub.id, sub.run_id, sub.filters) == ("r1:1", "r1", [{"type": "a"}])
    run = await store.get_run("r1", with_steps=True)
    assert run is not None and [s.name for s in run.steps] == ["subscribe"]
    stale = Fence("r1", "w1", fence.token + 1)
    with pytest.raises(LeaseLostError):
        await store.subscribe(stale, "r1:2", [{"type": "a"}], entry("r1", 2, "subscribe"), T0)
    with pytest.raises(LeaseLostError):
        await store.unsubscribe(stale, "r1:1", entry("r1", 2, "unsubscribe"))
    assert [s.id for s in await store.subscriptions_of("r1")] == ["r1:1"]


async def test_unsubscribe__stops_deliveries(store: Store) -> None:
    fence = await running(store, "r1")
    await store.subscribe(fence, "r1:1", [{"type": "a"}], entry("r1", 1, "subscribe"), T0)
    await store.subscribe(fence, "r1:2", [{"type": "a"}], entry("r1", 2, "subscribe"), T0)
    await store.unsubscribe(fence, "r1:1", entry("r1", 3, "unsubscribe"))
    assert [s.id for s in await store.subscriptions_of("r1")] == ["r1:2"]
    await store.suspend(fence, None, T0)
    await store.append_event(event("e1", type="a"), T0)
    assert [n for n, _ in await delivered(store, "r1")] == ["events:r1:2"]


async def test_finish_run__drops_the_runs_subscriptions(store: Store) -> None:
    fence = await running(store, "r1")
    await store.subscribe(fence, "r1:1", [{"type": "a"}], entry("r1", 1, "subscribe"), T0)
    await store.finish_run(fence, RunStatus.FAILED, None, {"type": "X", "message": "x"}, T0)
    assert await store.subscriptions_of("r1") == []
    assert await store.append_event(event("e1", type="a"), T0) is True


async def test_retry_run__reopens_the_subscriptions_its_history_left_open(store: Store) -> None:
    fence = await running(store, "r1")
    for seq, sub in ((1, "r1:1"), (2, "r1:2")):
        step = StepRecord(
            run_id="r1",
            seq=seq,
            kind=StepKind.VALUE,
            name="subscribe",
            status=StepStatus.COMPLETED,
            output={"subscription": sub, "filters": [{"type": "a"}]},
            started_at=T0,
            completed_at=T0,
        )
        await store.subscribe(fence, sub, [{"type": "a"}], step, T0)
    closing = StepRecord(
        run_id="r1",
        seq=3,
        kind=StepKind.VALUE,
        name="unsubscribe",
        status=StepStatus.COMPLETED,
        output={"subscription": "r1:1"},
        started_at=T0,
        completed_at=T0,
    )
    await store.unsubscribe(fence, "r1:1", closing)
    await store.finish_run(fence, RunStatus.FAILED, None, {"type": "X", "message": "x"}, T0)
    assert await store.subscriptions_of("r1") == []
    await store.retry_run("r1", T0 + 1)
    reopened = await store.subscriptions_of("r1")
    assert [(s.id, s.filters) for s in reopened] == [("r1:2", [{"type": "a"}])]
    await store.append_event(event("e1", type="a"), T0 + 2)
    claims = await store.claim("w1", KINDS, 1, T0 + 2, 30)
    assert [s.name for s in claims[0].signals] == ["events:r1:2"]


async def test_emit_event__stores_records_and_delivers_atomically(store: Store) -> None:
    await subscribed(store, "listener", [{"type": "a"}])
    fence = await running(store, "emitter")
    stored = await store.emit_event(
        fence, event("emitter:1", type="a"), entry("emitter", 1, "emit"), T0
    )
    assert stored is True
    run = await store.get_run("emitter", with_steps=True)
    assert run is not None and [s.name for s in run.steps] == ["emit"]
    assert [n for n, _ in await delivered(store, "listener")] == ["events:listener:1"]
    with pytest.raises(LeaseLostError):
        await store.emit_event(
            Fence("emitter", "w9", 99),
            event("emitter:2", type="a"),
            entry("emitter", 2, "emit"),
            T0,
        )
    assert await store.get_event("am/prod", "emitter:2") is None


async def test_append__reads_only_the_filters_of_the_event_type(tmp_path: Path) -> None:
    # Thousands of waiting runs must not mean thousands of comparisons per event: the
    # candidates of an event are looked up by type through the index.
    conn = sqlite3.connect(tmp_path / "plan.db")
    for migration in migrations("sqlite"):
        conn.executescript(migration.sql)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT subscription_id, run_id, position, filter "
        "FROM subscription_filters WHERE type = ?",
        ("alert.firing",),
    ).fetchall()
    conn.close()
    assert any("subscription_filters_type_idx" in row[-1] for row in plan), plan


async def test_runs_of_events__the_runs_each_event_woke(store: Store) -> None:
    await subscribed(store, "r1", [{"type": "alert.firing"}])
    await subscribed(store, "r2", [{"type": "alert.firing", "subject": "db"}])
    await store.append_events([event("e1", subject="db"), event("e2", subject="web")], T0 + 5)
    await store.append_event(event("e3", type="other"), T0 + 6)
    stored = await store.list_events(EventQuery())
    found = await store.runs_of_events(stored)
    assert {key: sorted(runs.woke) for key, runs in found.items()} == {
        ("am/prod", "e1"): ["r1", "r2"],
        ("am/prod", "e2"): ["r1"],
        ("am/prod", "e3"): [],
    }
    assert all(runs.started == [] for runs in found.values())
    assert await store.runs_of_events([]) == {}
