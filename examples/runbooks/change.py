"""Change approval: a change request, scored for risk, approved by the stages its risk calls
for, executed in a change window, verified, rolled back when it breaks something, recorded.

Install it on your app with your team's settings (the services, the window, what executes a
change and what takes it back)::

    from examples.runbooks.change import ChangeSettings, install
    install(app, ChangeSettings(services={"acme/checkout": {"tier": 1, "team": "payments"}}))

A change request comes from the API (``opsloom start change-approval --input '{...}'``, or
``POST /api/v1/runs``) or from GitHub: a pull request labelled ``change`` (``pr_label``)
posted to ``/hooks/github``. The run:

1. records the request: a Jira ticket (project ``CHG``) and, for a pull request, a comment;
2. scores its risk with ``examples/decisions/change-risk.yaml`` (points for production, schema
   or infrastructure changes, size, no rollback, tier-1 services; score = points / 100, at most
   1) and picks the approval stages with ``examples/decisions/approval-policy.yaml`` (peer
   review, service owner, change board, security);
3. asks for the approvals: the stages at once (``parallel_stages``) or one after another, each
   with an SLA that escalates to ``escalate_to`` and then denies; a development change needs
   none; a denial ends the request (recorded, nothing executed);
4. waits for the change window (``window``; an ``emergency`` change does not wait);
5. executes the change (any connector action: a GitHub workflow that deploys, a Kubernetes
   scale, an SSM command…) and registers its rollback as compensation;
6. verifies with Prometheus that nothing fires for the service (``verify_query``) for
   ``verify_checks`` times ``verify_interval``; when something does, the run fails and the rollback
   runs (also when the run is cancelled or the execution itself fails);
7. records the outcome on the ticket, on the pull request and as an
   ``io.opsloom.change.recorded.v1`` event (``opsloom events export`` for an audit).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from opsloom import App, Context
from opsloom.approvals.approval import approval
from opsloom.approvals.spec import ApprovalRequest, Approvers, stages_from_output
from opsloom.connectors.builtin import github, jira, prometheus
from opsloom.connectors.sdk import Action
from opsloom.decisions.decide import decide
from opsloom.decisions.loader import load_table_file
from opsloom.errors import OpsloomError

WORKFLOW = "change-approval"
PULL_REQUEST = "io.opsloom.github.pull_request.v1"
RECORDED = "io.opsloom.change.recorded.v1"
SOURCE = "opsloom/runbooks/change"
DECISIONS = Path(__file__).resolve().parents[1] / "decisions"
ENVIRONMENTS = ("development", "staging", "production")


class ChangeFailedError(OpsloomError):
    """The change did not pass its verification (its rollback runs as compensation)."""

    code = "change_failed"


class ChangeRequestError(OpsloomError):
    """A change request misses what the runbook needs."""

    code = "invalid_change_request"


@dataclass(frozen=True)
class ChangeWindow:
    """When changes may run: days of the week (0 = Monday) and a time of day span, in UTC."""

    weekdays: tuple[int, ...] = (0, 1, 2, 3)
    start: time = time(9, 0)
    end: time = time(16, 0)

    def next_start(self, now: datetime) -> datetime | None:
        """None when ``now`` is inside the window, else when the next window opens."""
        for days in range(8):
            day = (now + timedelta(days=days)).date()
            if day.weekday() not in self.weekdays:
                continue
            opens = datetime.combine(day, self.start, tzinfo=now.tzinfo)
            closes = datetime.combine(day, self.end, tzinfo=now.tzinfo)
            if opens <= now < closes:
                return None
            if now < opens:
                return opens
        raise ChangeRequestError(f"the change window {self} never opens")


@dataclass(frozen=True)
class ChangeAction:
    """One connector action and its input made from the change request.

    Attributes:
        action: ``github.dispatch_workflow``, ``kubernetes.scale``, ``aws.ssm_send_command``…
        connection: the connection it runs on.
        arguments: the action's input from the change (its ``repository``, ``ref``,
            ``service``, ``parameters``…).
        describe: what it does, in the records.
    """

    action: Action[Any, Any]
    connection: str
    arguments: Callable[[dict[str, Any]], dict[str, Any]]
    describe: str


def _workflow_run(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def arguments(change: dict[str, Any]) -> dict[str, Any]:
        owner, repo = str(change["repository"]).split("/", 1)
        inputs = {"change": str(change["id"]), "environment": change["environment"]}
        return {
            "owner": owner,
            "repo": repo,
            "workflow": name,
            "ref": change.get("ref") or "main",
            "inputs": inputs,
        }

    return arguments


#: By default a change runs the repository's ``deploy.yml`` workflow at the change's ref, and
#: is taken back by its ``rollback.yml``.
DEPLOY = ChangeAction(github.dispatch_workflow, "github", _workflow_run("deploy.yml"), "deploy")
ROLLBACK = ChangeAction(
    github.dispatch_workflow, "github", _workflow_run("rollback.yml"), "roll back"
)


@dataclass(frozen=True)
class ChangeSettings:
    """What a team changes: services, tables, approvals, window, execution, verification."""

    #: Services by repository (``owner/repo``) or name: ``tier``, ``team``, ``dataClass``.
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    risk: Path = DECISIONS / "change-risk.yaml"
    policy: Path = DECISIONS / "approval-policy.yaml"
    #: Every stage at the same time (True) or one after another.
    parallel_stages: bool = True
    stage_sla: float = 4 * 3600.0
    #: Who takes over a stage nobody answered, one group per rung; then it is denied.
    escalate_to: tuple[str, ...] = ("engineering-managers",)
    window: ChangeWindow = field(default_factory=ChangeWindow)
    execute: ChangeAction = DEPLOY
    rollback: ChangeAction | None = ROLLBACK
    prometheus: str = "prometheus"
    #: Prometheus query that must stay empty after the change (``{service}`` is replaced).
    verify_query: str = 'ALERTS{{alertstate="firing",service="{service}"}}'
    verify_checks: int = 10
    verify_interval: float = 30.0
    jira: str = "jira"
    jira_project: str = "CHG"
    github: str | None = "github"
    #: The label that makes a pull request a change request.
    pr_label: str = "change"
    #: Who the approval requests are from when the change names nobody.
    requester: str = "change-approval"


def _from_pull_request(event: dict[str, Any]) -> dict[str, Any]:
    """A change request from GitHub's ``pull_request`` webhook payload."""
    raw = event["data"]["raw"]
    pr = raw["pull_request"]
    labels = {label["name"] for label in pr.get("labels") or []}
    environment = next((e for e in ENVIRONMENTS if e in labels), "production")
    return {
        "id": f"{raw['repository']['full_name']}#{pr['number']}",
        "title": pr["title"],
        "requester": pr["user"]["login"],
        "repository": raw["repository"]["full_name"],
        "pull_request": pr["number"],
        "ref": pr["head"]["ref"],
        "environment": environment,
        "kind": next((k for k in ("schema", "infrastructure", "config") if k in labels), "deploy"),
        "lines": int(pr.get("additions") or 0) + int(pr.get("deletions") or 0),
        "rollback": "no-rollback" not in labels,
        "emergency": "emergency" in labels,
    }


