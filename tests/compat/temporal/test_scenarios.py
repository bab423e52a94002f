"""The Temporal-style scenarios on opsloom.compat.temporal, on both stores, with the results
Temporal gives (checked against a real Temporal server by ``test_differential.py``)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import temporal_scenarios as scenarios

from opsloom.compat.temporal.client import Client
from opsloom.compat.temporal.worker import UnsandboxedWorkflowRunner, Worker

#: Temporal runs plain (not async) activities in an executor the worker is given.
THREADS = ThreadPoolExecutor(max_workers=4)

#: What Temporal answers for each driver (the differential test compares the two live).
EXPECTED: dict[str, Any] = {
    "chain": {
        "lines": ["charged 42 for o1", "CHARGED 42 FOR O1", "CHARGED 42 FOR O1!"],
        "attempts": [1],
    },
    "retries": {
        "out": {
            "recovered": 3,
            "exhausted": ["ApplicationError", "RuntimeError", "transient failure 3"],
            "refused": ["BadInput", True, ["detail-1"]],
            "by_type": "RuntimeError",
        },
        "attempts": {
            "recovered": [1, 2, 3],
            "exhausted": [1, 2, 3],
            "refused": [1],
            "by_type": [1],
        },
    },
    "timers": True,
    "approval": {
        "count": 1,
        "rejected": "ApplicationError",
        "first": {"votes": ["ann", "bob"], "closed": False},
        "closed_with": 1,
        "second": {"votes": ["cy"], "closed": True},
        "final_count": 1,
    },
    "deadline": "timed out",
    "children": [
        "A",
        ["ChildWorkflowError", "ChildRefused", "the child refuses"],
        "B",
    ],
    "fan_out": [0, 2, 4, 6],
    "continue_as_new": 6,
    "cancel": "CancelledError",
    "recorded": ["UUID", "True", "True"],
    "failure": ["ApplicationError", "ChildRefused", "the child refuses"],
    "patching": [True, 42],
}


def normalise(name: str, result: Any, prefix: str) -> Any:
    """The result with the run's id prefix taken out (ids differ between runs)."""
    if name == "chain":
        return {
            "lines": [
                line.replace(prefix, "").replace(prefix.upper(), "") for line in result["lines"]
            ],
            "attempts": result["attempts"],
        }
    return result


async def drive(target: str, names: list[str], prefix: str) -> dict[str, Any]:
    client = await Client.connect(target)
    try:
        async with Worker(
            client,
            task_queue="scenarios",
            workflows=scenarios.WORKFLOWS,
            activities=scenarios.ACTIVITIES,
            activity_executor=THREADS,
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            return {
                name: normalise(
                    name, await scenarios.DRIVERS[name](client, "scenarios", prefix), prefix
                )
                for name in names
            }
    finally:
        await client.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_scenario__gives_temporals_result(db_url: str, name: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}-"  # activities note attempts under it
    results = await drive(db_url, [name], prefix)
    assert results[name] == EXPECTED[name]
