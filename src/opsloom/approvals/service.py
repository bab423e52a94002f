"""Where people decide: the approvals service shared by the API, the CLI, Slack and links.

Every operation is one call to ``Store.change_approval``: one transaction that locks the
request, checks that the person may act (assigned user, member of an assigned group or a
delegate; never the requester), records what they did, evaluates the stage and the request
and, when the request or a stage changed, signals the waiting run. The audit entries are
appended in that same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsloom.approvals import flow
from opsloom.approvals.spec import (
    ApprovalForbiddenError,
    ApprovalNotFoundError,
)
from opsloom.approvals.stats import StageStats, stage_stats
from opsloom.model.approval import ApprovalChange, ApprovalState, ChangeFn, RequestStatus
from opsloom.store.audit import AuditDraft

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.identity.access import Identity, Principal
    from opsloom.identity.audit import AuditLog
    from opsloom.store.base import Store

#: How many pending requests ``pending_for`` looks through.
PENDING_LIMIT = 1000


def audit_entries(
    request_id: str, via: str | None, now: float
) -> Callable[[ApprovalChange], list[AuditDraft]]:
    """What a change did, as audit entries (actor ``"<via> as <user>"`` with ``via``).

    Given to ``Store.change_approval``, which appends them in the change's own transaction.
    """

    def entries(done: ApprovalChange) -> list[AuditDraft]:
        drafts = []
        for actor, action, data in done.notes:
            if actor in (flow.SLA_ACTOR, flow.RUN_ACTOR):
                who = f"system:{actor}"
            else:
                who = actor if via is None else f"{via} as {actor}"
            drafts.append(AuditDraft(who, action, f"approval:{request_id}", dict(data), now))
        return drafts

    return entries


def request_of(task_id: str) -> str:
    """The request id of a task id (``<request id>.<position>``)."""
    request_id, _, position = task_id.rpartition(".")
    if not request_id or not position.isdigit():
        raise ApprovalNotFoundError(f"no approval task {task_id!r}")
    return request_id


def request_view(state: ApprovalState) -> dict[str, Any]:
    """A request as JSON: the header, its stages with votes, and its questions."""
    r = state.request
    return {
        "id": r.id,
        "run_id": r.run_id,
        "title": r.title,
        "requester": r.requester,
        "subject": r.subject,
        "risk": r.risk,
        "impact": r.impact,
        "status": r.status,
        "decided_by": r.decided_by,
        "reason": r.reason,
        "created_at": r.created_at,
        "decided_at": r.decided_at,
        "stages": [flow.stage_summary(state, s) for s in state.stages],
        "clarifications": [
            {
                "id": c.id,
                "task": c.stage_id,
                "asked_by": c.asked_by,
                "question": c.question,
                "asked_at": c.asked_at,
                "answer": c.answer,
                "answered_by": c.answered_by,
                "answered_at": c.answered_at,
            }
            for c in state.clarifications
        ],
    }


class Approvals:
    """The human side of approvals.

    Args:
        store: where requests live.
        clock: the time of decisions.
        identity: users and groups (to check a delegate exists).
        audit: where decisions, questions, delegations and cancellations are logged.
        notify: called after a change (e.g. the local worker's ``notify``), so a run in this
            process (the waiting run, the request's notices run) wakes without waiting for
            its next poll.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        identity: Identity,
        audit: AuditLog,
        *,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.identity = identity
        self.audit = audit
        self._notify = notify

    async def _change(self, request_id: str, change: ChangeFn, via: str | None) -> ApprovalChange:
        now = self.clock.now()
        done = await self.store.change_approval(
            request_id, change, now, audit=audit_entries(request_id, via, now)
        )
        if done is None:
            raise ApprovalNotFoundError(f"no approval request {request_id!r}")
        if self._notify is not None:
            self._notify()
        return done

    async def requests(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Requests (with ``status``), newest first."""
        return [request_view(s) for s in await self.store.list_approvals(status, limit)]

    async def pending_for(self, principal: Principal) -> list[dict[str, Any]]:
        """The open tasks ``principal`` may decide and has not decided, oldest first.

        Tasks waiting for an answer are listed too (``status`` ``clarifying``); so are the
        open questions on the principal's own requests (``kind`` ``question``).
        """
        tasks: list[dict[str, Any]] = []
        for state in await self.store.list_approvals(RequestStatus.PENDING, PENDING_LIMIT):
            r = state.request
            if r.requester == principal.user:
                for c in state.clarifications:
                    if c.answer is None:
                        tasks.append(
                            {
                                "kind": "question",
                                "request_id": r.id,
                                "title": r.title,
                                "task": c.stage_id,
                                "question": c.question,
                                "asked_by": c.asked_by,
                                "since": c.asked_at,
                            }
                        )
                continue
            for stage in state.stages:
                if stage.status not in flow.ACTIVE:
                    continue
                try:
                    flow.standing(state, stage, principal.user, principal.groups)
                except ApprovalForbiddenError:
                    continue
                if any(v.stage_id == stage.id and v.voter == principal.user for v in state.votes):
                    continue
                tasks.append(
                    {
                        "kind": "approval",
                        "request_id": r.id,
                        "title": r.title,
                        "requester": r.requester,
                        "risk": r.risk,
                        "impact": r.impact,
                        "task": stage.id,
                        "stage": stage.name,
                        "status": stage.status,
                        "deadline": stage.deadline,
                        "since": stage.opened_at,
                    }
                )
        tasks.sort(key=lambda t: (t["since"] or 0.0, t["task"]))
        return tasks

    async def show(self, request_id: str) -> dict[str, Any]:
        """One request (``ApprovalNotFoundError``)."""
        state = await self.store.get_approval(request_id)
        if state is None:
            raise ApprovalNotFoundError(f"no approval request {request_id!r}")
        return request_view(state)

    def _approver(self, principal: Principal) -> None:
        if not principal.has("approver"):
            raise ApprovalForbiddenError(f"{principal.user} does not hold the approver role")

    async def decide(
        self,
        principal: Principal,
        task_id: str,
        approve: bool,
        comment: str | None = None,
        *,
        via: str | None = None,
    ) -> dict[str, Any]:
        """Approve or deny a task (a denial needs a reason); returns the request."""
        self._approver(principal)
        change = flow.vote(
            principal.user, principal.groups, task_id, approve, comment, self.clock.now()
        )
        done = await self._change(request_of(task_id), change, via)
        return request_view(done.state)

    async def ask(
        self, principal: Principal, task_id: str, question: str, *, via: str | None = None
    ) -> dict[str, Any]:
        """Ask the requester a question; the task pauses (and its SLA) until answered."""
        self._approver(principal)
        change = flow.ask(principal.user, principal.groups, task_id, question, self.clock.now())
        done = await self._change(request_of(task_id), change, via)
        return request_view(done.state)

    async def answer(
        self, principal: Principal, request_id: str, answer: str, *, via: str | None = None
    ) -> dict[str, Any]:
        """The requester answers the open questions of their request; the tasks resume."""
        change = flow.answer(principal.user, answer, self.clock.now())
        done = await self._change(request_id, change, via)
        return request_view(done.state)

    async def delegate(
        self, principal: Principal, task_id: str, to_user: str, *, via: str | None = None
    ) -> dict[str, Any]:
        """Hand one's part in a task to another (existing) user."""
        self._approver(principal)
        if await self.identity.get_user(to_user) is None:
            raise ApprovalNotFoundError(f"no user {to_user!r} to delegate to")
        change = flow.delegate(principal.user, principal.groups, task_id, to_user, self.clock.now())
        done = await self._change(request_of(task_id), change, via)
        return request_view(done.state)

    async def cancel(
        self, principal: Principal, request_id: str, reason: str, *, via: str | None = None
    ) -> dict[str, Any]:
        """Withdraw a pending request (its requester or an admin)."""
        change = flow.cancel(principal.user, reason, self.clock.now(), admin=principal.has("admin"))
        done = await self._change(request_id, change, via)
        return request_view(done.state)

    async def stats(self, limit: int = 10_000) -> list[StageStats]:
        """Response times per stage over the newest ``limit`` requests."""
        return stage_stats(await self.store.list_approvals(None, limit))
