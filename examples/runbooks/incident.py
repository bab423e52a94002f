"""Incident response: from a firing alert to a postmortem ticket, asking a person only to
approve the risky remediation.

Install it on your app with the settings of your team (connection names, the routing table,
who approves, the remediation)::

    from examples.runbooks.incident import IncidentSettings, install
    install(app, IncidentSettings(repository="acme/checkout", approvers=("sre-leads",)))

A firing alert posted to ``/hooks/alertmanager``, ``/hooks/grafana`` (a Grafana Alerting contact
point) or ``/hooks/datadog`` (a Datadog monitor's webhook) starts a run; while it is open, other
alerts of the same service (and the alert's repeats) reach that run instead of opening another
incident. The run:

1. routes the alert with a decision table (team, channel, whether to page);
2. enriches it: Prometheus (the alert's series over the last 30 minutes, for Alertmanager's
   alerts), GitHub (recent deployments), the runbook link of its annotations, the sender's
   dashboard, panel or monitor links;
3. opens the incident: a live status message in the team's Slack channel (updated in place at
   every phase, with a thread of what happened) and a PagerDuty page;
4. waits for someone to acknowledge the page (PagerDuty's webhook); nobody within
   ``ack_timeout``: pages the escalation service and says so in the channel;
5. diagnoses: how long it fires, the deployment just before it, the current value;
6. silences an Alertmanager alert while it works (expired again whatever happens), asks
   the approvers for the remediation when it is risky and runs it (any connector action: a
   Kubernetes rollout restart, an SSH command, an AWS reboot, a GitHub workflow…);
7. verifies recovery: with Prometheus for an Alertmanager alert (it no longer fires), by the
   sender's own resolved notification for a Grafana or Datadog alert; then resolves
   everywhere: PagerDuty, the silence, the status message;
8. files a postmortem ticket in Jira with the timeline from the run's own history.

A denied remediation, or one that does not bring the service back, hands the incident over to
the on-call person: the page stays open and the channel says why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsloom import App, Context
from opsloom.approvals.approval import approval
from opsloom.approvals.spec import ApprovalRequest, Stage
from opsloom.connectors.builtin import alertmanager, github, jira, pagerduty, prometheus, slack
from opsloom.connectors.sdk import Action
from opsloom.decisions.decide import decide
from opsloom.decisions.loader import load_table_file
from opsloom.engine.context import current_step
from opsloom.errors import ConfigurationError, StepFailedError, WaitTimeoutError
from opsloom.model.decision import DecisionTable

WORKFLOW = "incident-response"
ROUTING = Path(__file__).resolve().parents[1] / "decisions" / "alert-routing.yaml"
ACKNOWLEDGED = "io.opsloom.alert.acknowledged.v1"
FIRING = "io.opsloom.alert.firing.v1"
RESOLVED = "io.opsloom.alert.resolved.v1"
#: The webhook sources whose firing alerts start the runbook (``/hooks/<name>``).
SOURCES = ("alertmanager", "grafana", "datadog")
#: Links of an alert worth showing in the diagnosis, by ``rel``.
SHOWN_LINKS = ("dashboard", "panel", "monitor")


@dataclass(frozen=True)
class Remediation:
    """What fixes the service: one connector action, its input made from the incident.

    Attributes:
        action: the action (``kubernetes.rollout_restart``, ``ssh.run``, ``aws.ec2_reboot``,
            ``github.dispatch_workflow``…).
        connection: the connection it runs on.
        arguments: the action's input from the incident (``service``, ``labels``, ``alert``).
        describe: what it does, in the approval request and the channel.
        risky: ask the approvers first.
    """

    action: Action[Any, Any]
    connection: str
    arguments: Callable[[dict[str, Any]], dict[str, Any]]
    describe: str
    risky: bool = True


@dataclass(frozen=True)
class IncidentSettings:
    """What a team changes: connection names, routing, approvers, timings, the remediation."""

    prometheus: str = "prometheus"
    alertmanager: str = "alertmanager"
    pagerduty: str = "pagerduty"
    #: A second PagerDuty connection (another service) paged when nobody acknowledges.
    escalation: str | None = "pagerduty-escalation"
    slack: str = "slack"
    jira: str = "jira"
    jira_project: str = "OPS"
    github: str | None = "github"
    #: ``owner/repo`` whose deployments are looked at.
    repository: str | None = None
    routing: Path = ROUTING
    approvers: tuple[str, ...] = ("sre-leads",)
    approval_sla: float = 1800.0
    ack_timeout: float = 900.0
    silence_minutes: int = 60
    verify_checks: int = 10
    verify_interval: float = 30.0
    remediation: Remediation | None = None
    #: Who the approval request is from (never one of the approvers).
    requester: str = "incident-response"
    #: Which senders' alerts start an incident: ``alertmanager``, ``grafana``, ``datadog``.
    sources: tuple[str, ...] = SOURCES


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Incident:
    """The runbook bound to one team's settings (the workflow is :meth:`run`)."""

    def __init__(self, app: App, settings: IncidentSettings) -> None:
        self.app = app
        self.settings = settings
        self.routing: DecisionTable = load_table_file(settings.routing)

        async def history(run_id: str) -> list[str]:
            """The run's steps recorded so far, one line each (the postmortem's timeline)."""
            run = await app.store.get_run(run_id, with_steps=True)
            here = current_step().seq
            lines = []
            for step in [] if run is None else run.steps:
                if step.seq < here and step.completed_at is not None:
                    when = _iso(datetime.fromtimestamp(step.completed_at, tz=UTC))
                    lines.append(f"{when}  {step.name}: {step.status}")
            return lines

        history.__qualname__ = "incident.history"  # a stable name in run histories
        self.history = history

    # --- the channel ------------------------------------------------------------------------

    async def _status(self, ctx: Context, state: dict[str, Any], phase: str) -> None:
        """Update the live status message and add the phase to its thread."""
        s = self.settings
        state["phase"] = phase
        state["timeline"].append(f"{_iso(ctx.now())}  {phase}")
        headline = f":rotating_light: *{state['title']}* — {phase}"
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": state["facts"]}]},
        ]
        if state.get("ts") is None:
            posted = await ctx.step(
                slack.post_message,
                connection=s.slack,
                channel=state["channel"],
                text=f"{state['title']}: {phase}",
                blocks=blocks,
            )
            state["ts"], state["channel"] = posted["ts"], posted["channel"]
            return
        await ctx.step(
            slack.update_message,
            connection=s.slack,
            channel=state["channel"],
            ts=state["ts"],
            text=f"{state['title']}: {phase}",
            blocks=blocks,
        )
        await ctx.step(
            slack.post_message,
            connection=s.slack,
            channel=state["channel"],
            text=phase,
            thread_ts=state["ts"],
        )

    # --- the phases -------------------------------------------------------------------------

    async def _enrich(
        self, ctx: Context, name: str, service: str, *, prometheus_alert: bool
    ) -> dict[str, Any]:
        s = self.settings
        series: dict[str, Any] = {"result": []}
        if prometheus_alert:  # Grafana's and Datadog's rules have no ALERTS series
            now = ctx.now().timestamp()
            series = await ctx.step(
                prometheus.query_range,
                connection=s.prometheus,
                query=f'ALERTS{{alertname="{name}",alertstate="firing"}}',
                start=now - 1800,
                end=now,
                step=15,
            )
        deployments: list[dict[str, Any]] = []
        if s.github and s.repository:
            owner, repo = s.repository.split("/", 1)
            try:
                found = await ctx.step(
                    github.list_deployments, connection=s.github, owner=owner, repo=repo, per_page=5
                )
                deployments = found["deployments"]
            except StepFailedError:
                deployments = []  # nice to know, not worth stopping the response for
        points = [p for r in series["result"] for p in r.get("values", [])]
        return {"firing_points": len(points), "deployments": deployments, "service": service}

    async def _acknowledged(self, ctx: Context, subscription: str) -> bool:
        try:
            await ctx.wait_for(f"events:{subscription}", timeout=self.settings.ack_timeout)
        except WaitTimeoutError:
            return False
        return True

    async def _resolved_at_source(self, ctx: Context, alert: dict[str, Any]) -> bool:
        """Whether the sender says the alert is resolved (Grafana, Datadog) within the time
        the Prometheus checks would take; a resolution that came in earlier is in the run's
        inbox and is found at once."""
        s = self.settings
        try:
            await ctx.wait_for_event(
                {"type": RESOLVED, "source": alert["source"], "subject": alert["fingerprint"]},
                timeout=s.verify_checks * s.verify_interval,
            )
        except WaitTimeoutError:
            return False
        return True

    async def _recovered(self, ctx: Context, name: str, service: str) -> bool:
        s = self.settings
        query = f'ALERTS{{alertname="{name}",alertstate="firing",service="{service}"}}'
        for check in range(s.verify_checks):
            found = await ctx.step(prometheus.query, connection=s.prometheus, query=query)
            if not found["result"]:
                return True
            if check + 1 < s.verify_checks:
                await ctx.sleep(s.verify_interval)
        return False

    async def run(self, ctx: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The workflow: one incident, from its first firing alert to the postmortem."""
        s = self.settings
        alert = event["data"]
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        origin = alert.get("source") or event.get("source") or "/hooks/alertmanager"
        from_prometheus = origin == "/hooks/alertmanager"
        # Grafana names its alerts with the alertname label; a Datadog monitor by its title.
        name = labels.get("alertname") or alert.get("summary") or "alert"
        service = labels.get("service") or labels.get("instance") or labels.get("host") or name
        route = (await decide(ctx, self.routing, alert)).output or {}
        state: dict[str, Any] = {
            "title": f"{name} on {service}",
            "channel": route.get("channel") or "#incidents",
            "facts": f"severity {alert.get('severity')} · team {route.get('team')}"
            f" · from {origin.rsplit('/', 1)[-1]}",
            "timeline": [],
            "ts": None,
        }
        outcome: dict[str, Any] = {"service": service, "alert": name, "team": route.get("team")}
        await self._status(ctx, state, "opened: looking into it")
        facts = await self._enrich(ctx, name, service, prometheus_alert=from_prometheus)
        runbook = annotations.get("runbook_url")
        recent = facts["deployments"][:1]
        diagnosis = [f"{alert.get('summary') or name}"]
        if recent:
            d = recent[0]
            diagnosis.append(f"last deployment: {d['ref']} ({d['sha'][:7]}) at {d['created_at']}")
        if runbook:
            diagnosis.append(f"runbook: {runbook}")
        for link in alert.get("links") or []:
            if link.get("rel") in SHOWN_LINKS:
                diagnosis.append(f"{link['rel']}: {link['href']}")
        if annotations.get("query"):  # a Datadog monitor's query
            diagnosis.append(f"monitor query: {annotations['query']}")
        if from_prometheus:
            diagnosis.append(f"firing samples in the last 30 min: {facts['firing_points']}")
        state["facts"] += "".join(f" · {line}" for line in diagnosis[1:])

        dedup = str(alert.get("fingerprint") or event.get("subject") or service)
        if route.get("page", True):
            # Subscribed before paging: an acknowledgement quicker than this run is not missed.
            acks = await ctx.subscribe(
                [
                    {
                        "type": ACKNOWLEDGED,
                        "where": f".data.labels.incident_key == {json.dumps(dedup)}",
                    }
                ]
            )
            page = await ctx.step(
                pagerduty.trigger,
                connection=s.pagerduty,
                summary=f"{state['title']}: {alert.get('summary') or name}",
                source=service,
                severity=_severity(alert.get("severity")),
                dedup_key=dedup,
                custom_details={"labels": labels, "diagnosis": diagnosis},
            )
            outcome["page"] = page["dedup_key"]
            await self._status(ctx, state, "paged the on-call person")
            acked = await self._acknowledged(ctx, acks)
            if not acked and s.escalation:
                await ctx.step(
                    pagerduty.trigger,
                    connection=s.escalation,
                    summary=f"ESCALATED (not acknowledged): {state['title']}",
                    source=service,
                    severity="critical",
                    dedup_key=dedup,
                )
                outcome["escalated"] = True
                await self._status(ctx, state, "nobody acknowledged: escalated")
                acked = await self._acknowledged(ctx, acks)
            await ctx.unsubscribe(acks)
            outcome["acknowledged"] = acked
            if acked:
                await self._status(ctx, state, "acknowledged")

        outcome["diagnosis"] = diagnosis
        await self._status(ctx, state, "diagnosis: " + "; ".join(diagnosis))
        fix = s.remediation
        if fix is None:
            outcome["remediated"] = False
            await self._status(ctx, state, "no automatic remediation: over to on-call")
            return await self._close(ctx, state, outcome, resolved=False)

        silence: str | None = None
        if from_prometheus:  # Grafana and Datadog alerts are muted at their sender, if at all
            created = await ctx.step(
                alertmanager.create_silence,
                connection=s.alertmanager,
                matchers=[
                    {"name": "alertname", "value": name},
                    *([{"name": "service", "value": service}] if "service" in labels else []),
                ],
                minutes=s.silence_minutes,
                comment=f"opsloom incident run {ctx.run_id}: remediating",
            )
            silence = created["silence_id"]
            ctx.compensate(
                alertmanager.expire_silence, connection=s.alertmanager, silence_id=silence
            )
            await self._status(ctx, state, f"silenced while remediating ({s.silence_minutes} min)")
        if fix.risky:
            await self._status(
                ctx, state, f"asking {', '.join(s.approvers)} to approve: {fix.describe}"
            )
            decided = await approval(
                ctx,
                ApprovalRequest(
                    title=f"{fix.describe} for {state['title']}",
                    requester=s.requester,
                    subject={"service": service, "alert": name, "diagnosis": diagnosis},
                    risk="high",
                    stages=(
                        Stage(
                            "remediation",
                            groups=s.approvers,
                            sla=s.approval_sla,
                            on_sla="deny",
                        ),
                    ),
                ),
            )
            outcome["approval"] = decided.status.value
            if not decided.approved:
                await self._unsilence(ctx, silence)
                outcome["remediated"] = False
                reason = f"{decided.decided_by}: {decided.reason}"
                await self._status(ctx, state, f"remediation denied by {reason}; over to on-call")
                return await self._close(ctx, state, outcome, resolved=False)
        incident = {"service": service, "labels": labels, "alert": alert}
        done = await ctx.step(fix.action, connection=fix.connection, **fix.arguments(incident))
        outcome["remediation"] = done
        await self._status(ctx, state, f"remediated: {fix.describe}; verifying")
        if from_prometheus:
            recovered = await self._recovered(ctx, name, service)
        else:
            recovered = await self._resolved_at_source(ctx, alert)
        await self._unsilence(ctx, silence)
        outcome["remediated"] = recovered
        if not recovered:
            await self._status(ctx, state, "still firing after the remediation: over to on-call")
            return await self._close(ctx, state, outcome, resolved=False)
        if "page" in outcome:
            await ctx.step(pagerduty.resolve, connection=s.pagerduty, dedup_key=outcome["page"])
        await self._status(ctx, state, "recovered and resolved")
        return await self._close(ctx, state, outcome, resolved=True)

    async def _unsilence(self, ctx: Context, silence: str | None) -> None:
        if silence is not None:
            await ctx.step(
                alertmanager.expire_silence,
                connection=self.settings.alertmanager,
                silence_id=silence,
            )

    async def _close(
        self, ctx: Context, state: dict[str, Any], outcome: dict[str, Any], *, resolved: bool
    ) -> dict[str, Any]:
        s = self.settings
        history = await ctx.step(self.history, ctx.run_id)
        lines = [*state["timeline"], "", "Steps of the run:", *history]
        ticket = await ctx.step(
            jira.create_issue,
            connection=s.jira,
            project=s.jira_project,
            summary=f"Postmortem: {state['title']}",
            issue_type="Task",
            description="\n".join(lines),
        )
        await ctx.step(
            slack.post_message,
            connection=s.slack,
            channel=state["channel"],
            text=f"Postmortem ticket: {ticket['key']}",
            thread_ts=state["ts"],
        )
        return {
            **outcome,
            "resolved": resolved,
            "postmortem": ticket["key"],
            "phase": state["phase"],
        }


def _severity(value: Any) -> str:
    return value if value in ("critical", "error", "warning", "info") else "error"


def install(app: App, settings: IncidentSettings | None = None) -> Incident:
    """Register the runbook on ``app`` and start it from the firing alerts of its sources."""
    incident = Incident(app, settings or IncidentSettings())
    unknown = sorted(set(incident.settings.sources) - set(SOURCES))
    if unknown:
        raise ConfigurationError(
            f"incident sources {unknown} are not alert senders; choose from {list(SOURCES)}"
        )
    app.workflow(name=WORKFLOW)(incident.run)
    app.trigger(
        WORKFLOW,
        on=[{"type": FIRING, "source": f"/hooks/{name}"} for name in incident.settings.sources],
        mode="any",
        # One incident per service at a time: the service's other alerts join the open run.
        key=".data.labels.service // .subject",
    )
    return incident
