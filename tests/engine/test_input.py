"""Bad input gets a clear error and leaves stored state untouched."""

from __future__ import annotations

import pytest

from opsloom import App, Context, InputError, RunNotFoundError, WorkflowNotFoundError
from opsloom.errors import ConfigurationError, RunStateError


def register(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context, x: object) -> object:
        return x


async def test_start__unknown_workflow_names_the_known_ones(app: App) -> None:
    register(app)
    async with app:
        with pytest.raises(
            WorkflowNotFoundError, match=r"unknown workflow 'nope' \(registered: wf\)"
        ):
            await app.start("nope")
        assert await app.list_runs() == []


async def test_start__unknown_version(app: App) -> None:
    register(app)
    async with app:
        with pytest.raises(WorkflowNotFoundError, match="has no version '9'"):
            await app.start("wf", 1, version="9")


async def test_start__input_that_is_not_json_is_refused(app: App) -> None:
    register(app)
    async with app:
        with pytest.raises(InputError, match="input of workflow 'wf' is not JSON-serialisable"):
            await app.start("wf", {"when": object()})
        assert await app.list_runs() == []
        assert await (await app.start("wf", {"ok": [1, 2]})).result(timeout=10) == {"ok": [1, 2]}


async def test_start__concurrency_key_failure_is_an_input_error(app: App) -> None:
    @app.workflow(name="keyed", concurrency=1, concurrency_key=lambda data: data["service"])
    async def keyed(ctx: Context, data: dict[str, str]) -> None:
        return None

    async with app:
        with pytest.raises(InputError, match="concurrency key"):
            await app.start("keyed", {"no_service": 1})


async def test_signal__bad_target_or_payload(app: App) -> None:
    register(app)
    async with app:
        with pytest.raises(RunNotFoundError):
            await app.signal("missing", "go", 1)
        handle = await app.start("wf", 1)
        await handle.result(timeout=10)
        with pytest.raises(RunStateError):
            await app.signal(handle.run_id, "go", 1)
        with pytest.raises(InputError, match="data of signal 'go'"):
            await app.signal(handle.run_id, "go", {1, 2})


async def test_registration__mistakes_are_caught_early(app: App) -> None:
    with pytest.raises(ConfigurationError, match="must be an async function"):

        @app.workflow(name="sync")
        def sync(ctx: Context) -> None:  # type: ignore[type-var]
            return None

    with pytest.raises(ConfigurationError, match="needs a concurrency limit"):

        @app.workflow(name="k", concurrency_key=lambda d: "x")
        async def keyed(ctx: Context) -> None:
            return None

    with pytest.raises(ConfigurationError, match="must take a Context"):

        @app.workflow(name="noctx")
        async def noctx() -> None:
            return None


async def test_get_run__unknown(app: App) -> None:
    async with app:
        with pytest.raises(RunNotFoundError):
            await app.get_run("nope")
        with pytest.raises(RunNotFoundError):
            await app.result("nope", timeout=1)
