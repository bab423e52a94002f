"""Approvals from runs: ``await approval(ctx, request)`` and the ``approval:1.0.0`` function.

This is workflow code. A recorded step creates the request and its stage tasks (the request id
is the step's ``run_id.seq``, so a step that runs again finds the request it created). Then
the run waits durably for the signal ``approval:<request id>`` (sent by the transaction that
changes the request), with a timeout at the earliest SLA deadline of an open stage: waiting
holds no worker slot, and a timeout runs a recorded step that applies the SLA actions. Every
wake-up re-reads the request in a recorded step, so a run that crashed while waiting resumes
with the decisions the store holds. A compensation withdraws a request still pending when the
run is cancelled or fails (audited as ``system:run``).

In a document::

    - approve:
        call: approval:1.0.0@default
        with:
          title: Restart ${ .service }
          requester: ${ .requester }
          subject: ${ .alert }
          risk: high
          # starter_may_decide: true   (the run's starter may decide; off by default)
          # distinct_approvers: true   (one stage per person)
          stages:
            - {name: lead, groups: [sre-leads], sla: 3600, escalate_to: [sre-managers],
               on_sla: deny}
          # or: policy: change-approval   (a decision table's name; optional policy_version)

The task's output is the outcome (``request_id``, ``approved``, ``status``, ``decided_by``,
``reason``, ``stages``); with ``raise_on_deny: true`` a denial fails the task with an error
of type ``urn:opsloom:problem:approval_denied`` (status 403) whose detail is the reason.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloom.approvals.flow import expire, new_state, next_deadline, outcome, withdraw
from opsloom.approvals.notice import active_notices
from opsloom.approvals.spec import (
    ApprovalDeniedError,
    ApprovalError,
    ApprovalNotFoundError,
    ApprovalOutcome,
    ApprovalRequest,
    Stage,
    stages_from_output,
)
from opsloom.decisions.decide import decide
from opsloom.engine.context import current_step
from opsloom.errors import WaitTimeoutError
from opsloom.model.approval import ApprovalState
from opsloom.store.approval import signal_name

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.decisions.decide import DecisionTables
    from opsloom.dsl.catalog import Catalog, FunctionCall, FunctionSetup
    from opsloom.engine.context import Context
    from opsloom.store.base import Store

#: Version of the ``approval`` catalog function.
APPROVAL_VERSION = "1.0.0"
DENIED_TYPE = "urn:opsloom:problem:approval_denied"

_NAMES = {"type": "array", "items": {"type": "string"}}
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "requester"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "requester": {"type": "string", "minLength": 1},
        "subject": {},
        "risk": {"type": ["string", "number", "null"]},
        "impact": {"type": ["string", "number", "null"]},
        "stages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "users": _NAMES,
                    "groups": _NAMES,
                    "approvers": _NAMES,
                    # A number is a quorum, as in Python (``Stage(mode=2)``); ``quorum: 2`` too.
                    "mode": {
                        "anyOf": [{"enum": ["any", "all"]}, {"type": "integer", "minimum": 1}]
                    },
                    "quorum": {"type": "integer", "minimum": 1},
                    "sla": {"type": "number", "exclusiveMinimum": 0},
                    "escalate_to": {"type": "array"},
                    "on_sla": {"enum": ["deny", "approve", None]},
                    "parallel": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
        },
        "policy": {"type": "string", "minLength": 1},
        "policy_version": {"type": "string", "minLength": 1},
        "raise_on_deny": {"type": "boolean"},
        "starter_may_decide": {"type": "boolean"},
        "distinct_approvers": {"type": "boolean"},
    },
    "additionalProperties": False,
}


def _summary(state: ApprovalState) -> dict[str, Any]:
    done = outcome(state)
    return {
        "request_id": state.request.id,
        "deadline": next_deadline(state),
        "outcome": None if done is None else done.to_dict(),
    }


@dataclass(frozen=True, slots=True)
class _Steps:
    """The recorded steps of approvals, bound to one store and clock."""

    clock: Clock
    open: Callable[..., Awaitable[dict[str, Any]]]
    look: Callable[[str], Awaitable[dict[str, Any]]]
    lapse: Callable[[str], Awaitable[dict[str, Any]]]
    withdraw: Callable[[str], Awaitable[None]]


# One set of step functions per store: the engine keys ad-hoc steps by function object.
_BOUND: weakref.WeakKeyDictionary[Any, _Steps] = weakref.WeakKeyDictionary()


def _steps(store: Store, clock: Clock) -> _Steps:
    found = _BOUND.get(store)
    if found is not None and found.clock is clock:
        return found

    async def open_request(header: dict[str, Any], stages: list[dict[str, Any]]) -> dict[str, Any]:
        info = current_step()
        state = new_state(
            f"{info.run_id}.{info.seq}",
            info.run_id,
            header,
            tuple(Stage.from_dict(s) for s in stages),
            clock.now(),
        )
        notices = active_notices()
        now = clock.now()
        # The notices run is created with the request: nobody is left untold by a crash.
        runs = () if notices is None else (notices.new_run(state.request.id, now),)
        stored = await store.create_approval(state, now, runs=runs)
        return _summary(stored)

    async def look(request_id: str) -> dict[str, Any]:
        state = await store.get_approval(request_id)
        if state is None:
            raise ApprovalNotFoundError(f"no approval request {request_id!r}")
        return _summary(state)

    async def lapse(request_id: str) -> dict[str, Any]:
        from opsloom.approvals.service import audit_entries

        now = clock.now()
        change = await store.change_approval(
            request_id, expire(now), now, audit=audit_entries(request_id, None, now)
        )
        if change is None:
            raise ApprovalNotFoundError(f"no approval request {request_id!r}")
        return _summary(change.state)

    async def withdraw_request(request_id: str) -> None:
        from opsloom.approvals.service import audit_entries

        now = clock.now()
        await store.change_approval(
            request_id,
            withdraw("the run that asked for it was cancelled or failed", now),
            now,
            audit=audit_entries(request_id, None, now),
        )

    # Stable names in run histories, whatever this module's layout.
    open_request.__qualname__ = "approval.open"
    look.__qualname__ = "approval.look"
    lapse.__qualname__ = "approval.sla"
    withdraw_request.__qualname__ = "approval.withdraw"
    steps = _Steps(clock, open_request, look, lapse, withdraw_request)
    _BOUND[store] = steps
    return steps


async def approval(
    ctx: Context, request: ApprovalRequest, *, raise_on_deny: bool = False
) -> ApprovalOutcome:
    """Ask people for an approval and wait durably (no worker slot) for the outcome.

    Workflow code: ``outcome = await approval(ctx, request)``. A denial returns an outcome
    with ``approved=False`` and the reason (see the module docstring for the steps it records).

    Raises:
        ApprovalDeniedError: the request was denied or cancelled and ``raise_on_deny`` is set.
    """
    steps = _steps(ctx.store, ctx.clock)
    if request.policy is not None:
        decision = await decide(ctx, request.policy, request.policy_input())
        stages = stages_from_output(decision.output)
    else:
        stages = request.stages
    # Who started the run comes from the run record, never from the request's fields.
    header = {
        **request.attributes(),
        "started_by": ctx.started_by,
        "starter_may_decide": request.starter_may_decide,
        "distinct_approvers": request.distinct_approvers,
    }
    data = await ctx.step(steps.open, header, [s.to_dict() for s in stages])
    request_id = str(data["request_id"])
    # Cancelling (or failing) the run withdraws a request still pending, so nobody is left
    # deciding something no run waits for; a decided request is left as it is.
    ctx.compensate(steps.withdraw, request_id)
    while data["outcome"] is None:
        deadline = data["deadline"]
        timeout = None if deadline is None else max(0.0, deadline - ctx.now().timestamp())
        try:
            await ctx.wait_for(signal_name(request_id), timeout=timeout)
        except WaitTimeoutError:
            data = await ctx.step(steps.lapse, request_id)
        else:
            data = await ctx.step(steps.look, request_id)
    result = ApprovalOutcome.from_dict(data["outcome"])
    if raise_on_deny and not result.approved:
        raise ApprovalDeniedError(result.reason or f"approval {result.status}", result)
    return result


def _request(arguments: dict[str, Any], tables: DecisionTables | None) -> ApprovalRequest:
    policy = None
    if "policy" in arguments:
        if tables is None:
            raise ApprovalError("approval policies need decision tables (none are loaded)")
        policy = tables.get(str(arguments["policy"]), arguments.get("policy_version"))
    return ApprovalRequest(
        title=str(arguments["title"]),
        requester=str(arguments["requester"]),
        subject=arguments.get("subject"),
        risk=arguments.get("risk"),
        impact=arguments.get("impact"),
        stages=tuple(Stage.from_dict(s) for s in arguments.get("stages") or ()),
        policy=policy,
        starter_may_decide=bool(arguments.get("starter_may_decide", False)),
        distinct_approvers=bool(arguments.get("distinct_approvers", False)),
    )


def approval_function(
    tables: DecisionTables | None = None,
) -> Callable[[FunctionCall], Awaitable[Any]]:
    """The ``approval`` catalog function; ``tables`` hold the policies it may name."""
    from opsloom.expr.problem import TaskError
    from opsloom.model.decision import DecisionError

    async def approval_call(call: FunctionCall) -> Any:
        arguments = call.arguments
        try:
            request = _request(arguments, tables)
        except (ApprovalError, DecisionError) as exc:
            raise TaskError.standard(
                "configuration", str(exc), title="Invalid approval request"
            ) from None
        result = await approval(call.ctx, request)
        if arguments.get("raise_on_deny") and not result.approved:
            raise TaskError(
                DENIED_TYPE,
                403,
                title="Approval denied",
                detail=result.reason or f"approval {result.status}",
            )
        return result.to_dict()

    return approval_call


def register_approval(catalog: Catalog, tables: DecisionTables | None = None) -> None:
    """Register ``approval:1.0.0`` on ``catalog`` (policies are looked up in ``tables``)."""
    catalog.register(
        "approval",
        APPROVAL_VERSION,
        approval_function(tables),
        description="Ask people for an approval and wait for the outcome: with {title, "
        "requester, subject?, risk?, impact?, stages | policy, raise_on_deny?}.",
        input_schema=APPROVAL_SCHEMA,
    )


def install_approval(catalog: Catalog, setup: FunctionSetup) -> None:
    """The ``opsloom.functions`` entry point of ``approval:1.0.0``."""
    register_approval(catalog, setup.decision_tables)
