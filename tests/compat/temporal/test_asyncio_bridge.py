"""``asyncio.sleep`` is a durable timer in Temporal-style workflow code and asyncio's own
everywhere else in the process: native workflows, tasks workflow code starts, other patches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from opsloom import App, Context
from opsloom.compat.temporal import workflow
from opsloom.compat.temporal.client import Client
from opsloom.compat.temporal.worker import Worker
from opsloom.model import StepKind

#: asyncio's own functions (``asyncio.sleep`` is the attribute a patch would replace).
SLEEP = asyncio.tasks.sleep
GATHER = asyncio.tasks.gather

#: Tasks started by workflow code, which outlive its run.
started: list[asyncio.Task[Any]] = []


async def ticks(count: int) -> list[bool]:
    """Sleep ``count`` times, noting each time whether ``asyncio.sleep`` was asyncio's own."""
    seen = []
    for _ in range(count):
        seen.append(asyncio.sleep is SLEEP)
        await asyncio.sleep(0.001)
    return seen


@workflow.defn
class Napper:
    @workflow.run
    async def run(self, start_task: bool) -> list[Any]:
        if start_task:
            started.append(asyncio.create_task(ticks(3)))
        await asyncio.sleep(0.01)
        pair = await asyncio.gather(workflow.sleep(0.01), asyncio.sleep(0.01, "slept"))
        return [asyncio.sleep is SLEEP, pair[1]]


#: What a durable timer of workflow code records (the time it ends; a wait during which
#: signals are handled), three of them in ``Napper``.
TIMERS = [StepKind.VALUE, StepKind.SIGNAL] * 3


def kinds(steps: list[Any]) -> list[StepKind]:
    return [step.kind for step in steps]


@contextlib.asynccontextmanager
async def serving(app: App) -> AsyncIterator[Client]:
    """``app`` open, with a Temporal-style worker for ``Napper``."""
    async with app:
        client = Client(app)
        async with Worker(client, task_queue="q", workflows=[Napper]):
            yield client


async def nap(client: Client, app: App, start_task: bool, id: str) -> None:
    """Run ``Napper``: its sleeps were durable timers, gather branches included."""
    result = await client.execute_workflow(Napper.run, start_task, id=id, task_queue="q")
    assert result == [False, "slept"]
    assert kinds((await app.get_run(id)).steps) == TIMERS


async def test_asyncio_sleep__asyncios_own_outside_workflow_code(
    make_app: Callable[..., App],
) -> None:
    app = make_app(client=True)

    @app.workflow
    async def native(ctx: Context, _: Any) -> list[Any]:
        own = [asyncio.sleep is SLEEP, asyncio.gather is GATHER]
        await asyncio.sleep(0.01)
        await asyncio.gather(asyncio.sleep(0.001), asyncio.sleep(0.001))
        return own

    async with serving(app) as client:
        await nap(client, app, False, "nap")
        # The same process, after the compat workflow ran: asyncio's own functions.
        assert (asyncio.sleep, asyncio.gather) == (SLEEP, GATHER)
        handle = await app.start("native", None)
        assert await handle.result(timeout=60) == [True, True]
        assert kinds((await app.get_run(handle.run_id)).steps) == []


async def test_asyncio_sleep__a_task_started_by_workflow_code_sleeps_for_real(
    make_app: Callable[..., App],
) -> None:
    app = make_app(client=True)
    async with serving(app) as client:
        await nap(client, app, True, "starts")
        # Generous: each task needs 3 ms of sleeps. The workflow code starts one each time it
        # runs, replays included; the tasks hold the run's context, so none is kept afterwards.
        tasks = started.copy()
        started.clear()
        seen = [await asyncio.wait_for(task, 60) for task in tasks]
        # Their sleeps were not timers of the run that started them, nor were they bridged.
        assert kinds((await app.get_run("starts")).steps) == TIMERS
        assert seen and all(each == [True, True, True] for each in seen)


async def test_asyncio_sleep__another_librarys_patch_is_kept_and_used(
    make_app: Callable[..., App],
) -> None:
    calls: list[float] = []

    async def counting_sleep(delay: float, result: Any = None) -> Any:
        calls.append(delay)
        return await SLEEP(delay, result)

    asyncio.sleep = counting_sleep
    try:
        async with serving(make_app(client=True)) as client:
            await nap(client, client.app, False, "kept")
            assert asyncio.sleep is counting_sleep
            calls.clear()
            await asyncio.sleep(0.001)
            assert calls == [0.001]
    finally:
        asyncio.sleep = SLEEP
