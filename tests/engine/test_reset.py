"""Reset: a new run reuses a finished run's results before a step and runs on from there."""

from __future__ import annotations

from typing import Any

import pytest
from engine_waits import parked

from opsloom import App, Context, RetryPolicy, RunFailedError, RunStatus
from opsloom.errors import InputError, RunStateError
from opsloom.model import StepStatus
from opsloom.model.trigger import INBOX


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


async def test_reset__past_an_open_subscription_the_new_run_listens_anew(app: App) -> None:
    """The kept history subscribed and took one event; the new run gets its own subscription
    at the reset: the events that came while no run listened, and those the old run took,
    are not delivered (again)."""
    calls: list[str] = []
    bug = {"on": True}

    @app.step(name="apply", retry=RetryPolicy(attempts=1))
    async def apply(event_id: str) -> str:
        calls.append(event_id)
        if bug["on"]:
            raise RuntimeError("bad rollout")
        return event_id

    @app.workflow(name="rollout")
    async def rollout(ctx: Context) -> list[str]:
        sub = await ctx.subscribe([{"type": "deploy.done"}])
        first = await ctx.wait_for(f"events:{sub}")
        applied = await ctx.step(apply, first["event"]["id"])
        second = await ctx.wait_for(f"events:{sub}")
        await ctx.unsubscribe(sub)
        return [applied, second["event"]["id"]]

    def deploy(event_id: str) -> dict[str, str]:
        return {"specversion": "1.0", "id": event_id, "source": "ci", "type": "deploy.done"}

    async with app:
        failed = await app.start("rollout")
        await parked(app, failed.run_id)
        await app.emit(deploy("e1"))
        with pytest.raises(RunFailedError):
            await failed.result(timeout=10)
        await app.emit(deploy("e2"))  # no run listens: it reaches nobody
        bug["on"] = False
        resets = [await app.reset(failed.run_id, 3), await app.reset(failed.run_id, 3)]
        for reset in resets:
            await parked(app, reset.id)
            run = await app.get_run(reset.id)
            assert [s.name for s in run.steps][:2] == ["subscribe", f"events:{reset.id}:1"]
        await app.emit(deploy("e3"))
        for reset in resets:
            assert await app.result(reset.id, timeout=10) == ["e1", "e3"]
        old = await app.get_run(failed.run_id)
        assert [s.name for s in old.steps][:2] == ["subscribe", f"events:{failed.run_id}:1"]
    assert calls == ["e1", "e1", "e1"], "the first event was taken from the kept history"


async def test_reset__of_a_triggered_run_takes_its_key_back(app: App) -> None:
    bug = {"on": True}

    @app.step(name="handle", retry=RetryPolicy(attempts=1))
    async def handle(subject: str) -> str:
        if bug["on"]:
            raise RuntimeError("bad handler")
        return subject

    @app.workflow(name="incident")
    async def incident(ctx: Context, alert: dict[str, Any]) -> list[str]:
        handled = await ctx.step(handle, alert["subject"])
        repeat = await ctx.wait_for(INBOX)
        return [handled, repeat["event"]["id"]]

    app.trigger("incident", on={"type": "alert"})

    def alert(event_id: str) -> dict[str, str]:
        return {"specversion": "1.0", "id": event_id, "source": "am", "type": "alert"} | {
            "subject": "fp-1"
        }

    async with app:
        await app.emit(alert("a1"))
        [failed] = await app.list_runs()
        with pytest.raises(RunFailedError):
            await app.result(failed.id, timeout=10)
        bug["on"] = False
        reset = await app.reset(failed.id, 1)
        await parked(app, reset.id)
        await app.emit(alert("a2"))
        assert await app.result(reset.id, timeout=10) == ["fp-1", "a2"]
        assert len(await app.list_runs()) == 2, "a2 went to the reset run, starting none"
