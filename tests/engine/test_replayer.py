"""Replaying stored histories on changed code: what ``opsloom replay`` reports."""

from __future__ import annotations

import pytest
from engine_waits import parked
from test_patch import register_v1

from opsloom import App, Context, WorkerOptions
from opsloom.errors import RunNotFoundError
from opsloom.services.replay import replay_runs


async def recorded_runs(db_url: str) -> tuple[str, str]:
    """A completed run and one parked at its wait, recorded by the first version of the code."""
    calls: list[str] = []
    old = App(db_url, worker=WorkerOptions(poll_seconds=0.05))
    register_v1(old, calls)
    async with old:
        done = await old.start("remediate")
        await parked(old, done.run_id)
        await old.signal(done.run_id, "go")
        await done.result(timeout=10)
        waiting = await old.start("remediate")
        await parked(old, waiting.run_id)
    return done.run_id, waiting.run_id


async def test_replay__unchanged_code_replays_every_run_without_running_steps(
    db_url: str,
) -> None:
    done, waiting = await recorded_runs(db_url)
    calls: list[str] = []
    app = App(db_url, worker=None)
    register_v1(app, calls)
    async with app:
        reports = await replay_runs(app)
    assert {r.run.id: r.outcome.status for r in reports} == {done: "ok", waiting: "ok"}
    assert calls == [], "a replay never runs a step"


async def test_replay__changed_code_is_reported_with_position_and_call(db_url: str) -> None:
    done, waiting = await recorded_runs(db_url)
    calls: list[str] = []
    app = App(db_url, worker=None)

    @app.step(name="check")
    async def check() -> int:
        calls.append("check")
        return 1

    @app.step(name="page")
    async def page() -> None:
        calls.append("page")

    @app.workflow(name="remediate")
    async def remediate(ctx: Context) -> str:
        await ctx.step(check)
        await ctx.step(page)  # a new step where the history holds the wait
        await ctx.wait_for("go")
        return "done"

    async with app:
        reports = await replay_runs(app)
        (only,) = await replay_runs(app, [waiting])
    assert {r.run.id for r in reports if r.failed} == {done, waiting}
    outcome = only.outcome
    assert (outcome.status, outcome.seq) == ("nondeterminism", 2)
    assert (outcome.expected, outcome.got) == ("signal go", "step page")
    assert only.to_dict()["result"] == "nondeterminism"
    assert calls == []


async def test_replay__patched_change_passes(db_url: str) -> None:
    await recorded_runs(db_url)
    app = App(db_url, worker=None)

    @app.step(name="check")
    async def check() -> int:
        return 1

    @app.step(name="page")
    async def page() -> None: ...

    @app.step(name="restart")
    async def restart() -> None: ...

    @app.workflow(name="remediate")
    async def remediate(ctx: Context) -> str:
        await ctx.step(check)
        if ctx.patched("page"):
            await ctx.step(page)
        await ctx.wait_for("go")
        await ctx.step(restart)
        return "done"

    async with app:
        assert [r.outcome.status for r in await replay_runs(app)] == ["ok", "ok"]


async def test_replay__open_run_of_a_version_no_longer_registered(db_url: str) -> None:
    done, waiting = await recorded_runs(db_url)
    app = App(db_url, worker=None)

    @app.workflow(name="remediate", version="2")
    async def remediate(ctx: Context) -> str:
        return "v2"

    async with app:
        reports = {r.run.id: r for r in await replay_runs(app)}
        with pytest.raises(RunNotFoundError):
            await replay_runs(app, ["missing"])
    assert reports[waiting].outcome.status == "unserved" and reports[waiting].failed
    assert reports[done].outcome.status == "skipped" and not reports[done].failed


async def test_replay__code_that_now_raises_is_reported(db_url: str) -> None:
    done, _ = await recorded_runs(db_url)
    app = App(db_url, worker=None)

    @app.step(name="check")
    async def check() -> int:
        return 1

    @app.workflow(name="remediate")
    async def remediate(ctx: Context) -> str:
        value = await ctx.step(check)
        return str(value["missing"])  # the recorded result is an int: TypeError

    async with app:
        (report,) = await replay_runs(app, [done])
    assert report.outcome.status == "error"
    assert report.outcome.message.startswith("TypeError")
