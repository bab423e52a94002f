"""The replay cursor's write barrier and branch accounting, on a store whose writes are held
back or fail (``write_gate.WriteGate``).

A run's records are queued, not awaited: a step body, a park or the completion waits until
every earlier record is durable, and a record that fails stops the run at once, even while the
workflow waits on something else, and without compensating (the store failed, not the
workflow). Branches (``gather``, ``race``) are counted so that the run leaves memory exactly when
every live branch waits on something durable: never while a step still runs, and with the wake
time of the waits that are left.
"""

from __future__ import annotations

import asyncio
import gc
import time
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from engine_waits import REPLAYING, eventually, parked
from write_gate import WriteGate

from opsloom import (
    App,
    Context,
    FakeClock,
    RetryPolicy,
    RunFailedError,
    RunStatus,
    StepFailedError,
    WorkerOptions,
)
from opsloom.engine.execution import Execution
from opsloom.engine.replay import DetachedHost
from opsloom.errors import NonDeterminismError
from opsloom.model import RunRecord, StepKind, StepRecord, StepStatus
from opsloom.model.observer import Observer


class Lifecycle(Observer):
    """What happened to runs, in order: parks with their wake time (relative to ``t0``) and
    ends with their status."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.seen: list[tuple[str, Any]] = []

    def run_parked(self, run: RunRecord, wake_at: float | None, now: float) -> None:
        self.seen.append(("parked", None if wake_at is None else wake_at - self.t0))

    def run_finished(self, run: RunRecord, now: float) -> None:
        self.seen.append(("finished", run.status))


class Scene:
    """An app on a fake clock that starts now, its runs' lifecycle observed, and step bodies
    that wait until the test releases them.

    ``recovering``: the worker reclaims a run as soon as the clock passes its 30 s lease.
    """

    def __init__(
        self, make_app: Callable[..., App], *, recovering: bool = False, replaying: bool = False
    ) -> None:
        self.t0 = time.time()
        self.clock = FakeClock(start=self.t0)
        worker = (
            WorkerOptions(lease_seconds=30, poll_seconds=0.05, reap_seconds=0.05)
            if recovering
            else REPLAYING
            if replaying
            else None
        )
        self.app = make_app(clock=self.clock, worker=worker)
        self.lifecycle = Lifecycle(self.t0)
        self.app.observe(self.lifecycle)
        self.calls: list[str] = []
        self.releases: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def body(self, name: str) -> str:
        """A step body named ``name``: noted in ``calls``, returns once released (noted again
        if cancelled first)."""
        self.calls.append(name)
        try:
            await self.releases[name].wait()
        except asyncio.CancelledError:
            self.calls.append(f"{name} cancelled")
            raise
        return name

    def held_step(self, name: str) -> Callable[[], Awaitable[str]]:
        """Register a step named ``name`` whose body is :meth:`body`."""

        async def held() -> str:
            return await self.body(name)

        return self.app.step(name=name)(held)

    def called(self, *names: str) -> Callable[[], Any]:
        """A check: exactly these step bodies began, in this order."""
        return lambda: asyncio.sleep(0, self.calls == list(names))

    def gone(self, run_id: str) -> Callable[[], Any]:
        """A check: no worker holds the run in memory."""
        worker = self.app.worker
        assert worker is not None
        return lambda: asyncio.sleep(0, run_id not in worker.executions)

    def in_memory(self, run_id: str) -> bool:
        return self.app.worker is not None and run_id in self.app.worker.executions

    def step(self, run_id: str, seq: int, name: str, output: Any, at: float = 0) -> StepRecord:
        """A step's history entry, completed at its first attempt ``at`` seconds in."""
        return StepRecord(
            run_id=run_id,
            seq=seq,
            kind=StepKind.STEP,
            name=name,
            status=StepStatus.COMPLETED,
            output=output,
            attempts=1,
            started_at=self.t0 + at,
            completed_at=self.t0 + at,
        )

    def timer(self, run_id: str, seq: int, seconds: float) -> StepRecord:
        """The history entry of a timer set at the start for ``seconds``, still waiting."""
        return StepRecord(
            run_id=run_id,
            seq=seq,
            kind=StepKind.SLEEP,
            name="sleep",
            status=StepStatus.WAITING,
            wake_at=self.t0 + seconds,
            started_at=self.t0,
        )

    def fired(self, timer: StepRecord) -> StepRecord:
        """``timer`` once it fired (and the run was replayed at its time)."""
        return replace(timer, status=StepStatus.COMPLETED, completed_at=timer.wake_at)


