"""opsloom.compat.temporal details: heartbeats, time limits, handlers during timers, the client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from opsloom import App, FakeClock, RunStatus
from opsloom.compat.temporal import activity, workflow
from opsloom.compat.temporal.client import (
    Client,
    RPCError,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from opsloom.compat.temporal.common import RetryPolicy
from opsloom.compat.temporal.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
    WorkflowAlreadyStartedError,
)
from opsloom.compat.temporal.worker import Worker
from opsloom.model import StepKind

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=3)
seen: dict[str, list[Any]] = {}


@activity.defn
async def resumable(key: str) -> list[Any]:
    info = activity.info()
    seen.setdefault(key, []).append(list(info.heartbeat_details))
    if info.attempt == 1:
        activity.heartbeat({"done": 5})
        raise RuntimeError("crashed halfway")
    return list(info.heartbeat_details)


@activity.defn
async def silent(key: str) -> str:
    seen.setdefault(key, []).append(activity.info().attempt)
    if activity.info().attempt == 1:
        await asyncio.Event().wait()  # never beats: the heartbeat timeout ends it
    return "beat"


@activity.defn
async def slow(key: str) -> str:
    seen.setdefault(key, []).append(activity.info().attempt)
    await asyncio.Event().wait()
    return "never"


@dataclass
class Summary:
    name: str
    seen: list[str]


@workflow.defn
class Watcher:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.stop = False

    @workflow.run
    async def run(self, name: str) -> Summary:
        while not self.stop:
            await workflow.sleep(timedelta(hours=1))
        return Summary(name, self.notes)

    @workflow.signal
    async def note(self, text: str) -> None:
        self.notes.append(text)

    @workflow.signal(name="halt")
    def halt(self) -> None:
        self.stop = True

    @workflow.query
    def summary(self) -> Summary:
        return Summary("now", list(self.notes))


@workflow.defn
class Echo:
    @workflow.run
    async def run(self, value: Any) -> Any:
        return value


@workflow.defn
class Activities:
    @workflow.run
    async def run(self, kind: str, key: str) -> Any:
        if kind == "heartbeat":
            return await workflow.execute_activity(
                resumable, key, start_to_close_timeout=timedelta(seconds=5), retry_policy=FAST
            )
        if kind == "heartbeat_timeout":
            return await workflow.execute_activity(
                silent,
                key,
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(milliseconds=50),
                retry_policy=FAST,
            )
        try:
            await workflow.execute_activity(
                slow,
                key,
                schedule_to_close_timeout=timedelta(milliseconds=2000),
                start_to_close_timeout=timedelta(milliseconds=500),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
            )
        except ActivityError as err:
            assert isinstance(err.cause, TimeoutError)
            return [err.cause.type.name if err.cause.type else None, err.retry_state.name]
        return "completed"


async def until_taken(app: App, run_id: str, count: int) -> None:
    """The run took ``count`` signals (its handlers ran)."""
    for _ in range(2000):
        run = await app.get_run(run_id)
        if sum(1 for s in run.steps if s.kind is StepKind.SIGNAL and s.output) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"run {run_id} did not take {count} signals")


@pytest.fixture
async def client(make_app: Callable[..., App]) -> AsyncIterator[Client]:
    app = make_app(client=True)
    async with app:
        client = Client(app)
        async with Worker(
            client, task_queue="q", workflows=[Watcher, Activities, Echo], activities=[resumable]
        ):
            yield client


@pytest.fixture
def key() -> str:
    """A workflow id and activity key of this test alone (``seen`` outlives tests)."""
    return uuid.uuid4().hex


async def test_heartbeat__details_reach_the_next_attempt(client: Client, key: str) -> None:
    result = await client.execute_workflow(
        Activities.run, args=["heartbeat", key], id=key, task_queue="q"
    )
    assert result == [{"done": 5}]
    assert seen[key] == [[], [{"done": 5}]]


async def test_heartbeat_timeout__ends_a_silent_attempt_and_retries(
    client: Client, key: str
) -> None:
    result = await client.execute_workflow(
        Activities.run, args=["heartbeat_timeout", key], id=key, task_queue="q"
    )
    assert result == "beat"
    assert seen[key] == [1, 2]


async def test_schedule_to_close__bounds_all_attempts(client: Client, key: str) -> None:
    result = await client.execute_workflow(
        Activities.run, args=["deadline", key], id=key, task_queue="q"
    )
    assert result == [TimeoutType.SCHEDULE_TO_CLOSE.name, RetryState.TIMEOUT.name]
    # Attempts of 500 ms (start-to-close) were retried until the 2 s budget ran out: at most
    # four fit, and even a loaded machine starts a second one long before the budget ends.
    assert 2 <= len(seen[key]) <= 4


async def test_signal_handlers__run_while_a_timer_waits(make_app: Callable[..., App]) -> None:
    clock = FakeClock()
    app = make_app(client=True, clock=clock)
    async with app:
        client = Client(app)
        async with Worker(client, task_queue="q", workflows=[Watcher]):
            handle = await client.start_workflow(Watcher.run, "w", id="watch", task_queue="q")
            await handle.signal(Watcher.note, "one")
            await handle.signal("note", args=["two"])
            answer = await handle.query(Watcher.summary)
            assert answer == Summary("now", ["one", "two"])
            description = await handle.describe()
            assert description.status is WorkflowExecutionStatus.RUNNING
            assert description.task_queue == "q"
            await handle.signal(Watcher.halt)
            await until_taken(app, "watch", 3)
            assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
            # As in Temporal, the flag is seen when the running timer ends.
            clock.advance(3600)
            assert await handle.result() == Summary("w", ["one", "two"])
            assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_start_workflow__an_existing_id_is_refused(client: Client) -> None:
    await client.start_workflow(Watcher.run, "a", id="same", task_queue="q")
    with pytest.raises(WorkflowAlreadyStartedError):
        await client.start_workflow(Watcher.run, "b", id="same", task_queue="q")
    await client.get_workflow_handle("same").terminate(reason="test over")
    with pytest.raises(WorkflowFailureError):
        await client.get_workflow_handle("same").result()


async def test_client__unknown_workflow_and_temporal_address(client: Client) -> None:
    with pytest.raises(RPCError, match="no run"):
        await client.get_workflow_handle("missing").describe()
    with pytest.raises(RPCError, match="connects to an opsloom store"):
        await Client.connect("localhost:7233")


async def test_start_by_name__from_a_client_without_the_code(
    make_app: Callable[..., App], client: Client
) -> None:
    other = Client(client.app)  # no workflow registered through this one
    handle = await other.start_workflow("Echo", {"x": 1}, id="by-name", task_queue="q")
    assert await handle.result() == {"x": 1}
    run = await client.app.get_run("by-name")
    assert run.status is RunStatus.COMPLETED and run.workflow == "Echo"


async def test_application_error__fails_the_workflow_with_its_type(
    make_app: Callable[..., App],
) -> None:
    @workflow.defn(name="Refuser")
    class Refuser:
        @workflow.run
        async def run(self) -> None:
            raise ApplicationError("no way", {"why": "policy"}, type="Policy")

    app = make_app(client=True)
    async with app:
        client = Client(app)
        async with Worker(client, task_queue="q", workflows=[Refuser]):
            with pytest.raises(WorkflowFailureError) as caught:
                await client.execute_workflow(Refuser.run, id="refuser", task_queue="q")
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.message, list(cause.details)) == (
        "Policy",
        "no way",
        [{"why": "policy"}],
    )


@activity.defn(name="greet")
async def hello(name: str) -> str:
    return f"hello {name}"


async def hi(name: str) -> str:
    return f"hi {name}"


@workflow.defn
class Greeter:
    @workflow.run
    async def run(self, name: str) -> list[str]:
        short = timedelta(seconds=5)
        by_name = await workflow.execute_activity("greet", name, start_to_close_timeout=short)
        by_function = await workflow.execute_activity(hi, name, start_to_close_timeout=short)
        return [by_name, by_function]


async def test_activity_calls__follow_what_names_and_functions_stand_for_now(
    make_app: Callable[..., App],
) -> None:
    # A later worker may register another activity under a name, and a function may be
    # declared again under another name: calls made after that take the new meaning.
    app = make_app(client=True)
    async with app:
        client = Client(app)
        async with Worker(client, task_queue="q", workflows=[Greeter], activities=[hello]):
            first = await client.execute_workflow(Greeter.run, "ana", id="g1", task_queue="q")

            @activity.defn(name="greet")
            async def howdy(name: str) -> str:
                return f"howdy {name}"

            client.runtime.add_activity(howdy)
            activity.defn(name="hi_again")(hi)
            second = await client.execute_workflow(Greeter.run, "bo", id="g2", task_queue="q")
        run = await app.get_run("g2")
    assert first == ["hello ana", "hi ana"]
    assert second == ["howdy bo", "hi bo"]
    assert [step.name for step in run.steps if step.kind is StepKind.STEP] == ["greet", "hi_again"]


#: The client activity code starts workflows with (set by the test using it).
launcher: list[Client] = []


@activity.defn
async def start_greeter(name: str) -> str:
    # Activity code may use a client, as Temporal's may: the run it starts is workflow code.
    handle = await launcher[0].start_workflow(
        Greeter.run, name, id=f"greeter-{name}", task_queue="q"
    )
    return handle.id


@workflow.defn
class Launcher:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            start_greeter, name, start_to_close_timeout=timedelta(seconds=5)
        )


async def test_workflow_started_by_an_activity__runs_as_workflow_code(
    make_app: Callable[..., App],
) -> None:
    app = make_app(client=True)
    async with app:
        client = Client(app)
        launcher[:] = [client]
        try:
            async with Worker(
                client,
                task_queue="q",
                workflows=[Launcher, Greeter],
                activities=[start_greeter, hello],
            ):
                # This process has a free slot: the started run executes here at once.
                started = await client.execute_workflow(Launcher.run, "cy", id="l1", task_queue="q")
                try:
                    result = await client.get_workflow_handle(started).result()
                except WorkflowFailureError:
                    pytest.fail(f"the started run failed: {(await app.get_run(started)).error}")
        finally:
            launcher.clear()
    assert result == ["hello cy", "hi cy"]
