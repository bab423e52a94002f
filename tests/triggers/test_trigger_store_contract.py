"""The store's side of triggers, on every dialect: saving, the intake inside ``append_events``,
open runs per dedup key, the window, ``all`` correlation, the inbox and its move on subscribe."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

from opsloom.model import RunStatus, StepKind, StepRecord, StepStatus
from opsloom.model.cloudevent import CloudEvent, parse_event
from opsloom.model.trigger import INBOX, Correlation, Trigger
from opsloom.store import Store, open_store
from opsloom.store.base import Claim, RunFilter
from opsloom.store.intake import append, prepare
from opsloom.store.sql import SqlStore
from opsloom.store.tx import WORK

KINDS = frozenset({"wf@1"})
FIRING = "io.opsloom.alert.firing.v1"
RESOLVED = "io.opsloom.alert.resolved.v1"


def event(
    event_id: str, type_: str = FIRING, subject: str | None = "fp-1", **data: Any
) -> CloudEvent:
    return parse_event(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "/hooks/alertmanager",
            "type": type_,
            "subject": subject,
            "data": {"labels": {"alertname": "HighLatency"}, **data},
        }
    )


def alert_trigger(**changes: Any) -> Trigger:
    values: dict[str, Any] = {
        "id": "code:wf",
        "workflow": "wf",
        "version": "1",
        "mode": "any",
        "filters": [{"type": FIRING}, {"type": RESOLVED}],
    }
    values.update(changes)
    return Trigger(**values)


async def runs_of(store: Store) -> list[Any]:
    return sorted(await store.list_runs(RunFilter(workflow="wf")), key=lambda r: r.created_at)


async def claim_one(store: Store, now: float) -> Claim:
    claims = await store.claim("w1", KINDS, 10, now, 30.0)
    assert len(claims) == 1
    return claims[0]


async def test_save_trigger__insert_redefine_list_delete(store: Store) -> None:
    saved = await store.save_trigger(alert_trigger(), 10.0)
    assert saved.filters == [{"type": FIRING}, {"type": RESOLVED}] and saved.created_at == 10.0
    assert (await store.save_trigger(alert_trigger(), 20.0)).updated_at == 10.0, "unchanged"
    changed = await store.save_trigger(alert_trigger(window=30.0, key=".data.labels"), 30.0)
    assert (changed.window, changed.key, changed.updated_at) == (30.0, ".data.labels", 30.0)
    assert [t.id for t in await store.list_triggers()] == ["code:wf"]
    assert await store.get_trigger("code:wf") == changed
    assert await store.delete_trigger("code:wf") is True
    assert await store.get_trigger("code:wf") is None
    assert await store.delete_trigger("code:wf") is False
    # With no trigger left, an event starts nothing.
    assert await store.append_events([event("e1")], 40.0) == [True]
    assert await runs_of(store) == []


async def test_intake__first_event_starts_a_run_later_ones_go_to_its_inbox(store: Store) -> None:
    await store.save_trigger(alert_trigger(), 1.0)
    await store.append_events([event("e1")], 2.0)
    [run] = await runs_of(store)
    assert (run.event_source, run.event_id) == ("/hooks/alertmanager", "e1")
    assert run.input["id"] == "e1" and run.input["data"]["labels"]["alertname"] == "HighLatency"
    assert run.status is RunStatus.PENDING
    # A retried intake of the same event (same source and id) is a duplicate: nothing new.
    assert await store.append_events([event("e1")], 2.5) == [False]
    await store.append_events([event("e2"), event("e3", RESOLVED), event("x", subject="fp-2")], 3.0)
    runs = await runs_of(store)
    assert len(runs) == 2 and runs[1].event_id == "x", "another fingerprint starts its own run"
    claims = {c.run.id: c for c in await store.claim("w1", KINDS, 10, 4.0, 30.0)}
    inbox = [
        (s.name, s.payload["filter"], s.payload["event"]["id"]) for s in claims[run.id].signals
    ]
    assert inbox == [(INBOX, 0, "e2"), (INBOX, 1, "e3")]
    assert claims[runs[1].id].signals == []
    [opened] = [r for r in await store.trigger_runs("code:wf") if r.run_id == run.id]
    assert (opened.key, opened.event_id, opened.closed_at) == ("fp-1", "e1", None)


async def test_intake__a_run_that_ended_frees_its_key(store: Store) -> None:
    await store.save_trigger(alert_trigger(), 1.0)
    await store.append_events([event("e1")], 2.0)
    claim = await claim_one(store, 3.0)
    await store.finish_run(claim.fence, RunStatus.COMPLETED, b"null", None, 4.0)
    [closed] = await store.trigger_runs("code:wf")
    assert closed.closed_at == 4.0
    await store.append_events([event("e2")], 5.0)
    runs = await runs_of(store)
    assert [r.event_id for r in runs] == ["e1", "e2"]
    assert [r.closed_at for r in await store.trigger_runs("code:wf")] == [None, 4.0]


async def test_intake__window_suppresses_events_shortly_after_a_run_ended(store: Store) -> None:
    await store.save_trigger(alert_trigger(window=60.0), 1.0)
    await store.append_events([event("e1")], 2.0)
    claim = await claim_one(store, 3.0)
    await store.finish_run(claim.fence, RunStatus.FAILED, None, {"type": "X"}, 100.0)
    assert await store.append_events([event("e2")], 159.0) == [True]
    assert len(await runs_of(store)) == 1, "a flap within the window starts nothing"
    assert await store.get_event("/hooks/alertmanager", "e2") is not None, "but it is stored"
    await store.append_events([event("e3", subject="fp-2")], 159.0)
    assert len(await runs_of(store)) == 2, "the window is per key"
    await store.append_events([event("e4")], 160.0)
    assert [r.event_id for r in await runs_of(store)] == ["e1", "e3", "e4"]


async def test_intake__no_dedup_key_starts_a_run_per_event(store: Store) -> None:
    await store.save_trigger(alert_trigger(key=None), 1.0)
    await store.append_events([event("e1"), event("e2")], 2.0)
    assert [r.event_id for r in await runs_of(store)] == ["e1", "e2"]
    assert await store.trigger_runs("code:wf") == []


async def test_intake__concurrency_by_narrows_the_key_per_run_input(store: Store) -> None:
    trigger = alert_trigger(
        mode="one",
        filters=[{"type": FIRING}],
        input="{service: .data.labels.service}",
        concurrency_key="wf",
        concurrency_limit=1,
        concurrency_by=".service",
    )
    await store.save_trigger(trigger, 1.0)
    assert await store.get_trigger("code:wf") == replace(trigger, created_at=1.0, updated_at=1.0)
    firing = [
        parse_event({**event(f"e{i}", subject=f"fp-{i}").to_dict(), "data": {"labels": labels}})
        for i, labels in enumerate([{"service": "web"}, {"service": "web"}, {"service": "db"}, {}])
    ]
    await store.append_events(firing, 2.0)
    runs = await runs_of(store)
    # The alert without a service label starts nothing: its key cannot be made.
    assert sorted(run.input["service"] for run in runs) == ["db", "web", "web"]
    claims = await store.claim("w1", KINDS, 10, 3.0, 30.0)
    assert sorted(claim.run.input["service"] for claim in claims) == ["db", "web"]


async def test_intake__filters_literals_where_and_input_expression(store: Store) -> None:
    await store.save_trigger(
        alert_trigger(
            mode="one",
            filters=[{"type": FIRING, "where": '.data.labels.alertname == "HighLatency"'}],
            input="{fingerprint: .subject, labels: .data.labels}",
        ),
        1.0,
    )
    other = parse_event(
        {"specversion": "1.0", "id": "o", "source": "s", "type": FIRING, "data": {"labels": {}}}
    )
    await store.append_events([other, event("e1", RESOLVED), event("e2")], 2.0)
    [run] = await runs_of(store)
    assert run.input == {"fingerprint": "fp-1", "labels": {"alertname": "HighLatency"}}


async def test_intake__all_mode_waits_for_every_filter_per_correlation(store: Store) -> None:
    deploy, alert = "io.example.deploy.v1", FIRING
    correlate = [[Correlation("service", ".data.service")], [Correlation("service", ".data.svc")]]
    await store.save_trigger(
        alert_trigger(mode="all", filters=[{"type": deploy}, {"type": alert}], correlate=correlate),
        1.0,
    )
    await store.append_events(
        [event("d1", deploy, service="api"), event("a1", alert, svc="db")], 2.0
    )
    assert await runs_of(store) == [], "two services, neither complete"
    await store.append_events([event("a2", alert, svc="api")], 3.0)
    [run] = await runs_of(store)
    assert [e["id"] for e in run.input["events"]] == ["d1", "a2"]
    assert run.event_id == "a2", "the event that completed the set started it"
    await store.append_events([event("a3", alert, svc="api")], 4.0)
    assert len(await runs_of(store)) == 1, "the correlation key's run is open: inbox"
    claim = await claim_one(store, 5.0)
    assert [s.payload["event"]["id"] for s in claim.signals] == ["a3"]


async def test_intake__two_stores_racing_on_one_key_open_one_run(db_url: str) -> None:
    first, second = open_store(db_url), open_store(db_url)
    await first.open()
    await second.open()
    try:
        await first.save_trigger(alert_trigger(), 1.0)
        for attempt in range(5):
            key = f"fp-race-{attempt}"
            await asyncio.gather(
                first.append_events([event(f"a{attempt}", subject=key)], 2.0),
                second.append_events([event(f"b{attempt}", subject=key)], 2.0),
            )
        runs = await runs_of(first)
        assert len(runs) == 5, "one run per key"
        claims = await first.claim("w1", KINDS, 10, 3.0, 30.0)
        for claim in claims:
            assert len(claim.signals) == 1, "the other event reached the open run's inbox"
            assert {claim.run.event_id, claim.signals[0].payload["event"]["id"]} in (
                {f"a{i}", f"b{i}"} for i in range(5)
            )
    finally:
        await first.close()
        await second.close()


async def test_subscribe__moves_matching_inbox_events_to_the_subscription_in_order(
    store: Store,
) -> None:
    await store.save_trigger(alert_trigger(), 1.0)
    await store.append_events([event("e1")], 2.0)
    claim = await claim_one(store, 3.0)
    await store.append_events([event("e2"), event("e3", RESOLVED), event("e4")], 4.0)
    step = StepRecord(
        run_id=claim.run.id,
        seq=1,
        kind=StepKind.VALUE,
        name="subscribe",
        status=StepStatus.COMPLETED,
        output={"subscription": "s1", "filters": [{"type": "nope"}, {"type": FIRING}]},
    )
    await store.subscribe(claim.fence, "s1", [{"type": "nope"}, {"type": FIRING}], step, 5.0)
    # The live delivery after subscribing comes after the moved ones.
    await store.append_events([event("e5")], 6.0)
    await store.suspend(claim.fence, None, 7.0)
    again = await claim_one(store, 8.0)
    signals = [(s.name, s.payload["filter"], s.payload["event"]["id"]) for s in again.signals]
    assert signals == [
        ("events:s1", 1, "e2"),
        (INBOX, 1, "e3"),
        ("events:s1", 1, "e4"),
        ("events:s1", 1, "e5"),
    ], "e5 went to the subscription only, not also to the inbox"


async def test_subscribe__nudges_the_run_so_moved_events_are_seen(store: Store) -> None:
    await store.save_trigger(alert_trigger(), 1.0)
    await store.append_events([event("e1")], 2.0)
    claim = await claim_one(store, 3.0)
    await store.append_events([event("e2")], 4.0)
    step = StepRecord(
        run_id=claim.run.id,
        seq=1,
        kind=StepKind.VALUE,
        name="subscribe",
        status=StepStatus.COMPLETED,
        output={"subscription": "s1", "filters": [{"type": FIRING}]},
    )
    await store.subscribe(claim.fence, "s1", [{"type": FIRING}], step, 5.0)
    await store.suspend(claim.fence, None, 6.0)
    # Parked with no timer, it is ready again at once: the move nudged it.
    assert await store.next_wake(KINDS) == 6.0


async def test_intake__follow_events_reach_open_runs_but_start_none(store: Store) -> None:
    from opsloom.model.trigger import default_follow

    filters = [{"type": FIRING, "source": "/hooks/alertmanager"}]
    follow = default_follow("one", filters)
    assert follow == [{"source": "/hooks/alertmanager", "type": RESOLVED}]
    await store.save_trigger(alert_trigger(mode="one", filters=filters, follow=follow), 1.0)
    await store.append_events([event("r0", RESOLVED)], 2.0)
    assert await runs_of(store) == [], "a resolution with no open run starts nothing"
    await store.append_events([event("f1"), event("r1", RESOLVED)], 3.0)
    assert [r.event_id for r in await runs_of(store)] == ["f1"]
    claim = await claim_one(store, 4.0)
    assert [(s.payload["filter"], s.payload["event"]["id"]) for s in claim.signals] == [(1, "r1")]
    assert (await store.get_trigger("code:wf")).follow == follow  # type: ignore[union-attr]


async def test_intake__all_mode_halves_arriving_at_once_in_two_stores_start_a_run(
    db_url: str,
) -> None:
    deploy = "io.example.deploy.v1"
    first, second = open_store(db_url), open_store(db_url)
    await first.open()
    await second.open()
    try:
        correlate = [[Correlation("svc", ".data.svc")], [Correlation("svc", ".data.svc")]]
        trigger = alert_trigger(
            mode="all", filters=[{"type": deploy}, {"type": FIRING}], correlate=correlate
        )
        await first.save_trigger(trigger, 1.0)
        for n in range(5):
            await asyncio.gather(
                first.append_events([event(f"d{n}", deploy, svc=f"s{n}")], 2.0),
                second.append_events([event(f"a{n}", FIRING, svc=f"s{n}")], 2.0),
            )
        runs = await runs_of(first)
        assert sorted(tuple(e["id"] for e in r.input["events"]) for r in runs) == [
            (f"d{n}", f"a{n}") for n in range(5)
        ]
    finally:
        await first.close()
        await second.close()


async def test_intake__prepared_before_a_change_of_its_trigger_applies_the_trigger_as_it_is_now(
    store: Store,
) -> None:
    # The triggers' work is done before the transaction from the rows last read; the
    # transaction must use it only when the trigger is still the one it was worked out from.
    sql = cast(SqlStore, store)
    await store.save_trigger(alert_trigger(input="{version: 1}"), 1.0)
    await store.append_events([event("e0", subject="fp-0")], 2.0)  # the intake reads the rows
    prepared = prepare([event("e1", subject="fp-1")], 4.0, sql.triggers_seen)
    assert prepared[0].plan is not None, "worked out ahead from the rows it read"
    await store.save_trigger(alert_trigger(input="{version: 2}"), 3.0)
    await sql.write(lambda tx: append(tx, prepared, 4.0, sql.triggers_seen), WORK)
    assert [(r.event_id, r.input) for r in await runs_of(store)] == [
        ("e0", {"version": 1}),
        ("e1", {"version": 2}),
    ]

    prepared = prepare([event("e2", subject="fp-2")], 6.0, sql.triggers_seen)
    assert await store.delete_trigger("code:wf") is True
    assert await sql.write(lambda tx: append(tx, prepared, 6.0, sql.triggers_seen), WORK) == [True]
    assert [r.event_id for r in await runs_of(store)] == ["e0", "e1"], "a deleted trigger"

    await store.save_trigger(alert_trigger(id="code:new", input="{version: 3}"), 7.0)
    prepared = prepare([event("e3", subject="fp-3")], 8.0, sql.triggers_seen)
    await sql.write(lambda tx: append(tx, prepared, 8.0, sql.triggers_seen), WORK)
    assert [(r.event_id, r.input) for r in await runs_of(store)][-1] == ("e3", {"version": 3})


async def test_intake__expressions_that_fail_dead_letter_the_event_when_worked_out_ahead(
    store: Store,
) -> None:
    await store.save_trigger(alert_trigger(id="code:keyed", key=".data.n + 1"), 1.0)
    await store.save_trigger(alert_trigger(id="code:input", key=None, input=".data.n - 1"), 1.0)
    await store.append_events([event("e1", n=1)], 2.0)
    started = {run.started_by: run.input for run in await runs_of(store)}
    assert started == {"trigger:code:keyed": event("e1", n=1).to_dict(), "trigger:code:input": 0}
    assert await store.append_events([event("e2", n="x")], 3.0) == [True]
    assert len(await runs_of(store)) == 2, "the event starts nothing"
    letters = sorted(await store.list_dead_letters(), key=lambda letter: letter.trigger_id)
    assert [(d.trigger_id, d.workflow, d.event_id, d.reason) for d in letters] == [
        ("code:input", "wf", "e2", "input"),
        ("code:keyed", "wf", "e2", "key"),
    ]
    assert ".data.n - 1" in letters[0].detail and ".data.n + 1" in letters[1].detail


async def test_intake__stores_that_prepared_ahead_still_open_one_run_per_key(db_url: str) -> None:
    first, second = open_store(db_url), open_store(db_url)
    await first.open()
    await second.open()
    try:
        await first.save_trigger(alert_trigger(), 1.0)
        # Both have read the trigger's rows: from now on each works its events out ahead.
        await first.append_events([event("w1", subject="warm-1")], 2.0)
        await second.append_events([event("w2", subject="warm-2")], 2.0)
        for store in (first, second):
            assert cast(SqlStore, store).triggers_seen.triggers.keys() == {"code:wf"}
        keys = [f"fp-race-{n}" for n in range(8)]
        await asyncio.gather(
            first.append_events([event(f"a{n}", subject=key) for n, key in enumerate(keys)], 3.0),
            second.append_events([event(f"b{n}", subject=key) for n, key in enumerate(keys)], 3.0),
        )
        runs = [r for r in await runs_of(first) if r.input["subject"] in keys]
        assert sorted(r.input["subject"] for r in runs) == keys, "one run per key"
        claims = {c.run.id: c for c in await first.claim("w1", KINDS, 20, 4.0, 30.0)}
        for run in runs:
            number = run.input["subject"].removeprefix("fp-race-")
            [inbox] = claims[run.id].signals
            assert {run.event_id, inbox.payload["event"]["id"]} == {f"a{number}", f"b{number}"}
    finally:
        await first.close()
        await second.close()
