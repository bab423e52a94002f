"""Step definitions of the Gherkin features: the CTK's steps and this project's own.

Each scenario gets an App on a fresh SQLite file with a fake clock, a DSL runtime whose HTTP
client reaches local fakes of Petstore and httpbin, and runs the document through the engine
for real (every task a durable step).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when
from ruamel.yaml import YAML

from opsloom import App, FakeClock, WorkerOptions
from opsloom.dsl.runtime import DslOptions, DslRuntime
from opsloom.errors import RunFailedError
from opsloom.expr.problem import TaskError, type_matches
from opsloom.model import RunStatus, StepKind, StepStatus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dsl"))
from fakes import Fakes, fake_http_client


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@dataclass
class Scenario:
    """What one scenario builds up and observes.

    pytest-bdd steps are plain functions: each drives the scenario's own event loop until its
    work is done (the worker runs meanwhile).
    """

    app: App
    runtime: DslRuntime
    clock: FakeClock
    fakes: Fakes
    documents: list[str] = field(default_factory=list)
    input: Any = None
    run_id: str | None = None
    status: RunStatus | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    calls: dict[str, int] = field(default_factory=dict)
    functions: list[tuple[str, str, Any]] = field(default_factory=list)
    db_url: str = ""

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


def build(db_url: str, clock: FakeClock, fakes: Fakes) -> tuple[App, DslRuntime]:
    app = App(
        db_url,
        worker=WorkerOptions(concurrency=64, poll_seconds=0.02, reap_seconds=None),
        clock=clock,
        sqlite_synchronous="OFF",
    )
    runtime = DslRuntime(
        app, DslOptions(http_client=lambda: fake_http_client(fakes), expression_timeout=2.0)
    )
    return app, runtime


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    clock = FakeClock()
    fakes = Fakes()
    db_url = f"sqlite:///{tmp_path / 'opsloom.db'}"
    app, runtime = build(db_url, clock, fakes)
    state = Scenario(app=app, runtime=runtime, clock=clock, fakes=fakes, db_url=db_url)
    state.run(app.open())
    try:
        yield state
    finally:
        state.run(state.runtime.close())
        state.run(state.app.close())
        state.loop.close()


# --- catalog functions of the scenarios ------------------------------------------------------


def register_function(scenario: Scenario, name: str, version: str, fn: Any) -> None:
    assert scenario.runtime.catalog is not None
    scenario.runtime.catalog.register(name, version, fn)
    scenario.functions.append((name, version, fn))


@given(
    parsers.parse(
        "a catalog function {name}:{version} that fails {times:d} times with status {status:d}"
    )
)
def given_flaky(scenario: Scenario, name: str, version: str, times: int, status: int) -> None:
    def attempt() -> dict[str, Any]:
        count = scenario.calls[name] = scenario.calls.get(name, 0) + 1
        if count <= times:
            error = TaskError.standard("communication", f"attempt {count} failed", status=status)
            return {"error": error.to_dict()}
        return {"output": {"attempts": count}}

    async def flaky(call: Any) -> Any:
        # Like any catalog function: side effects in a step, errors raised in workflow code.
        outcome = await call.ctx.step(attempt)
        if "error" in outcome:
            raise TaskError.from_dict(outcome["error"])
        return outcome["output"]

    register_function(scenario, name, version, flaky)


@given(parsers.parse("a catalog function {name}:{version} that counts its calls"))
def given_counter(scenario: Scenario, name: str, version: str) -> None:
    def bump() -> int:
        scenario.calls[name] = scenario.calls.get(name, 0) + 1
        return scenario.calls[name]

    async def count(call: Any) -> Any:
        return await call.ctx.step(bump)

    register_function(scenario, name, version, count)


@then(parsers.parse("the catalog function {name} should have run {times:d} times"))
def then_calls(scenario: Scenario, name: str, times: int) -> None:
    assert scenario.calls.get(name, 0) == times


# --- arrange ---------------------------------------------------------------------------------


@given("a workflow with definition:")
def given_definition(scenario: Scenario, docstring: str) -> None:
    document = scenario.runtime.load(docstring)
    scenario.runtime.register(document, docstring)
    scenario.documents.append(f"{document.namespace}/{document.name}:{document.version}")


@given("a deployed workflow with definition:")
def given_deployed(scenario: Scenario, docstring: str) -> None:
    scenario.run(scenario.runtime.deploy(docstring))


@given(parsers.parse("the secret {name} holds:"))
def given_secret(scenario: Scenario, name: str, docstring: str) -> None:
    scenario.runtime.secrets[name] = load_yaml(docstring)


@then(parsers.parse("the authority should have issued {count:d} token"))
@then(parsers.parse("the authority should have issued {count:d} tokens"))
def then_tokens(scenario: Scenario, count: int) -> None:
    assert len(scenario.fakes.oauth.state.issued) == count


@given("given the workflow input is:")
@given("the workflow input is:")
def given_input(scenario: Scenario, docstring: str) -> None:
    scenario.input = load_yaml(docstring)


# --- act -------------------------------------------------------------------------------------


@when("the workflow is executed")
def when_executed(scenario: Scenario) -> None:
    scenario.run(start(scenario))
    scenario.run(finish(scenario))


@when("the workflow is started")
def when_started(scenario: Scenario) -> None:
    scenario.run(start(scenario))


async def start(scenario: Scenario) -> None:
    handle = await scenario.runtime.start(scenario.documents[-1], scenario.input)
    scenario.run_id = handle.run_id


async def finish(scenario: Scenario, timeout: float = 20.0) -> None:
    assert scenario.run_id is not None
    try:
        scenario.output = await scenario.app.result(scenario.run_id, timeout=timeout)
        scenario.status = RunStatus.COMPLETED
    except RunFailedError as exc:
        scenario.status = RunStatus(exc.status)
        scenario.error = await scenario.runtime.fault_of(scenario.run_id) or exc.error


@when(parsers.parse("the workflow is waiting"))
@then(parsers.parse("the workflow should be waiting"))
def when_waiting(scenario: Scenario) -> None:
    scenario.run(parked(scenario))


async def parked(scenario: Scenario, timeout: float = 10.0) -> None:
    """Until the run and its open child runs are parked (waiting, no worker holding them)."""
    assert scenario.run_id is not None
    app = scenario.app
    async with asyncio.timeout(timeout):
        while True:
            run = await app.get_run(scenario.run_id)
            if run.status.terminal:
                raise AssertionError(f"the run ended {run.status} instead of waiting")
            runs = [run, *await app.list_runs(limit=1000)]
            open_runs = [r for r in runs if not r.status.terminal]
            if all([await settled(scenario, r.id) for r in open_runs]):
                return
            await asyncio.sleep(0.005)


async def settled(scenario: Scenario, run_id: str) -> bool:
    """Parked, and on nothing already due (a timer that fired has been seen by the worker)."""
    app = scenario.app
    run = await app.get_run(run_id)
    if run.status is not RunStatus.WAITING:
        return False
    if app.worker is not None and run_id in app.worker.executions:
        return False
    now = scenario.clock.now()
    return not any(
        step.status in (StepStatus.WAITING, StepStatus.RETRYING)
        and step.wake_at is not None
        and step.wake_at <= now
        for step in run.steps
    )


@when(parsers.parse("{seconds:g} seconds pass"))
def when_time_passes(scenario: Scenario, seconds: float) -> None:
    scenario.clock.advance(seconds)


@when(parsers.parse("the deployed workflow {reference} is started"))
def when_deployed_started(scenario: Scenario, reference: str) -> None:
    handle = scenario.run(scenario.runtime.start(reference, scenario.input))
    scenario.run_id = handle.run_id


@when("the process restarts")
def when_restart(scenario: Scenario) -> None:
    """Stop this app and open a new one on the same database, as a restarted process would."""
    scenario.run(scenario.runtime.close())
    scenario.run(scenario.app.close())
    app, runtime = build(scenario.db_url, scenario.clock, scenario.fakes)
    assert runtime.catalog is not None
    for name, version, fn in scenario.functions:
        runtime.catalog.register(name, version, fn)
    scenario.app, scenario.runtime = app, runtime
    scenario.run(app.open())
    scenario.run(runtime.load_deployed())


# --- real worker processes ------------------------------------------------------------------


WORKER = (sys.executable, "-m", "opsloom.cli.main", "worker")


@dataclass
class Crash:
    """A database, files the document writes, and the worker processes serving it."""

    folder: Path
    db_url: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def counter(self) -> Path:
        return self.folder / "counter.txt"

    @property
    def block(self) -> Path:
        return self.folder / "block"

    def spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOM_")}
        # Its documents are deployed, and run shell commands: the operator allows that.
        env["OPSLOOM_RUN_PROCESSES"] = "all"
        self.workers.append(
            subprocess.Popen(
                [*WORKER, "--db", self.db_url, "--lease", "1", "--grace", "0"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its shell commands die with it
            )
        )

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def crash(tmp_path: Path) -> Iterator[Crash]:
    folder = tmp_path / "crash"
    folder.mkdir()
    lab = Crash(folder, f"sqlite:///{folder / 'crash.db'}")
    try:
        yield lab
    finally:
        lab.stop()


async def client(crash: Crash, call: Any) -> Any:
    """Run ``call(app, runtime)`` on a client of the crash database (no worker of its own)."""
    app = App(crash.db_url, worker=None)
    runtime = DslRuntime(app)
    async with app:
        try:
            return await call(app, runtime)
        finally:
            await runtime.close()


@given("a document deployed for worker processes:")
def given_crash_document(scenario: Scenario, crash: Crash, docstring: str) -> None:
    text = docstring.replace("COUNTER_FILE", str(crash.counter))
    text = text.replace("BLOCK_FILE", str(crash.block))
    crash.block.touch()
    scenario.run(client(crash, lambda app, runtime: runtime.deploy(text)))


@when(parsers.parse("a worker process starts the deployed workflow {reference}"))
def when_worker_starts(scenario: Scenario, crash: Crash, reference: str) -> None:
    crash.spawn()

    async def start(app: App, runtime: DslRuntime) -> str:
        handle = await runtime.start(reference, scenario.input)
        return handle.run_id

    scenario.run_id = scenario.run(client(crash, start))


@when(parsers.parse("the worker process is killed while {task} runs"))
def when_worker_killed(scenario: Scenario, crash: Crash, task: str) -> None:
    async def running() -> None:
        # Another process writes the file: polling it is the only way to see the change.
        async with asyncio.timeout(30):
            while True:
                if crash.counter.exists() and task in crash.counter.read_text():
                    return
                await asyncio.sleep(0.02)

    scenario.run(running())
    crash.stop()
    crash.block.unlink()  # the task would block a new attempt too


@when("a new worker process takes over")
def when_new_worker(scenario: Scenario, crash: Crash) -> None:
    crash.spawn()

    async def outcome(app: App, runtime: DslRuntime) -> None:
        assert scenario.run_id is not None
        try:
            scenario.output = await app.result(scenario.run_id, timeout=30)
            scenario.status = RunStatus.COMPLETED
        except RunFailedError as exc:
            scenario.status = RunStatus(exc.status)
            scenario.error = await runtime.fault_of(scenario.run_id) or exc.error

    scenario.run(client(crash, outcome))


@then(parsers.parse("the tasks should have run {names}"))
def then_tasks_ran(crash: Crash, names: str) -> None:
    assert crash.counter.read_text().split() == [n.strip() for n in names.split(",")]


@when("the workflow finishes")
def when_finishes(scenario: Scenario) -> None:
    scenario.run(finish(scenario))


@when(parsers.parse("an event is emitted:"))
def when_event(scenario: Scenario, docstring: str) -> None:
    scenario.run(scenario.app.emit(load_yaml(docstring)))


# --- assert: the workflow ----------------------------------------------------------------------


@then("the workflow should complete")
def then_complete(scenario: Scenario) -> None:
    assert scenario.status is RunStatus.COMPLETED, scenario.error


@then("the workflow should complete with output:")
def then_complete_with(scenario: Scenario, docstring: str) -> None:
    then_complete(scenario)
    assert scenario.output == load_yaml(docstring)


@then("the workflow should fault")
def then_fault(scenario: Scenario) -> None:
    assert scenario.status is RunStatus.FAILED, f"{scenario.status}: {scenario.output}"


@then("the workflow should fault with error:")
def then_fault_with(scenario: Scenario, docstring: str) -> None:
    then_fault(scenario)
    assert_error(scenario.error, load_yaml(docstring))


@then("the workflow should cancel")
def then_cancel(scenario: Scenario) -> None:
    assert scenario.status is RunStatus.CANCELLED


def assert_error(actual: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    assert actual is not None
    for key, value in expected.items():
        if key == "type":
            assert type_matches(value, actual.get("type", "")), (value, actual)
        else:
            assert actual.get(key) == value, (key, value, actual)


def lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        assert isinstance(value, dict) and part in value, f"no {path!r} in {value!r}"
        value = value[part]
    return value


@then(parsers.re(r"the workflow output should have properties (?P<names>.+)"))
def then_properties(scenario: Scenario, names: str) -> None:
    then_complete(scenario)
    for name in re.findall(r"'([^']+)'", names):
        lookup(scenario.output, name)


@then(parsers.re(r"the workflow output should have a '(?P<path>[^']+)' property with value:"))
def then_property_value(scenario: Scenario, path: str, docstring: str) -> None:
    then_complete(scenario)
    assert lookup(scenario.output, path) == load_yaml(docstring)


@then(
    parsers.re(
        r"the workflow output should have a '(?P<path>[^']+)' property containing "
        r"(?P<count>\d+) items"
    )
)
def then_property_count(scenario: Scenario, path: str, count: str) -> None:
    then_complete(scenario)
    assert len(lookup(scenario.output, path)) == int(count)


# --- assert: tasks -----------------------------------------------------------------------------


def task_order(scenario: Scenario) -> list[str]:
    """Names of the leaf tasks that ran, in order (steps are named after task pointers)."""
    assert scenario.run_id is not None
    run = scenario.run(scenario.app.get_run(scenario.run_id))
    return [
        step.name.rsplit("/", 1)[-1]
        for step in run.steps
        if step.kind is StepKind.STEP and step.name.startswith("/")
    ]


@then(parsers.re(r"(?P<task>\w+) should run first"))
def then_first(scenario: Scenario, task: str) -> None:
    order = task_order(scenario)
    assert order and order[0] == task, order


@then(parsers.re(r"(?P<task>\w+) should run last"))
def then_last(scenario: Scenario, task: str) -> None:
    order = task_order(scenario)
    assert order and order[-1] == task, order


@then(parsers.re(r"(?P<later>\w+) should run after (?P<earlier>\w+)"))
def then_after(scenario: Scenario, later: str, earlier: str) -> None:
    order = task_order(scenario)
    assert later in order and earlier in order, order
    assert order.index(later) > order.index(earlier), order


@then(parsers.re(r"(?P<earlier>\w+) should run before (?P<later>\w+)"))
def then_before(scenario: Scenario, earlier: str, later: str) -> None:
    then_after(scenario, later, earlier)


@then(parsers.re(r"(?P<task>\w+) should complete"))
def then_task_completes(scenario: Scenario, task: str) -> None:
    assert task in task_order(scenario)


@then(parsers.re(r"the workflow error detail should contain '(?P<text>[^']+)'"))
def then_error_detail(scenario: Scenario, text: str) -> None:
    assert scenario.error is not None
    assert text in json.dumps(scenario.error), scenario.error
