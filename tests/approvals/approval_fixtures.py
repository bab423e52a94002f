"""Shared helpers of the approval tests: people, the service, and waiting for conditions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from opsloom import App
from opsloom.approvals.service import Approvals
from opsloom.clock import Clock
from opsloom.identity.access import Identity
from opsloom.identity.audit import AuditLog
from opsloom.model.approval import ApprovalState

#: user -> groups; everyone holds the approver role (the requester ``rita`` too).
PEOPLE: dict[str, tuple[str, ...]] = {
    "rita": (),
    "alice": ("leads",),
    "bob": ("leads",),
    "carol": ("leads", "managers"),
    "dave": ("managers",),
    "erin": ("directors",),
    "frank": ("vps",),
    "gina": (),
}


async def add_people(identity: Identity) -> None:
    for user, groups in PEOPLE.items():
        await identity.add_user(
            user, roles=("approver",), slack_id=f"U{user.upper()}", actor="test"
        )
        for group in groups:
            await identity.add_to_group(user, group, actor="test")


def service(app: App, clock: Clock) -> Approvals:
    notify = app.worker.notify if app.worker is not None else None
    return Approvals(
        app.store, clock, Identity(app.store, clock), AuditLog(app.store, clock), notify=notify
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def request_of_run(app: App, run_id: str) -> ApprovalState:
    """The approval request the run opened (waits until it exists)."""
    found: list[ApprovalState] = []

    async def check() -> bool:
        found[:] = [
            s for s in await app.store.list_approvals(None, 100) if s.request.run_id == run_id
        ]
        return bool(found)

    await eventually(check)
    return found[0]
