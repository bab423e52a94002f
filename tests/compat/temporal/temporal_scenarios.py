"""Workflows and client drivers written for Temporal's Python SDK, imported from opsloom.

The differential tests run this very file twice: as it is (on ``opsloom.compat.temporal``) and
with ``opsloom.compat.temporal`` replaced by ``temporalio`` in its text (on a Temporal dev
server). Each driver returns plain values, compared between the two. Activities note their
attempts in ``ATTEMPTS`` so that retry behaviour is compared too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from opsloom.compat.temporal import activity, workflow
from opsloom.compat.temporal.client import (
    Client,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from opsloom.compat.temporal.common import RetryPolicy
from opsloom.compat.temporal.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
)

ATTEMPTS: dict[str, list[int]] = {}
SHORT = timedelta(seconds=10)
FAST_RETRY = timedelta(milliseconds=50)


def _note(key: str) -> int:
    attempt = activity.info().attempt
    ATTEMPTS.setdefault(key, []).append(attempt)
    return attempt


@dataclass
class Order:
    id: str
    amount: int


@dataclass
class Receipt:
    order: str
    lines: list[str]


@activity.defn
async def charge(order: Order) -> str:
    _note(f"{order.id}:charge")
    return f"charged {order.amount} for {order.id}"


@activity.defn(name="shout")
def shout_sync(text: str) -> str:
    return text.upper()


@activity.defn
async def flaky(key: str, failures: int) -> int:
    attempt = _note(key)
    if attempt <= failures:
        raise RuntimeError(f"transient failure {attempt}")
    return attempt


@activity.defn
async def refuse(key: str) -> None:
    _note(key)
    raise ApplicationError("bad input", "detail-1", type="BadInput", non_retryable=True)


@activity.defn
async def double(value: int) -> int:
    return value * 2


@workflow.defn(name="Chain")
class ChainWorkflow:
    @workflow.run
    async def run(self, order: Order) -> Receipt:
        first = await workflow.execute_activity(charge, order, start_to_close_timeout=SHORT)
        second = await workflow.execute_activity(shout_sync, first, start_to_close_timeout=SHORT)
        third = await workflow.execute_activity(
            "shout", second.lower() + "!", schedule_to_close_timeout=SHORT
        )
        return Receipt(order.id, [first, second, third])


@workflow.defn
class Retries:
    @workflow.run
    async def run(self, key: str) -> dict[str, Any]:
        fast = RetryPolicy(initial_interval=FAST_RETRY, maximum_attempts=5)
        out: dict[str, Any] = {}
        out["recovered"] = await workflow.execute_activity(
            flaky, args=[f"{key}:recovered", 2], start_to_close_timeout=SHORT, retry_policy=fast
        )
        try:
            await workflow.execute_activity(
                flaky,
                args=[f"{key}:exhausted", 10],
                start_to_close_timeout=SHORT,
                retry_policy=RetryPolicy(initial_interval=FAST_RETRY, maximum_attempts=3),
            )
        except ActivityError as err:
            cause = err.cause
            assert isinstance(cause, ApplicationError)
            out["exhausted"] = [type(cause).__name__, cause.type, cause.message]
        try:
            await workflow.execute_activity(
                refuse, f"{key}:refused", start_to_close_timeout=SHORT, retry_policy=fast
            )
        except ActivityError as err:
            cause = err.cause
            assert isinstance(cause, ApplicationError)
            out["refused"] = [cause.type, cause.non_retryable, list(cause.details)]
        try:
            await workflow.execute_activity(
                flaky,
                args=[f"{key}:by_type", 10],
                start_to_close_timeout=SHORT,
                retry_policy=RetryPolicy(
                    initial_interval=FAST_RETRY,
                    maximum_attempts=5,
                    non_retryable_error_types=["RuntimeError"],
                ),
            )
        except ActivityError as err:
            cause = err.cause
            assert isinstance(cause, ApplicationError)
            out["by_type"] = cause.type
        return out


@workflow.defn
class Timers:
    @workflow.run
    async def run(self, seconds: float) -> bool:
        start = workflow.now()
        await workflow.sleep(timedelta(seconds=seconds))
        await asyncio.sleep(seconds)
        return (workflow.now() - start).total_seconds() >= 2 * seconds


@workflow.defn
class Approval:
    def __init__(self) -> None:
        self.votes: list[str] = []
        self.closed = False

    @workflow.run
    async def run(self, needed: int) -> dict[str, Any]:
        await workflow.wait_condition(lambda: len(self.votes) >= needed or self.closed)
        return {"votes": self.votes, "closed": self.closed}

    @workflow.signal
    def vote(self, who: str) -> None:
        self.votes.append(who)

    @workflow.query
    def count(self) -> int:
        return len(self.votes)

    @workflow.update
    def close(self, reason: str) -> int:
        self.closed = True
        return len(self.votes)

    @close.validator
    def check_close(self, reason: str) -> None:
        if not reason:
            raise ValueError("closing needs a reason")


@workflow.defn
class Deadline:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.wait_condition(lambda: False, timeout=timedelta(milliseconds=300))
        except TimeoutError:
            return "timed out"
        return "never"


@workflow.defn
class Child:
    @workflow.run
    async def run(self, name: str) -> str:
        if name == "fail":
            raise ApplicationError("the child refuses", type="ChildRefused")
        return await workflow.execute_activity(shout_sync, name, start_to_close_timeout=SHORT)


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, names: list[str]) -> list[Any]:
        out: list[Any] = []
        for name in names:
            try:
                out.append(
                    await workflow.execute_child_workflow(
                        Child.run, name, id=f"{workflow.info().workflow_id}-{name}"
                    )
                )
            except ChildWorkflowError as err:
                cause = err.cause
                assert isinstance(cause, ApplicationError)
                out.append([type(err).__name__, cause.type, cause.message])
        return out


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, count: int) -> list[int]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(double, i, start_to_close_timeout=SHORT)
                    for i in range(count)
                )
            )
        )


@workflow.defn
class Looping:
    @workflow.run
    async def run(self, remaining: int, total: int) -> int:
        if remaining > 0:
            workflow.continue_as_new(args=[remaining - 1, total + remaining])
        return total


@workflow.defn
class Cancellable:
    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: False)
        return "never"


@workflow.defn
class Recorded:
    @workflow.run
    async def run(self) -> list[str]:
        value = workflow.uuid4()
        number = workflow.random().randint(1, 6)
        return [type(value).__name__, str(1 <= number <= 6), str(workflow.now().tzinfo is not None)]


@workflow.defn
class Patching:
    @workflow.run
    async def run(self) -> list[Any]:
        new_path = workflow.patched("double-the-answer")
        value = await workflow.execute_activity(
            double, 21 if new_path else 1, start_to_close_timeout=SHORT
        )
        workflow.deprecate_patch("an-older-change")
        return [new_path, value]


WORKFLOWS = [
    ChainWorkflow,
    Retries,
    Timers,
    Approval,
    Deadline,
    Child,
    Parent,
    FanOut,
    Looping,
    Cancellable,
    Recorded,
    Patching,
]
ACTIVITIES = [charge, shout_sync, flaky, refuse, double]


# --- drivers: client code, the same on both ---------------------------------------------------


async def drive_chain(client: Client, queue: str, prefix: str) -> Any:
    receipt = await client.execute_workflow(
        ChainWorkflow.run, Order(f"{prefix}o1", 42), id=f"{prefix}chain", task_queue=queue
    )
    assert isinstance(receipt, Receipt)
    return {"lines": receipt.lines, "attempts": ATTEMPTS[f"{prefix}o1:charge"]}


async def drive_retries(client: Client, queue: str, prefix: str) -> Any:
    key = f"{prefix}retries"
    out = await client.execute_workflow(Retries.run, key, id=key, task_queue=queue)
    attempts = {name: ATTEMPTS[f"{key}:{name}"] for name in out}
    return {"out": out, "attempts": attempts}


async def drive_timers(client: Client, queue: str, prefix: str) -> Any:
    return await client.execute_workflow(Timers.run, 0.2, id=f"{prefix}timers", task_queue=queue)


async def drive_approval(client: Client, queue: str, prefix: str) -> Any:
    handle = await client.start_workflow(Approval.run, 2, id=f"{prefix}approval", task_queue=queue)
    await handle.signal(Approval.vote, "ann")
    count = await handle.query(Approval.count)
    try:
        await handle.execute_update(Approval.close, "")
        rejected = None
    except WorkflowUpdateFailedError as err:
        rejected = type(err.cause).__name__
    await handle.signal(Approval.vote, "bob")
    first = await handle.result()
    closing = await client.start_workflow(
        Approval.run, 5, id=f"{prefix}approval-closed", task_queue=queue
    )
    await closing.signal("vote", "cy")
    closed_with = await closing.execute_update(Approval.close, "enough")
    return {
        "count": count,
        "rejected": rejected,
        "first": first,
        "closed_with": closed_with,
        "second": await closing.result(),
        "final_count": await closing.query("count"),
    }


async def drive_deadline(client: Client, queue: str, prefix: str) -> Any:
    return await client.execute_workflow(Deadline.run, id=f"{prefix}deadline", task_queue=queue)


async def drive_children(client: Client, queue: str, prefix: str) -> Any:
    return await client.execute_workflow(
        Parent.run, ["a", "fail", "b"], id=f"{prefix}parent", task_queue=queue
    )


async def drive_fan_out(client: Client, queue: str, prefix: str) -> Any:
    return await client.execute_workflow(FanOut.run, 4, id=f"{prefix}fanout", task_queue=queue)


async def drive_continue_as_new(client: Client, queue: str, prefix: str) -> Any:
    handle = await client.start_workflow(
        Looping.run, args=[3, 0], id=f"{prefix}looping", task_queue=queue
    )
    return await handle.result()


async def drive_cancel(client: Client, queue: str, prefix: str) -> Any:
    handle = await client.start_workflow(
        Cancellable.run, id=f"{prefix}cancellable", task_queue=queue
    )
    await handle.cancel()
    try:
        await handle.result()
    except WorkflowFailureError as err:
        return type(err.cause).__name__
    return "completed"


async def drive_recorded(client: Client, queue: str, prefix: str) -> Any:
    return await client.execute_workflow(Recorded.run, id=f"{prefix}recorded", task_queue=queue)


async def drive_failure(client: Client, queue: str, prefix: str) -> Any:
    try:
        await client.execute_workflow(Child.run, "fail", id=f"{prefix}failing", task_queue=queue)
    except WorkflowFailureError as err:
        cause = err.cause
        assert isinstance(cause, ApplicationError)
        return [type(cause).__name__, cause.type, cause.message]
    return "completed"


async def drive_patching(client: Client, queue: str, prefix: str) -> Any:
    return await client.execute_workflow(Patching.run, id=f"{prefix}patching", task_queue=queue)


DRIVERS = {
    "chain": drive_chain,
    "retries": drive_retries,
    "timers": drive_timers,
    "approval": drive_approval,
    "deadline": drive_deadline,
    "children": drive_children,
    "fan_out": drive_fan_out,
    "continue_as_new": drive_continue_as_new,
    "cancel": drive_cancel,
    "recorded": drive_recorded,
    "failure": drive_failure,
    "patching": drive_patching,
}
