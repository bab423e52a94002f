"""Reset: a new run reuses a finished run's results before a step and runs on from there."""

from __future__ import annotations

import pytest
from engine_waits import parked

from opsloom import App, Context, RetryPolicy, RunFailedError, RunStatus
from opsloom.errors import InputError, RunStateError
from opsloom.model import StepStatus


async def test_reset__reuses_results_before_the_step_and_reruns_from_it(app: App) -> None:
    calls: list[str] = []
    bug = {"on": True}

    @app.step(name="provision")
    async def provision() -> str:
        calls.append("provision")
        return "vm-1"

    @app.step(name="configure", retry=RetryPolicy(attempts=1))
    async def configure(vm: str) -> str:
        calls.append("configure")
        if bug["on"]:
            raise KeyError("missing setting")
        return f"{vm} configured"

    @app.workflow(name="setup")
    async def setup(ctx: Context) -> str:
        vm = await ctx.step(provision)
        return await ctx.step(configure, vm)

    async with app:
        failed = await app.start("setup")
        with pytest.raises(RunFailedError):
            await failed.result(timeout=10)
        bug["on"] = False  # the fix is deployed
        reset = await app.reset(failed.run_id, 2, started_by="ops")
        assert (reset.reset_of, reset.reset_to, reset.started_by) == (failed.run_id, 2, "ops")
        assert await app.result(reset.id, timeout=10) == "vm-1 configured"
        run = await app.get_run(reset.id)
        assert [(s.name, s.status) for s in run.steps] == [
            ("provision", StepStatus.COMPLETED),
            ("configure", StepStatus.COMPLETED),
        ]
        assert [r.id for r in await app.store.resets_of(failed.run_id)] == [reset.id]
    assert calls == ["provision", "configure", "configure"], "provision did not run again"


async def test_reset__refusals_name_the_problem(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.wait_for("go")

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        with pytest.raises(RunStateError, match="still waiting; cancel it"):
            await app.reset(handle.run_id, 1)
        await app.cancel(handle.run_id)
        with pytest.raises(RunFailedError):
            await handle.result(timeout=10)
        assert (await app.get_run(handle.run_id)).status is RunStatus.CANCELLED
        with pytest.raises(InputError, match="between 1 and 2, not 5"):
            await app.reset(handle.run_id, 5)
        with pytest.raises(RunStateError, match=r"position 1 .* never finished"):
            await app.reset(handle.run_id, 2)
        again = await app.reset(handle.run_id, 1)
        assert again.reset_to == 1 and again.status is not RunStatus.CANCELLED