async def test_failed_write__stops_the_run_at_once_while_another_branch_still_runs(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    scene = Scene(make_app, recovering=True)
    app = scene.app

    long = scene.held_step("long")
    quick = scene.held_step("quick")

    @app.workflow(name="pair")
    async def pair(ctx: Context) -> list[str]:
        return await ctx.gather(ctx.step(long), ctx.step(quick))

    scene.releases["quick"].set()
    async with app:
        gate = WriteGate(app.store)
        try:
            gate.hold_from(lambda entry: entry.name == "quick")
            handle = await app.start("pair")
            await gate.holding.wait()
            assert scene.calls == ["long", "quick"]
            # The database goes away while "quick"'s record waits and "long" still runs: the
            # run stops now, not when "long" ends, and nothing of it is written.
            gate.fail_held()
            await eventually(scene.gone(handle.run_id))
            assert scene.calls == ["long", "quick", "long cancelled"]
            assert any("store write failed" in r.getMessage() for r in caplog.records)
            stopped = await app.get_run(handle.run_id)
            gate.broken = False  # the database is back
            scene.releases["long"].set()
            scene.clock.advance(31)  # the lease the stopped run held expires
            assert await handle.result(timeout=20) == ["long", "quick"]
            run = await app.get_run(handle.run_id)
        finally:
            gate.close()
    assert (stopped.status, stopped.steps, stopped.recovered) == (RunStatus.RUNNING, [], 0)
    assert scene.calls == ["long", "quick", "long cancelled", "long", "quick"]
    assert run.steps == [
        scene.step(run.id, 1, "long", "long", at=31),
        scene.step(run.id, 2, "quick", "quick", at=31),
    ]
    assert (run.status, run.output, run.error, run.recovered) == (
        RunStatus.COMPLETED,
        ["long", "quick"],
        None,
        1,
    )


async def test_failed_write__an_unrecorded_retry_stops_the_run_without_compensating(
    make_app: Callable[..., App],
) -> None:
    scene = Scene(make_app, recovering=True)
    app = scene.app

    @app.step(name="flaky", retry=RetryPolicy(attempts=2, initial_delay=10, jitter=0))
    async def flaky() -> str:
        scene.calls.append("flaky")
        if scene.calls.count("flaky") == 1:
            raise ConnectionError("connection reset by peer")
        return "ok"

    @app.step(name="undo")
    async def undo() -> None:
        scene.calls.append("undo")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        ctx.compensate(undo)
        return await ctx.step(flaky)

    async with app:
        gate = WriteGate(app.store)
        try:
            gate.hold_from(lambda entry: entry.status is StepStatus.RETRYING)
            handle = await app.start("wf")
            await gate.holding.wait()
            gate.fail_held()  # the retry's record is refused: the store failed, not the run
            await eventually(scene.gone(handle.run_id))
            stopped = await app.get_run(handle.run_id)
            gate.broken = False
            scene.clock.advance(31)
            assert await handle.result(timeout=20) == "ok"
            run = await app.get_run(handle.run_id)
        finally:
            gate.close()
    assert (stopped.status, stopped.steps) == (RunStatus.RUNNING, [])
    assert scene.calls == ["flaky", "flaky"]
    assert run.steps == [scene.step(run.id, 1, "flaky", "ok", at=31)]
    assert (run.status, run.output, run.error, run.recovered) == (
        RunStatus.COMPLETED,
        "ok",
        None,
        1,
    )


async def test_cancel__arriving_while_a_failed_run_compensates_lets_the_compensation_end(
    make_app: Callable[..., App],
) -> None:
    scene = Scene(make_app)
    app = scene.app

    @app.step(name="charge", retry=RetryPolicy(attempts=1))
    async def charge() -> None:
        raise PermissionError("card declined")

    release = scene.held_step("release")

    @app.workflow(name="order")
    async def order(ctx: Context) -> None:
        ctx.compensate(release)
        await ctx.step(charge)

    async with app:
        handle = await app.start("order")
        await eventually(scene.called("release"))
        assert await app.cancel(handle.run_id) == [handle.run_id]
        scene.releases["release"].set()
        with pytest.raises(RunFailedError):
            await handle.result(timeout=20)
        run = await app.get_run(handle.run_id)
    assert scene.calls == ["release"]
    failed = run.steps[0]
    assert failed.error is not None
    assert run.steps == [
        StepRecord(
            run_id=run.id,
            seq=1,
            kind=StepKind.STEP,
            name="charge",
            status=StepStatus.FAILED,
            error={
                "type": "PermissionError",
                "message": "card declined",
                "traceback": failed.error["traceback"],
                "attempts": [
                    {
                        "attempt": 1,
                        "type": "PermissionError",
                        "message": "card declined",
                        "traceback": failed.error["traceback"],
                        "started_at": scene.t0,
                        "failed_at": scene.t0,
                    }
                ],
            },
            attempts=1,
            started_at=scene.t0,
            completed_at=scene.t0,
        ),
        replace(scene.step(run.id, -1, "release", "release"), kind=StepKind.COMPENSATION),
    ]
    assert (run.status, run.output, run.error) == (
        RunStatus.FAILED,
        None,
        {
            "type": "PermissionError",
            "message": "card declined",
            "traceback": failed.error["traceback"],
            "data": {"step": "charge", "seq": 1, "attempts": 1},
        },
    )


async def test_gather__branches_still_running_keep_the_run_in_memory_until_they_end(
    make_app: Callable[..., App],
) -> None:
    scene = Scene(make_app)
    app = scene.app

    @app.step(name="long")
    async def long(name: str) -> str:
        return await scene.body(name)

    @app.workflow(name="three")
    async def three(ctx: Context) -> list[Any]:
        return await ctx.gather(ctx.sleep(60), ctx.step(long, "1"), ctx.step(long, "2"))

    async def recorded(count: int) -> bool:
        return len((await app.get_run(handle.run_id)).steps) == count

    async with app:
        handle = await app.start("three")
        # One branch waits on its timer, two run: the run is not quiescent.
        await eventually(lambda: asyncio.sleep(0, sorted(scene.calls) == ["1", "2"]))
        scene.releases["1"].set()
        await eventually(lambda: recorded(2))  # the timer and step "1"; "2" still runs
        assert scene.in_memory(handle.run_id)
        assert (sorted(scene.calls), scene.lifecycle.seen) == (["1", "2"], [])
        scene.releases["2"].set()
        await parked(app, handle.run_id)
        waiting = await app.get_run(handle.run_id)
        scene.clock.advance(60)
        assert await handle.result(timeout=20) == [None, "1", "2"]
        run = await app.get_run(handle.run_id)
    assert sorted(scene.calls) == ["1", "2"]
    assert scene.lifecycle.seen == [("parked", 60.0), ("finished", RunStatus.COMPLETED)]
    # ``ctx.step`` takes its position when called, ``ctx.sleep`` when its branch starts.
    timer = scene.timer(run.id, 3, 60)
    done = [scene.step(run.id, 1, "long", "1"), scene.step(run.id, 2, "long", "2")]
    assert (waiting.status, waiting.steps) == (RunStatus.WAITING, [*done, timer])
    assert run.steps == [*done, scene.fired(timer)]


async def test_gather__nested_group_ends_and_its_branch_goes_on_before_the_run_parks(
    make_app: Callable[..., App],
) -> None:
    scene = Scene(make_app)
    app = scene.app

    @app.step(name="work")
    async def work(name: str) -> str:
        return await scene.body(name)

    async def inner(ctx: Context) -> list[str]:
        pair = await ctx.gather(ctx.step(work, "a"), ctx.step(work, "b"))
        return [*pair, await ctx.step(work, "c")]

    @app.workflow(name="nested")
    async def nested(ctx: Context) -> list[Any]:
        return await ctx.gather(ctx.sleep(60), inner(ctx))

    scene.releases["a"].set()
    scene.releases["b"].set()
    async with app:
        handle = await app.start("nested")
        # The inner group ended; its branch runs "c" while the other branch waits.
        await eventually(scene.called("a", "b", "c"))
        assert scene.in_memory(handle.run_id) and scene.lifecycle.seen == []
        scene.releases["c"].set()
        await parked(app, handle.run_id)
        waiting = await app.get_run(handle.run_id)
        scene.clock.advance(60)
        assert await handle.result(timeout=20) == [None, ["a", "b", "c"]]
        run = await app.get_run(handle.run_id)
    assert scene.calls == ["a", "b", "c"]
    assert scene.lifecycle.seen == [("parked", 60.0), ("finished", RunStatus.COMPLETED)]
    timer = scene.timer(run.id, 1, 60)
    done = [scene.step(run.id, seq, "work", name) for seq, name in [(2, "a"), (3, "b"), (4, "c")]]
    assert (waiting.status, waiting.steps) == (RunStatus.WAITING, [timer, *done])
    assert run.steps == [scene.fired(timer), *done]


async def test_race__a_lost_timer_no_longer_counts_and_the_run_parks_on_the_waits_left(
    make_app: Callable[..., App],
) -> None:
    scene = Scene(make_app)
    app = scene.app

    quick = scene.held_step("quick")
    after = scene.held_step("after")

    async def raced(ctx: Context) -> list[Any]:
        won = await ctx.race(ctx.sleep(100), ctx.step(quick))
        return [*won, await ctx.step(after)]

    @app.workflow(name="raced")
    async def workflow(ctx: Context) -> list[Any]:
        return await ctx.gather(raced(ctx), ctx.sleep(200))

    scene.releases["quick"].set()
    async with app:
        handle = await app.start("raced")
        # The race's timer lost: while "after" runs, only the other branch's timer waits.
        await eventually(scene.called("quick", "after"))
        assert scene.in_memory(handle.run_id)
        scene.releases["after"].set()
        await parked(app, handle.run_id)
        waiting = await app.get_run(handle.run_id)
        scene.clock.advance(200)
        assert await handle.result(timeout=20) == [[1, "quick", "after"], None]
        run = await app.get_run(handle.run_id)
    assert scene.calls == ["quick", "after"]
    assert scene.lifecycle.seen == [("parked", 200.0), ("finished", RunStatus.COMPLETED)]
    # Positions: "quick" when called, the race, then the timers as their branches start.
    lost = StepRecord(
        run_id=run.id,
        seq=4,
        kind=StepKind.SLEEP,
        name="sleep",
        status=StepStatus.FAILED,
        error={
            "type": "RaceLostError",
            "message": "cancelled: branch 1 won the race at position 2",
            "traceback": "",
            "data": {"code": "race_lost", "race": 2},
        },
        started_at=scene.t0,
        completed_at=scene.t0,
    )
    race = replace(scene.step(run.id, 2, "race", {"winner": 1, "losers": [4]}), kind=StepKind.VALUE)
    timer = scene.timer(run.id, 3, 200)
    quick_done, after_done = (
        scene.step(run.id, 1, "quick", "quick"),
        scene.step(run.id, 5, "after", "after"),
    )
    assert (waiting.status, waiting.steps) == (
        RunStatus.WAITING,
        [quick_done, race, timer, lost, after_done],
    )
    assert run.steps == [quick_done, race, scene.fired(timer), lost, after_done]


async def test_gather__every_failed_branch_is_read_so_none_is_reported_as_never_retrieved(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    scene = Scene(make_app)
    app = scene.app

    @app.step(name="bad", retry=RetryPolicy(attempts=1))
    async def bad(name: str) -> None:
        raise ValueError(f"bad {name}")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        try:
            await ctx.gather(ctx.step(bad, "1"), ctx.step(bad, "2"))
        except StepFailedError as exc:
            return exc.message
        return "no error"

    async with app:
        handle = await app.start("wf")
        assert await handle.result(timeout=20) == "bad 1"
        run = await app.get_run(handle.run_id)
    gc.collect()  # a task whose failure nobody read says so when it is collected
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert [(s.seq, s.name, s.status, (s.error or {}).get("message")) for s in run.steps] == [
        (1, "bad", StepStatus.FAILED, "bad 1"),
        (2, "bad", StepStatus.FAILED, "bad 2"),
    ]


async def test_query__a_timer_due_but_not_yet_replayed_has_fired_for_the_answer(
    make_app: Callable[..., App],
) -> None:
    scene = Scene(make_app)

    def timed(app: App) -> None:
        @app.workflow(name="timed")
        async def workflow(ctx: Context) -> str:
            state = {"phase": "timer set"}
            ctx.on_query("phase", lambda _: state["phase"])
            await ctx.sleep(60)
            state["phase"] = "timer fired"
            await ctx.wait_for("done")
            return state["phase"]

    timed(scene.app)
    async with scene.app:
        handle = await scene.app.start("timed")
        await parked(scene.app, handle.run_id)
        before = await scene.app.get_run(handle.run_id)
    # No worker replays the run when its timer is due: the query's own replay passes it,
    # and writes nothing.
    client = make_app(clock=FakeClock(start=scene.t0 + 60), client=True)
    timed(client)
    async with client:
        assert await client.query(handle.run_id, "phase") == "timer fired"
        after = await client.get_run(handle.run_id)
    assert before.steps == [scene.timer(handle.run_id, 1, 60)]
    assert after == before


class RecordingHost(DetachedHost):
    """A host that notes what the execution reports back, as a worker hears it."""

    def __init__(self, app: App) -> None:
        assert app.store is not None
        super().__init__(app.store, app.clock, app.registry)
        self.reports: list[tuple[str, Any]] = []

    def execution_done(self, execution: Execution) -> None:
        self.reports.append(("done", execution.run.id))

    def run_finished(self, run: RunRecord) -> None:
        self.reports.append(("finished", run.status))


async def test_cancel__reaching_an_execution_before_its_task_first_runs_closes_the_run(
    make_app: Callable[..., App],
) -> None:
    scene = Scene(make_app)
    app = make_app(clock=scene.clock, client=True)

    @app.step(name="work")
    async def work() -> None:
        scene.calls.append("work")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.step(work)

    async with app:
        assert app.store is not None
        handle = await app.start("wf")
        [claim] = await app.store.claim("tester", app.registry.kinds(), 1, scene.t0, 30)
        host = RecordingHost(app)
        execution = Execution(host, claim, app.registry.workflow("wf"))
        # As a worker launches it; a cancel for the run arrives in the same turn of the loop.
        execution.task = asyncio.create_task(execution.execute())
        execution.request_cancel()
        await execution.task
        run = await app.get_run(handle.run_id)
    assert scene.calls == []
    assert host.reports == [("finished", RunStatus.CANCELLED), ("done", handle.run_id)]
    assert run.error is not None
    assert (run.status, run.steps, run.error) == (
        RunStatus.CANCELLED,
        [],
        {
            "type": "RunCancelledError",
            "message": "the run was cancelled",
            "traceback": run.error["traceback"],
            "data": {"code": "run_cancelled"},
        },
    )


def _caught(exc: BaseException) -> tuple[type[BaseException], str, int]:
    """An error as code caught it: its type, message and how many frames its traceback has."""
    return type(exc), str(exc), len(traceback.extract_tb(exc.__traceback__))


@pytest.mark.parametrize("caught", [False, True], ids=["raised", "caught"])
async def test_divergence__fails_the_run_without_compensation_even_when_the_code_catches_it(
    make_app: Callable[..., App], caught: bool
) -> None:
    scene = Scene(make_app, replaying=True)
    app = scene.app
    path = {"first": "inspect"}
    seen: list[tuple[type[BaseException], str, int]] = []

    @app.step(name="inspect")
    async def inspect_step() -> str:
        return "inspected"

    @app.step(name="restart")
    async def restart_step() -> str:
        return "restarted"

    @app.step(name="undo")
    async def undo() -> None:
        scene.calls.append("undo")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        ctx.compensate(undo)
        await ctx.wait_for("go")
        chosen = inspect_step if path["first"] == "inspect" else restart_step
        try:
            await ctx.step(chosen)
        except Exception as exc:
            if not caught:
                raise
            seen.append(_caught(exc))
            for _ in range(3):
                try:
                    await ctx.step(chosen)
                except Exception as again:
                    seen.append(_caught(again))
        await ctx.wait_for("again")
        return "done"

    async with app:
        handle = await app.start("wf")
        await app.signal(handle.run_id, "go")
        await parked(app, handle.run_id)
        path["first"] = "restart"  # a deploy changed the code under a running run
        await app.signal(handle.run_id, "again")
        with pytest.raises(RunFailedError):
            await handle.result(timeout=20)
        run = await app.get_run(handle.run_id)
    message = (
        f"run {run.id} replay diverged at position 2: the history has step 'inspect' "
        "but the workflow now calls step 'restart'"
    )
    assert run.error is not None
    assert run.error == {
        "type": "NonDeterminismError",
        "message": message,
        "traceback": run.error["traceback"],
        "data": {
            "seq": 2,
            "expected": "step inspect",
            "got": "step restart",
            "code": "non_determinism",
        },
    }
    assert run.error["traceback"].endswith(f"NonDeterminismError: {message}\n")
    assert (run.status, run.output, scene.calls) == (RunStatus.FAILED, None, [])
    if caught:
        # Each further durable call raises the same error again, its traceback no longer
        # than the time before (raising it does not pile up the frames of every earlier raise).
        assert [kind for kind, _, _ in seen] == [NonDeterminismError] * 4
        assert [text for _, text, _ in seen] == [message] * 4
        assert [depth for _, _, depth in seen[1:]] == [seen[1][2]] * 3
    signal = StepRecord(
        run_id=run.id,
        seq=1,
        kind=StepKind.SIGNAL,
        name="go",
        status=StepStatus.COMPLETED,
        started_at=scene.t0,
        completed_at=scene.t0,
    )
    kept = [signal, scene.step(run.id, 2, "inspect", "inspected")]
    # What the history held before the divergence stays as it was.
    assert run.steps[:2] == kept
    # Code that caught the divergence goes no further: the signal it waits for next stays
    # untaken, as when the error ended the code.
    waiting = replace(signal, seq=3, name="again", status=StepStatus.WAITING)
    assert run.steps == [*kept, replace(waiting, completed_at=None)]
