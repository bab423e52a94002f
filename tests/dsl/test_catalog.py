"""The function catalog, and its built-ins run inside real App workflows on SQLite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import Fakes, fake_http_client

from opsloom import App, Context, FakeClock, RunStatus, WorkerOptions
from opsloom.app import default_catalog as app_catalog
from opsloom.dsl.builtin import duration_seconds
from opsloom.dsl.catalog import Catalog, FunctionCall, default_catalog
from opsloom.errors import ConfigurationError
from opsloom.expr.problem import TaskError, type_matches


async def echo(call: FunctionCall) -> Any:
    return {"got": call.arguments, "task": call.task}


# --- registration and lookup ---------------------------------------------------------------


def test_register__and_look_up() -> None:
    catalog = Catalog()
    catalog.register("echo", "1.0.0", echo, description="returns its arguments")
    assert catalog.has("echo", "1.0.0") and not catalog.has("echo", "2.0.0")
    found = catalog.function("echo", "1.0.0")
    assert found.fn is echo and found.reference == "echo:1.0.0@default"
    assert [f.name for f in catalog.functions()] == ["echo"]


def test_register__twice_is_a_configuration_error() -> None:
    catalog = Catalog()
    catalog.register("echo", "1.0.0", echo)
    catalog.register("echo", "1.1.0", echo)
    with pytest.raises(ConfigurationError):
        catalog.register("echo", "1.0.0", echo)


@pytest.mark.parametrize(("name", "version"), [("", "1"), ("a:b", "1"), ("a@b", "1"), ("a", "")])
def test_register__invalid_names_are_refused(name: str, version: str) -> None:
    with pytest.raises(ConfigurationError):
        Catalog().register(name, version, echo)


def test_register__invalid_schema_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        Catalog().register("echo", "1.0.0", echo, input_schema={"type": "nonsense"})


def test_function__unknown_is_a_task_error_naming_the_known_ones() -> None:
    catalog = default_catalog()
    with pytest.raises(TaskError) as caught:
        catalog.function("slack-post-message", "1.0.0")
    assert type_matches("configuration", caught.value.type) and caught.value.status == 400
    assert caught.value.detail is not None
    assert "http-request:1.0.0" in caught.value.detail and "sleep:1.0.0" in caught.value.detail


def test_default_catalog__builtins_in_a_new_catalog_each_time() -> None:
    first, second = default_catalog(), default_catalog()
    assert first is not second
    assert [(f.name, f.version) for f in first.functions()] == [
        ("http-request", "1.0.0"),
        ("log", "1.0.0"),
        ("sleep", "1.0.0"),
    ]
    first.register("extra", "1.0.0", echo)
    assert not second.has("extra", "1.0.0")


def test_app_catalog__adds_approvals_to_the_builtins() -> None:
    # Human tasks live above the DSL: the application wires them into the default catalog.
    first, second = app_catalog(), app_catalog()
    assert first is not second
    assert [(f.name, f.version) for f in first.functions()] == [
        ("approval", "1.0.0"),
        ("http-request", "1.0.0"),
        ("log", "1.0.0"),
        ("sleep", "1.0.0"),
    ]


def test_input_schema__mismatch_is_a_validation_error() -> None:
    catalog = Catalog()
    schema = {
        "type": "object",
        "required": ["channel"],
        "properties": {"channel": {"type": "string"}},
    }
    catalog.register("notify", "1.0.0", echo, input_schema=schema)
    fn = catalog.function("notify", "1.0.0")
    fn.check({"channel": "#ops"})
    with pytest.raises(TaskError) as caught:
        fn.check({"channel": 7})
    assert type_matches("validation", caught.value.type) and caught.value.status == 400
    assert caught.value.detail is not None and "/channel" in caught.value.detail


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT5M", 300.0),
        ("PT1H30M", 5400.0),
        ("P1DT0.5S", 86400.5),
        ("P2W", 1209600.0),
        ({"minutes": 1, "seconds": 5}, 65.0),
        ({"days": 1, "milliseconds": 250}, 86400.25),
    ],
)
def test_duration_seconds__iso_and_objects(value: Any, seconds: float) -> None:
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["P1M", "P1Y", "PT", "P", "5 minutes", {}, {"weeks": 1}, 10])
def test_duration_seconds__refuses_the_rest(value: Any) -> None:
    with pytest.raises(TaskError) as caught:
        duration_seconds(value)
    assert type_matches("validation", caught.value.type)


# --- built-ins inside real runs ------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
async def app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    yield App(
        f"sqlite:///{tmp_path / 'catalog.db'}",
        worker=WorkerOptions(concurrency=8, poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5),
        clock=clock,
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def parked(app: App, run_id: str) -> None:
    """The run waits on a timer and no worker holds it in memory."""

    async def check() -> bool:
        run = await app.get_run(run_id)
        return (
            run.status is RunStatus.WAITING
            and app.worker is not None
            and run_id not in app.worker.executions
        )

    await eventually(check)


def catalog_call(ctx: Context, task: str, arguments: dict[str, Any], input: Any) -> FunctionCall:
    return FunctionCall(arguments=arguments, ctx=ctx, task=task, secrets={}, input=input)


async def test_sleep__parks_the_run_durably_until_the_timer(app: App, clock: FakeClock) -> None:
    catalog = default_catalog()
    sleep = catalog.function("sleep", "1.0.0")

    @app.workflow(name="nap")
    async def nap(ctx: Context, data: dict[str, Any]) -> Any:
        return await sleep(catalog_call(ctx, "/do/0/nap", {"duration": "PT10M"}, data))

    async with app:
        handle = await app.start("nap", {"service": "api"})
        await parked(app, handle.run_id)
        run = await app.get_run(handle.run_id)
        assert run.steps[-1].wake_at == clock.now() + 600
        clock.advance(599)
        await parked(app, handle.run_id)
        clock.advance(1)
        assert await handle.result(timeout=10) == {"service": "api"}


async def test_sleep__invalid_arguments_fail_before_waiting(app: App) -> None:
    sleep = default_catalog().function("sleep", "1.0.0")

    @app.workflow(name="bad-nap")
    async def bad_nap(ctx: Context) -> Any:
        try:
            await sleep(catalog_call(ctx, "/do/0/nap", {"seconds": -1}, None))
        except TaskError as err:
            return err.to_dict()
        return None

    async with app:
        out = await (await app.start("bad-nap")).result(timeout=10)
    assert type_matches("validation", out["type"])


async def test_http_request__runs_once_and_replays_its_result(
    app: App, clock: FakeClock, fakes: Fakes
) -> None:
    catalog = default_catalog(client_factory=lambda: fake_http_client(fakes))
    http = catalog.function("http-request", "1.0.0")
    sleep = catalog.function("sleep", "1.0.0")

    @app.workflow(name="fetch")
    async def fetch(ctx: Context, data: dict[str, Any]) -> Any:
        pet = await http(
            catalog_call(
                ctx,
                "/do/0/getPet",
                {"method": "get", "endpoint": "https://petstore.swagger.io/v2/pet/{petId}"},
                data,
            )
        )
        await sleep(catalog_call(ctx, "/do/1/wait", {"seconds": 60}, pet))
        return pet["name"]

    async with app:
        handle = await app.start("fetch", {"petId": 1})
        await parked(app, handle.run_id)
        clock.advance(60)
        assert await handle.result(timeout=10) == "Rex"
        run = await app.get_run(handle.run_id)
    # The resumed run replayed the recorded answer instead of calling the API again.
    assert [r["path"] for r in fakes.petstore.state.requests] == ["/v2/pet/1"]
    assert run.steps[0].name == "http_request"


async def test_http_request__task_error_is_recorded_and_raised_in_the_workflow(
    app: App, clock: FakeClock, fakes: Fakes
) -> None:
    catalog = default_catalog(client_factory=lambda: fake_http_client(fakes))
    http = catalog.function("http-request", "1.0.0")

    @app.workflow(name="missing")
    async def missing(ctx: Context) -> Any:
        try:
            await http(
                catalog_call(
                    ctx,
                    "/do/0/getPet",
                    {"method": "get", "endpoint": "https://petstore.swagger.io/v2/pet/999"},
                    None,
                )
            )
        except TaskError as err:
            error = err.to_dict()
        await ctx.sleep(5)
        return error

    async with app:
        handle = await app.start("missing")
        await parked(app, handle.run_id)
        clock.advance(5)
        error = await handle.result(timeout=10)
    assert type_matches("communication", error["type"]) and error["status"] == 404
    assert error["instance"] == "/do/0/getPet" and error["title"] == "Not Found"
    assert len(fakes.petstore.state.requests) == 1


async def test_http_request__arguments_are_checked_against_its_schema(app: App) -> None:
    http = default_catalog().function("http-request", "1.0.0")

    @app.workflow(name="no-endpoint")
    async def no_endpoint(ctx: Context) -> Any:
        try:
            await http(catalog_call(ctx, "/do/0/x", {"method": "get"}, None))
        except TaskError as err:
            return err.to_dict()
        return None

    async with app:
        out = await (await app.start("no-endpoint")).result(timeout=10)
    assert type_matches("validation", out["type"]) and "endpoint" in out["detail"]


async def test_log__writes_once_and_returns_its_input(
    app: App, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = default_catalog().function("log", "1.0.0")

    @app.workflow(name="say")
    async def say(ctx: Context, data: dict[str, Any]) -> Any:
        out = await log(
            catalog_call(ctx, "/do/0/say", {"message": "restarting api", "level": "warning"}, data)
        )
        await ctx.sleep(1)
        return out

    caplog.set_level(logging.DEBUG, logger="opsloom.dsl")
    async with app:
        handle = await app.start("say", {"service": "api"})
        await parked(app, handle.run_id)
        clock.advance(1)
        assert await handle.result(timeout=10) == {"service": "api"}
    records = [r for r in caplog.records if r.name == "opsloom.dsl"]
    assert [(r.levelno, r.getMessage()) for r in records] == [(logging.WARNING, "restarting api")]
    assert records[0].__dict__["task"] == "/do/0/say"
    assert records[0].__dict__["run_id"] == handle.run_id


def test_builtin_schemas__refuse_bad_arguments() -> None:
    catalog = default_catalog()
    catalog.function("log", "1.0.0").check({"message": "x", "level": "information"})
    for name, arguments in [
        ("log", {"message": "x", "level": "loud"}),
        ("log", {"level": "info"}),
        ("sleep", {"seconds": 1, "duration": "PT1S"}),
        ("sleep", {}),
        ("http-request", {"method": "get", "endpoint": "https://x.test", "output": "body"}),
    ]:
        with pytest.raises(TaskError) as caught:
            catalog.function(name, "1.0.0").check(arguments)
        assert type_matches("validation", caught.value.type), (name, arguments)
