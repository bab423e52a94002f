"""What every store must do, whatever its database."""

from __future__ import annotations

import asyncio

import pytest

from opsloom.codec import encode
from opsloom.errors import LeaseLostError, RunNotFoundError, RunStateError
from opsloom.model import RunStatus, StepKind, StepRecord, StepStatus
from opsloom.model.run import Fence, NewRun
from opsloom.store import RunFilter, Store
from opsloom.store.base import Kept

KIND = "wf@1"
KINDS = frozenset({KIND})
T0 = 1_000.0


def new_run(run_id: str, **extra: object) -> NewRun:
    fields: dict[str, object] = {
        "id": run_id,
        "workflow": "wf",
        "version": "1",
        "input": encode({"n": run_id}),
    }
    fields.update(extra)
    return NewRun(**fields)  # type: ignore[arg-type]


def step(
    run_id: str, seq: int, status: StepStatus = StepStatus.COMPLETED, output: object = None
) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        seq=seq,
        kind=StepKind.STEP,
        name=f"s{seq}",
        status=status,
        output=output,
        started_at=T0,
        completed_at=T0,
    )


async def claim_one(store: Store, owner: str = "w1", now: float = T0, lease: float = 30.0) -> Fence:
    claims = await store.claim(owner, KINDS, 1, now, lease)
    assert len(claims) == 1
    return claims[0].fence


async def test_create_run__is_idempotent_by_id(store: Store) -> None:
    run, created = await store.create_run(new_run("r1"), T0)
    assert created and run.status is RunStatus.PENDING and run.input == {"n": "r1"}
    again, created_again = await store.create_run(new_run("r1", input=encode("other")), T0 + 1)
    assert not created_again
    assert again.id == "r1" and again.input == {"n": "r1"}
    assert len(await store.list_runs(RunFilter())) == 1


async def test_get_run__unknown_is_none(store: Store) -> None:
    assert await store.get_run("nope") is None
    assert await store.status_of("nope") is None


