"""Run the six Temporal-style workflows on an SQLite file: ``python -m examples.temporal``."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from examples.temporal.activities import ALL as ACTIVITIES
from examples.temporal.activities import Message
from examples.temporal.workflows import (
    ALL as WORKFLOWS,
)
from examples.temporal.workflows import (
    AdaptiveLearning,
    ComplianceMonitoring,
    ConversationAnalysis,
    DataSync,
    IncidentResponse,
    MultiStageApproval,
    Stage,
)
from opsloom.compat.temporal.client import Client
from opsloom.compat.temporal.worker import Worker


async def run_all(client: Client) -> dict[str, Any]:
    """Each workflow once, driven as a team would drive it; their results by name."""
    tag = uuid.uuid4().hex[:8]
    queue = "examples"
    out: dict[str, Any] = {}
    out["conversation"] = await client.execute_workflow(
        ConversationAnalysis.run,
        [Message("user", "it is still broken"), Message("user", "still broken, again!")],
        id=f"conversation-{tag}",
        task_queue=queue,
    )
    learning = await client.start_workflow(
        AdaptiveLearning.run, 3, id=f"learning-{tag}", task_queue=queue
    )
    for answer in ("4", "9", "lyon"):
        await learning.signal(AdaptiveLearning.answer, answer)
    out["learning"] = await learning.result()
    out["incident"] = await client.execute_workflow(
        IncidentResponse.run, args=["database", "critical"], id=f"incident-{tag}", task_queue=queue
    )
    approval = await client.start_workflow(
        MultiStageApproval.run,
        args=[[Stage("team", ["ann", "bob"]), Stage("security", ["sec"])], 24.0],
        id=f"approval-{tag}",
        task_queue=queue,
    )
    await approval.execute_update(MultiStageApproval.decide, args=["bob", True])
    await approval.execute_update(MultiStageApproval.decide, args=["sec", True])
    out["approval"] = await approval.result()
    out["compliance"] = await client.execute_workflow(
        ComplianceMonitoring.run,
        args=[["disk-encryption", "mfa-enforced-for-admins"], 2, 0],
        id=f"compliance-{tag}",
        task_queue=queue,
    )
    out["data_sync"] = await client.execute_workflow(
        DataSync.run, ["users", "orders"], id=f"sync-{tag}", task_queue=queue
    )
    return out


async def main(url: str) -> None:
    client = await Client.connect(url)
    try:
        async with Worker(
            client, task_queue="examples", workflows=WORKFLOWS, activities=ACTIVITIES
        ):
            for name, result in (await run_all(client)).items():
                print(f"{name}: {result}")
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///temporal-examples.db"))
