"""Several processes on one PostgreSQL: idle workers are woken, not left to their poll."""

from __future__ import annotations

import asyncio

from opsloom import App, Context
from opsloom.errors import RunNotFoundError
from opsloom.worker import WorkerOptions


def build(url: str, worker: WorkerOptions | None) -> App:
    app = App(url, worker=worker if worker is not None else False)

    @app.step()
    async def double(x: int) -> int:
        return 2 * x

    @app.workflow(name="double")
    async def flow(ctx: Context, x: int) -> int:
        return await ctx.step(double, x)

    return app


async def test_idle_worker__is_woken_by_a_run_started_elsewhere(postgres_schema_url: str) -> None:
    # The worker polls only every 60 s: finishing within the timeout below takes the
    # NOTIFY sent with the new run (and the one sent when it finishes, for the client).
    worker = build(postgres_schema_url, WorkerOptions(poll_seconds=60, reap_seconds=60))
    client = build(postgres_schema_url, None)
    async with worker, client:
        await worker.store.wait_listening()  # type: ignore[attr-defined]
        for x in range(5):
            run = await client.start("double", x)
            assert await run.result(timeout=10) == 2 * x


async def test_idle_worker__wakes_for_a_signal_sent_elsewhere(postgres_schema_url: str) -> None:
    worker = App(postgres_schema_url, worker=WorkerOptions(poll_seconds=60, reap_seconds=60))
    client = App(postgres_schema_url, worker=False)
    for app in (worker, client):

        @app.workflow(name="gate")
        async def gate(ctx: Context) -> str:
            return str(await ctx.wait_for("open"))

    async with worker, client:
        await worker.store.wait_listening()  # type: ignore[attr-defined]
        run = await client.start("gate")
        await asyncio.wait_for(_until_waiting(client, run.run_id), 10)
        await client.signal(run.run_id, "open", "yes")
        assert await run.result(timeout=10) == "yes"


async def _until_waiting(app: App, run_id: str) -> None:
    for _ in range(1000):
        if (await app.get_run(run_id)).status.value == "waiting":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never parked")


async def test_results_awaited_together__ended_missing_and_later_ones(
    postgres_schema_url: str,
) -> None:
    # One caller awaits many runs at once: one that ended before it asked, one that does not
    # exist, and runs another process finishes afterwards; each gets its own outcome.
    worker = build(postgres_schema_url, WorkerOptions(poll_seconds=60, reap_seconds=60))
    client = build(postgres_schema_url, None)
    async with client:
        first = await client.start("double", 100)
        async with worker:
            await worker.store.wait_listening()  # type: ignore[attr-defined]
            assert await worker.result(first.run_id, timeout=10) == 200
        later = [await client.start("double", x) for x in range(20)]
        async with worker:
            await worker.store.wait_listening()  # type: ignore[attr-defined]
            outcomes = await asyncio.gather(
                client.result(first.run_id, timeout=10),
                client.result("no-such-run", timeout=10),
                *(run.result(timeout=10) for run in later),
                return_exceptions=True,
            )
    assert outcomes[0] == 200
    assert isinstance(outcomes[1], RunNotFoundError)
    assert outcomes[2:] == [2 * x for x in range(20)]