async def test_claim__leases_a_run_once(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    first = await store.claim("w1", KINDS, 10, T0, 30)
    second = await store.claim("w2", KINDS, 10, T0, 30)
    assert [c.run.id for c in first] == ["r1"] and second == []
    assert first[0].run.status is RunStatus.RUNNING
    assert (await store.get_run("r1")).started_at == T0  # type: ignore[union-attr]


async def test_claim__only_known_kinds(store: Store) -> None:
    await store.create_run(new_run("r1", version="2"), T0)
    assert await store.claim("w1", KINDS, 10, T0, 30) == []
    assert len(await store.claim("w1", frozenset({"wf@2"}), 10, T0, 30)) == 1


async def test_claim__by_priority_then_age(store: Store) -> None:
    await store.create_run(new_run("low"), T0)
    await store.create_run(new_run("high", priority=5), T0 + 1)
    await store.create_run(new_run("low2"), T0 + 2)
    claims = await store.claim("w1", KINDS, 2, T0 + 3, 30)
    assert [c.run.id for c in claims] == ["high", "low"]


async def test_claim__concurrent_claims_never_share_a_run(store: Store) -> None:
    for i in range(50):
        await store.create_run(new_run(f"r{i}"), T0)
    results = await asyncio.gather(*[store.claim(f"w{i}", KINDS, 7, T0, 30) for i in range(10)])
    ids = [c.run.id for claims in results for c in claims]
    assert len(ids) == 50 and len(set(ids)) == 50


async def test_record_step__is_fenced(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.record_step(fence, step("r1", 1, output={"ok": 1}))
    stale = Fence("r1", fence.owner, fence.token - 1)
    with pytest.raises(LeaseLostError):
        await store.record_step(stale, step("r1", 2))
    with pytest.raises(LeaseLostError):
        await store.record_step(Fence("r1", "intruder", fence.token), step("r1", 2))
    run = await store.get_run("r1", with_steps=True)
    assert run is not None and [(s.seq, s.output) for s in run.steps] == [(1, {"ok": 1})]


async def test_record_step__completion_is_recorded_once(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.record_step(fence, step("r1", 1, output="first"))
    await store.record_step(fence, step("r1", 1, output="second"))
    run = await store.get_run("r1", with_steps=True)
    assert run is not None and [s.output for s in run.steps] == ["first"]


async def test_record_step__retrying_entry_can_be_completed(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.record_step(
        fence,
        StepRecord(
            run_id="r1",
            seq=1,
            kind=StepKind.STEP,
            name="s1",
            status=StepStatus.RETRYING,
            attempts=1,
            wake_at=T0 + 5,
            error={"type": "E", "message": "boom"},
        ),
    )
    await store.record_step(
        fence,
        StepRecord(
            run_id="r1",
            seq=1,
            kind=StepKind.STEP,
            name="s1",
            status=StepStatus.COMPLETED,
            attempts=2,
            output=3,
        ),
    )
    run = await store.get_run("r1", with_steps=True)
    assert run is not None
    assert [(s.status, s.attempts, s.output) for s in run.steps] == [(StepStatus.COMPLETED, 2, 3)]


async def test_reclaim__new_token_fences_off_the_old_owner(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    old = await claim_one(store, "w1", T0, lease=10)
    assert await store.reap_expired(T0 + 5) == []
    assert await store.reap_expired(T0 + 11) == ["r1"]
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.PENDING and run.recovered == 1
    new = await claim_one(store, "w2", T0 + 12)
    assert new.token > old.token
    with pytest.raises(LeaseLostError):
        await store.record_step(old, step("r1", 1))
    with pytest.raises(LeaseLostError):
        await store.finish_run(old, RunStatus.COMPLETED, encode(1), None, T0 + 13)
    await store.record_step(new, step("r1", 1))


async def test_claim__kept_run_current_skips_its_history_else_reads_it(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.record_step(fence, step("r1", 1))
    await store.record_step(fence, step("r1", 2, StepStatus.WAITING))
    await store.suspend(fence, T0 + 1, T0)
    kept = {"r1": Kept(fence.token, 2)}
    # No one claimed it in between and its history ends where it did: not read.
    [claim] = await store.claim("w1", KINDS, 1, T0 + 1, 30, kept)
    assert claim.kept and claim.history == {} and claim.fence.token == fence.token + 1
    await store.suspend(claim.fence, T0 + 2, T0 + 1)
    # The history ends elsewhere (or the caller's position is off): read in full.
    [claim] = await store.claim("w1", KINDS, 1, T0 + 2, 30, {"r1": Kept(claim.fence.token, 3)})
    assert not claim.kept and sorted(claim.history) == [1, 2]
    await store.suspend(claim.fence, T0 + 3, T0 + 2)
    # Someone else claimed the run since the caller parked it: its token went up by more.
    [claim] = await store.claim("w2", KINDS, 1, T0 + 3, 30, {"r1": Kept(fence.token, 2)})
    assert not claim.kept and sorted(claim.history) == [1, 2]
    assert claim.history[2].status is StepStatus.WAITING


async def test_heartbeat__extends_and_reports(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    await store.create_run(new_run("r2"), T0)
    claims = await store.claim("w1", KINDS, 2, T0, 10)
    result = await store.heartbeat("w1", ["r1", "r2", "gone"], T0 + 100)
    assert result.lost == frozenset({"gone"}) and result.cancel_requested == frozenset()
    assert await store.reap_expired(T0 + 50) == []
    await store.request_cancel("r2", T0 + 51)
    result = await store.heartbeat("w1", ["r1", "r2"], T0 + 200)
    assert result.cancel_requested == frozenset({"r2"})
    assert len(claims) == 2


async def test_suspend__parks_until_wake_time(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.suspend(fence, T0 + 60, T0)
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.WAITING
    assert await store.next_wake(KINDS) == T0 + 60
    assert await store.claim("w1", KINDS, 1, T0 + 59, 30) == []
    assert len(await store.claim("w1", KINDS, 1, T0 + 60, 30)) == 1


async def test_suspend__without_wake_needs_a_nudge(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.suspend(fence, None, T0)
    assert await store.claim("w1", KINDS, 1, T0 + 10_000, 30) == []
    await store.send_signal("r1", "go", encode({"x": 1}), T0 + 1)
    claims = await store.claim("w1", KINDS, 1, T0 + 2, 30)
    assert len(claims) == 1
    assert [(s.name, s.payload) for s in claims[0].signals] == [("go", {"x": 1})]


async def test_signal__while_running_is_not_lost_by_parking(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.send_signal("r1", "go", encode(1), T0 + 1)
    await store.suspend(fence, None, T0 + 2)  # the worker had not seen the signal
    claims = await store.claim("w1", KINDS, 1, T0 + 3, 30)
    assert len(claims) == 1 and claims[0].signals[0].payload == 1


async def test_signal__unknown_or_finished_run_is_refused(store: Store) -> None:
    with pytest.raises(RunNotFoundError):
        await store.send_signal("nope", "go", encode(1), T0)
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.finish_run(fence, RunStatus.COMPLETED, encode(1), None, T0)
    with pytest.raises(RunStateError):
        await store.send_signal("r1", "go", encode(1), T0)


async def test_signal__sent_together_each_refused_or_delivered_alone(store: Store) -> None:
    for run_id in ("r1", "r2", "done"):
        await store.create_run(new_run(run_id), T0)
    for _ in range(3):
        fence = await claim_one(store)
        if fence.run_id == "done":
            await store.finish_run(fence, RunStatus.COMPLETED, encode(1), None, T0)
        else:
            await store.suspend(fence, None, T0)
    # Submitted together, so a store with group commit writes them in one batch.
    sent = await asyncio.gather(
        store.send_signal("r1", "go", encode("a"), T0 + 1),
        store.send_signal("nope", "go", encode("b"), T0 + 1),
        store.send_signal("r2", "go", encode("c"), T0 + 1),
        store.send_signal("done", "go", encode("d"), T0 + 1),
        store.send_signal("r1", "stop", encode("e"), T0 + 1),
        return_exceptions=True,
    )
    assert isinstance(sent[1], RunNotFoundError) and isinstance(sent[3], RunStateError)
    ids = [sent[0], sent[2], sent[4]]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 3
    claims = await store.claim("w1", KINDS, 10, T0 + 2, 30)
    got = {c.run.id: [(s.name, s.payload) for s in c.signals] for c in claims}
    assert got == {"r1": [("go", "a"), ("stop", "e")], "r2": [("go", "c")]}
    assert await store.pending_signals("done") == []


async def test_finish_run__refused_for_a_closed_run_keeps_the_job(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.write(
        lambda tx: tx.execute("UPDATE runs SET status = 'cancelled' WHERE id = ?", ("r1",))
    )
    with pytest.raises(RunStateError):
        await store.finish_run(fence, RunStatus.COMPLETED, encode(1), None, T0 + 1)
    job = await store.read(
        lambda tx: tx.one("SELECT owner, token FROM jobs WHERE run_id = ?", ("r1",))
    )
    assert tuple(job or ()) == ("w1", fence.token)
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.output, run.completed_at) == (RunStatus.CANCELLED, None, None)


async def test_consume_signal__is_not_delivered_again(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    await store.send_signal("r1", "go", encode("a"), T0)
    await store.send_signal("r1", "go", encode("b"), T0)
    claim = (await store.claim("w1", KINDS, 1, T0, 30))[0]
    first = claim.signals[0]
    await store.consume_signal(
        claim.fence,
        first.id,
        StepRecord(
            run_id="r1",
            seq=1,
            kind=StepKind.SIGNAL,
            name="go",
            status=StepStatus.COMPLETED,
            output=first.payload,
        ),
    )
    await store.suspend(claim.fence, T0, T0)
    pending = await store.pending_signals("r1")
    assert [(s.name, s.payload, s.created_at) for s in pending] == [("go", "b", T0)]
    assert await store.pending_signals("nope") == []
    again = (await store.claim("w1", KINDS, 1, T0, 30))[0]
    assert [s.payload for s in again.signals] == ["b"]
    assert again.history[1].output == "a"


async def test_signals_since__unconsumed_and_consumed_from_a_position(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    assert await store.signals_since("r1", 0) == []
    await store.send_signal("r1", "go", encode("a"), T0)
    await store.send_signal("r1", "stop", encode("b"), T0 + 1)
    claim = (await store.claim("w1", KINDS, 1, T0 + 1, 30))[0]
    await store.consume_signal(
        claim.fence,
        claim.signals[0].id,
        StepRecord(
            run_id="r1",
            seq=1,
            kind=StepKind.SIGNAL,
            name="go",
            status=StepStatus.COMPLETED,
            output="a",
        ),
    )
    pending = await store.signals_since("r1", 2)
    assert [(s.name, s.payload, s.consumed_seq) for s in pending] == [("stop", "b", None)]
    both = await store.signals_since("r1", 1)
    assert [(s.name, s.consumed_seq) for s in both] == [("go", 1), ("stop", None)]
    assert await store.signals_since("unknown", 0) == []


async def test_finish_run__closes_and_wakes_the_parent(store: Store) -> None:
    await store.create_run(new_run("parent"), T0)
    parent = await claim_one(store)
    child_step = StepRecord(
        run_id="parent",
        seq=1,
        kind=StepKind.CHILD,
        name="wf",
        status=StepStatus.WAITING,
        output={"run_id": "parent.1"},
    )
    await store.start_child(
        parent, child_step, new_run("parent.1", parent_id="parent", parent_seq=1), T0
    )
    await store.suspend(parent, None, T0)
    child = await claim_one(store, "w2")
    assert child.run_id == "parent.1"
    await store.finish_run(child, RunStatus.COMPLETED, encode({"done": True}), None, T0 + 1)
    outcome = await store.child_outcome("parent.1")
    assert outcome is not None and outcome.status is RunStatus.COMPLETED
    assert outcome.output == {"done": True}
    woken = await store.claim("w1", KINDS, 1, T0 + 2, 30)
    assert [c.run.id for c in woken] == ["parent"]
    finished = await store.ended_runs(["parent", "parent.1"])
    assert [(run.id, run.status, run.output) for run in finished] == [
        ("parent.1", RunStatus.COMPLETED, {"done": True})
    ]


async def test_create_run__same_id_together_creates_one_run_and_one_job(store: Store) -> None:
    # Submitted together, so a store with group commit writes them in one batch.
    results = await asyncio.gather(
        *(store.create_run(new_run("r1", input=encode(i)), T0) for i in range(3)),
        store.create_run(new_run("r2"), T0),
    )
    assert [created for _, created in results] == [True, False, False, True]
    assert {run.input for run, _ in results[:3]} == {0}
    claims = await store.claim("w1", KINDS, 10, T0, 30)
    assert sorted(claim.run.id for claim in claims) == ["r1", "r2"]


async def test_ended_runs__only_ended_ones_each_with_its_labels(store: Store) -> None:
    await store.create_run(new_run("done", labels=(("team", "a"), ("tier", "1"))), T0)
    await store.create_run(new_run("open", labels=(("team", "b"),)), T0)
    await store.create_run(new_run("bare"), T0)
    assert await store.ended_runs(["done", "open", "bare"]) == []
    for _ in range(3):
        fence = await claim_one(store)
        if fence.run_id != "open":
            await store.finish_run(fence, RunStatus.COMPLETED, encode(fence.run_id), None, T0)
    finished = await store.ended_runs(["done", "open", "bare", "missing"])
    assert sorted((run.id, run.output, run.labels) for run in finished) == [
        ("bare", "bare", {}),
        ("done", "done", {"team": "a", "tier": "1"}),
    ]
    assert await store.ended_runs([]) == []


async def test_finish_run__terminal_status_is_final(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.finish_run(fence, RunStatus.FAILED, None, {"type": "E", "message": "m"}, T0)
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error == {"type": "E", "message": "m"} and run.completed_at == T0
    with pytest.raises(LeaseLostError):
        await store.finish_run(fence, RunStatus.COMPLETED, encode(1), None, T0)


async def test_concurrency_key__limits_open_runs(store: Store) -> None:
    for i in range(3):
        await store.create_run(
            new_run(f"r{i}", concurrency_key="wf:db", concurrency_limit=1), T0 + i
        )
    await store.create_run(new_run("other", concurrency_key="wf:web", concurrency_limit=1), T0 + 5)
    first = await store.claim("w1", KINDS, 10, T0 + 10, 30)
    assert sorted(c.run.id for c in first) == ["other", "r0"]
    r0 = next(c.fence for c in first if c.run.id == "r0")
    # A parked run still holds its slot: the limit is on open runs, not on executing ones.
    await store.suspend(r0, T0 + 11, T0 + 10)
    resumed = await store.claim("w1", KINDS, 10, T0 + 12, 30)
    assert [c.run.id for c in resumed] == ["r0"]
    assert await store.claim("w2", KINDS, 10, T0 + 12, 30) == []
    # Finishing r0 frees the slot for exactly one more run of that key.
    await store.finish_run(resumed[0].fence, RunStatus.COMPLETED, encode(0), None, T0 + 13)
    nxt = await store.claim("w1", KINDS, 10, T0 + 14, 30)
    assert [c.run.id for c in nxt] == ["r1"]


async def test_request_cancel__reaches_descendants(store: Store) -> None:
    await store.create_run(new_run("p"), T0)
    p = await claim_one(store)
    await store.start_child(
        p,
        StepRecord(run_id="p", seq=1, kind=StepKind.CHILD, name="wf", status=StepStatus.WAITING),
        new_run("p.1", parent_id="p"),
        T0,
    )
    await store.suspend(p, None, T0)
    ids = await store.request_cancel("p", T0 + 1)
    assert sorted(ids) == ["p", "p.1"]
    for run_id in ids:
        run = await store.get_run(run_id)
        assert run is not None and run.cancel_requested
    with pytest.raises(RunNotFoundError):
        await store.request_cancel("nope", T0)


async def test_release__returns_leases_to_the_queue(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    await claim_one(store, "w1")
    assert await store.release("w1", T0 + 1) == 1
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.PENDING and run.recovered == 0
    assert len(await store.claim("w2", KINDS, 1, T0 + 1, 30)) == 1


async def test_retry_run__keeps_completed_steps(store: Store) -> None:
    await store.create_run(new_run("r1"), T0)
    fence = await claim_one(store)
    await store.record_step(fence, step("r1", 1, output=1))
    await store.record_step(
        fence,
        StepRecord(
            run_id="r1",
            seq=2,
            kind=StepKind.STEP,
            name="s2",
            status=StepStatus.FAILED,
            error={"type": "E", "message": "m"},
        ),
    )
    await store.finish_run(fence, RunStatus.FAILED, None, {"type": "E", "message": "m"}, T0)
    run = await store.retry_run("r1", T0 + 1)
    assert run.status is RunStatus.PENDING and run.error is None
    claim = (await store.claim("w1", KINDS, 1, T0 + 2, 30))[0]
    assert list(claim.history) == [1]
    with pytest.raises(RunStateError):
        await store.retry_run("r1", T0 + 3)


async def test_list_runs__filters(store: Store) -> None:
    await store.create_run(new_run("a"), T0)
    await store.create_run(new_run("b"), T0 + 1)
    fence = await claim_one(store, now=T0 + 2)
    await store.finish_run(fence, RunStatus.COMPLETED, encode(1), None, T0 + 3)
    assert [r.id for r in await store.list_runs(RunFilter())] == ["b", "a"]
    done = await store.list_runs(RunFilter(status=RunStatus.COMPLETED))
    assert [r.id for r in done] == ["a"]
    assert await store.list_runs(RunFilter(workflow="other")) == []


async def test_heartbeat__extends_only_the_runs_still_executed(store: Store) -> None:
    await store.create_run(new_run("kept"), T0)
    await store.create_run(new_run("dropped"), T0)
    await store.claim("w1", KINDS, 2, T0, 10)
    await store.heartbeat("w1", ["kept"], T0 + 100)
    assert await store.reap_expired(T0 + 50) == ["dropped"]
