"""``ctx.patched``: old runs keep the old path on replay, new runs take the new one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from engine_waits import parked

from opsloom import App, Context, RunFailedError, WorkerOptions


def register_v1(app: App, calls: list[str]) -> None:
    """The first version of ``remediate``: check, wait for "go", restart (also used by the
    replay tests)."""

    @app.step(name="check")
    async def check() -> int:
        calls.append("check")
        return 1

    @app.step(name="restart")
    async def restart() -> None:
        calls.append("restart")

    @app.workflow(name="remediate")
    async def remediate(ctx: Context) -> str:
        await ctx.step(check)
        await ctx.wait_for("go")
        await ctx.step(restart)
        return "v1"


def register_patched(app: App, calls: list[str], *, deprecated: bool = False) -> None:
    @app.step(name="check")
    async def check() -> None:
        calls.append("check")

    @app.step(name="page")
    async def page() -> None:
        calls.append("page")

    @app.step(name="restart")
    async def restart() -> None:
        calls.append("restart")

    @app.workflow(name="remediate")
    async def remediate(ctx: Context) -> str:
        await ctx.step(check)
        if deprecated:
            ctx.deprecate_patch("page-first")
            await ctx.step(page)
        elif ctx.patched("page-first"):
            await ctx.step(page)
        await ctx.wait_for("go")
        if ctx.patched("page-first"):  # decided once per execution
            pass
        await ctx.step(restart)
        return "patched"


def build(db_url: str, worker: bool = True) -> App:
    return App(db_url, worker=WorkerOptions(poll_seconds=0.05) if worker else None)


async def test_patched__old_run_keeps_old_path_new_run_takes_new(db_url: str) -> None:
    calls: list[str] = []
    old = build(db_url)
    register_v1(old, calls)
    async with old:
        before = await old.start("remediate")
        await parked(old, before.run_id)
    assert calls == ["check"]

    calls.clear()
    new = build(db_url)
    register_patched(new, calls)
    async with new:
        after = await new.start("remediate")
        await parked(new, after.run_id)
        await new.signal(before.run_id, "go")
        assert await new.result(before.run_id, timeout=10) == "patched"
        assert calls == ["check", "page", "restart"], "the old run did not page"
        run = await new.get_run(before.run_id)
        assert [s.name for s in run.steps] == ["check", "go", "restart"]

        calls.clear()
        await new.signal(after.run_id, "go")  # replays the new run: its marker is taken
        assert await after.result(timeout=10) == "patched"
        run = await new.get_run(after.run_id)
        assert [s.name for s in run.steps] == ["check", "patch:page-first", "page", "go", "restart"]
    assert calls == ["restart"]


async def test_patched__old_run_past_the_patch_takes_the_new_path(
    make_app: Callable[..., App],
) -> None:
    calls: list[str] = []
    app = make_app()

    @app.step(name="page")
    async def page() -> None:
        calls.append("page")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> bool:
        await ctx.wait_for("go")
        took = ctx.patched("later")
        if took:
            await ctx.step(page)
        return took

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.signal(handle.run_id, "go")
        assert await handle.result(timeout=10) is True
    assert calls == ["page"]


async def test_deprecate_patch__runs_with_and_without_the_marker_replay(db_url: str) -> None:
    calls: list[str] = []
    first = build(db_url)
    register_patched(first, calls)
    async with first:
        marked = await first.start("remediate")
        await parked(first, marked.run_id)

    second = build(db_url)
    register_patched(second, calls, deprecated=True)
    async with second:
        fresh = await second.start("remediate")
        await parked(second, fresh.run_id)
        for handle in (marked, fresh):
            await second.signal(handle.run_id, "go")
            assert await second.result(handle.run_id, timeout=10) == "patched"
        steps = [s.name for s in (await second.get_run(fresh.run_id)).steps]
    assert steps == ["check", "page", "go", "restart"], "no marker for a deprecated patch"


async def test_without_patch__changed_code_fails_the_old_run(db_url: str) -> None:
    calls: list[str] = []
    old = build(db_url)
    register_v1(old, calls)
    async with old:
        before = await old.start("remediate")
        await parked(old, before.run_id)

    new = build(db_url)

    @new.step(name="check")
    async def check() -> None: ...

    @new.step(name="page")
    async def page() -> None: ...

    @new.workflow(name="remediate")
    async def remediate(ctx: Context) -> None:
        await ctx.step(check)
        await ctx.step(page)  # unguarded: the old run's history has the wait here
        await ctx.wait_for("go")

    async with new:
        await new.signal(before.run_id, "go")
        with pytest.raises(RunFailedError) as info:
            await new.result(before.run_id, timeout=10)
    assert info.value.error is not None and info.value.error["type"] == "NonDeterminismError"