class Change:
    """The runbook bound to one team's settings (the workflow is :meth:`run`)."""

    def __init__(self, settings: ChangeSettings) -> None:
        self.settings = settings
        self.risk = load_table_file(settings.risk)
        self.policy = load_table_file(settings.policy)

    def request(self, input: Any) -> dict[str, Any]:
        """The change request of a run's input (a request, or a pull request event)."""
        if isinstance(input, dict) and input.get("type") == PULL_REQUEST:
            change = _from_pull_request(input)
        elif isinstance(input, dict):
            change = dict(input)
        else:
            raise ChangeRequestError("a change request is a JSON object")
        for key in ("id", "title", "environment"):
            if not change.get(key):
                raise ChangeRequestError(f"the change request has no {key!r}")
        if change["environment"] not in ENVIRONMENTS:
            raise ChangeRequestError(
                f"environment {change['environment']!r} is not one of {list(ENVIRONMENTS)}"
            )
        services = self.settings.services
        name = change.get("service")
        known = services.get(str(change.get("repository"))) or services.get(str(name)) or {}
        service = {**known, **(name if isinstance(name, dict) else {})}
        service.setdefault("name", str(name or change.get("repository") or "unknown"))
        if isinstance(change.get("repository"), str) and "/" in change["repository"]:
            service["name"] = known.get("name") or change["repository"].split("/", 1)[1]
        change["service"] = service
        change.setdefault("requester", self.settings.requester)
        change.setdefault("kind", "deploy")
        change.setdefault("rollback", self.settings.rollback is not None)
        return change

    async def _note(self, ctx: Context, record: dict[str, Any], text: str) -> None:
        """One line of the record: the ticket, the pull request."""
        s = self.settings
        record["timeline"].append(f"{ctx.now().isoformat()}  {text}")
        await ctx.step(jira.add_comment, connection=s.jira, issue=record["ticket"], body=text)
        change = record["change"]
        if s.github and change.get("pull_request"):
            owner, repo = change["repository"].split("/", 1)
            await ctx.step(
                github.comment,
                connection=s.github,
                owner=owner,
                repo=repo,
                number=change["pull_request"],
                body=f"**Change {change['id']}**: {text}",
            )

    async def _approve(self, ctx: Context, change: dict[str, Any], score: float) -> Any:
        s = self.settings
        request = {**change, "risk": score}
        stages = stages_from_output((await decide(ctx, self.policy, request)).output)
        ladder = tuple(Approvers(groups=(g,)) for g in s.escalate_to)
        stages = tuple(
            replace(
                stage,
                sla=s.stage_sla,
                escalate_to=ladder,
                on_sla="deny",
                parallel=s.parallel_stages and index > 0,
            )
            for index, stage in enumerate(stages)
        )
        if not stages:
            return None
        return await approval(
            ctx,
            ApprovalRequest(
                title=f"Change {change['id']}: {change['title']}",
                requester=change["requester"],
                subject=change,
                risk=score,
                stages=stages,
                distinct_approvers=True,
            ),
        )

    async def _verify(self, ctx: Context, service: str) -> bool:
        s = self.settings
        query = s.verify_query.format(service=service)
        for check in range(s.verify_checks):
            found = await ctx.step(prometheus.query, connection=s.prometheus, query=query)
            if found["result"]:
                return False
            if check + 1 < s.verify_checks:
                await ctx.sleep(s.verify_interval)
        return True

    async def _record(self, ctx: Context, record: dict[str, Any], outcome: str) -> dict[str, Any]:
        record["outcome"] = outcome
        await self._note(ctx, record, f"outcome: {outcome}")
        await ctx.emit(
            {
                "type": RECORDED,
                "source": SOURCE,
                "subject": str(record["change"]["id"]),
                "data": {"run": ctx.run_id, **record},
            }
        )
        return {k: record[k] for k in ("outcome", "ticket", "risk", "approval", "stages")}

    async def run(self, ctx: Context, input: Any) -> dict[str, Any]:
        """The workflow: one change request, from its arrival to its record."""
        s = self.settings
        change = self.request(input)
        service = change["service"]["name"]
        points = (await decide(ctx, self.risk, change)).output or 0
        score = min(1.0, round(float(points) / 100, 2))
        ticket = await ctx.step(
            jira.create_issue,
            connection=s.jira,
            project=s.jira_project,
            summary=f"Change {change['id']}: {change['title']}"[:255],
            description=json.dumps(change, indent=2, default=str),
            labels=["change", change["environment"]],
        )
        record: dict[str, Any] = {
            "change": change,
            "ticket": ticket["key"],
            "risk": score,
            "approval": None,
            "stages": [],
            "timeline": [],
        }
        await self._note(ctx, record, f"requested by {change['requester']}; risk {score}")
        decided = await self._approve(ctx, change, score)
        if decided is not None:
            record["approval"] = decided.status.value
            record["stages"] = [
                {k: stage.get(k) for k in ("name", "status", "decided_by", "escalations")}
                for stage in decided.stages
            ]
            if not decided.approved:
                await self._note(ctx, record, f"rejected by {decided.decided_by}: {decided.reason}")
                return await self._record(ctx, record, "rejected")
            await self._note(ctx, record, f"approved ({len(decided.stages)} stage(s))")
        else:
            record["approval"] = "not needed"
        opens = None if change.get("emergency") else s.window.next_start(ctx.now())
        if opens is not None:
            await self._note(ctx, record, f"waiting for the change window at {opens.isoformat()}")
            await ctx.sleep_until(opens)
        executed = await ctx.step(
            s.execute.action, connection=s.execute.connection, **s.execute.arguments(change)
        )
        if s.rollback is not None and change.get("rollback", True):
            undo = s.rollback
            ctx.compensate(undo.action, connection=undo.connection, **undo.arguments(change))
        record["executed"] = executed
        await self._note(ctx, record, f"executed: {s.execute.describe}; verifying")
        if not await self._verify(ctx, service):
            await self._record(ctx, record, "failed verification: rolled back")
            raise ChangeFailedError(f"change {change['id']} failed its verification on {service}")
        return await self._record(ctx, record, "done")


def install(app: App, settings: ChangeSettings | None = None) -> Change:
    """Register the runbook on ``app``; pull requests labelled ``pr_label`` start it."""
    change = Change(settings or ChangeSettings())
    app.workflow(name=WORKFLOW)(change.run)
    label = json.dumps(change.settings.pr_label)
    app.trigger(
        WORKFLOW,
        on={
            "type": PULL_REQUEST,
            "source": "/hooks/github",
            "where": f'.data.action == "labeled" and .data.raw.label.name == {label}',
        },
        # One change per pull request at a time.
        key='.subject + "#" + (.data.raw.pull_request.number | tostring)',
    )
    return change
