"""Conversation follow-ups: conversations the insights analysis flags open a ticket, tell a
channel or wait for a person's review; and a weekly quality report is posted.

Install it with your team's settings::

    from examples.runbooks.conversation import FollowUpSettings, install
    follow_ups = install(app, FollowUpSettings(channel="#support-quality"))
    await follow_ups.limit(app)  # once, on an open app: the start rate limit

Conversations reach it through the analysis (``POST /api/v1/conversations``, ``opsloom
insights analyze --store``, ``opsloom insights batch``), which stores one
``io.opsloom.conversation.attention.v1`` event per attention rule a conversation matched. The
first of them starts a follow-up run for the conversation; the conversation's other rules
join that run while it **debounces** (waits ``debounce`` seconds for them), so a conversation
that trips three rules gets one ticket, not three. The run then acts on the conversation's
priority, as ``routes`` says:

* ``ticket``: opens a Zendesk ticket (internal note with the rules, insights, advice and
  evidence). Its idempotency key is the conversation and its rules, so a retried or replayed
  step, or a second run for the same rules, gets the ticket already made;
* ``notify``: posts to the team's Slack channel;
* ``review``: asks a reviewer (an approval in the inbox, with the analysis as its subject):
  *approve* means "reviewed, nothing to do", *deny* opens the ticket with the reviewer's reason.

Each rule of a conversation is handled once: its event's id derives from the conversation and
the rule, so analysing the conversation again stores nothing new and starts nothing. Starts
are rate limited (``per_hour``, ``burst``; excess runs queue, none is dropped), and each
connection can carry its own ``rate_limit``.

``conversation-quality-report`` (weekly, ``report_cron``) posts the week's figures: the
conversations analysed, how many needed attention and at which priority, the rules and flags
seen most, and the follow-ups opened.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsloom import App, Context
from opsloom.approvals.approval import approval
from opsloom.approvals.spec import ApprovalRequest, Stage
from opsloom.connectors.builtin import slack, zendesk
from opsloom.errors import WaitTimeoutError
from opsloom.insights.event import ATTENTION, SOURCE
from opsloom.model.trigger import INBOX

WORKFLOW = "conversation-follow-up"
REPORT = "conversation-quality-report"
ACTIONS = ("ticket", "notify", "review")
_ZENDESK_PRIORITY = {"critical": "urgent", "high": "high", "medium": "normal", "low": "low"}


def _default_routes() -> dict[str, tuple[str, ...]]:
    return {
        "critical": ("ticket", "notify"),
        "high": ("ticket",),
        "medium": ("review",),
        "low": ("notify",),
        "info": (),
    }


@dataclass(frozen=True)
class FollowUpSettings:
    """What a team changes: connections, channel, reviewers, routes, debounce, rate limit."""

    zendesk: str = "zendesk"
    slack: str = "slack"
    channel: str = "#support-quality"
    reviewers: tuple[str, ...] = ("support-leads",)
    review_sla: float | None = 86_400.0
    #: Attention priority -> what to do (``ticket``, ``notify``, ``review``).
    routes: dict[str, tuple[str, ...]] = field(default_factory=_default_routes)
    #: Seconds the run waits for the conversation's other rules before acting.
    debounce: float = 60.0
    #: Follow-ups started per hour at most (``None``: no limit), ``burst`` at once.
    per_hour: float | None = 600.0
    burst: int = 20
    #: Where the web UI shows a conversation's analysis (the ticket links to it).
    analysis_url: str = "http://127.0.0.1:8000/api/v1/conversations/{id}/analysis"
    report_cron: str | None = "0 9 * * 1"  # Mondays 09:00 UTC
    requester: str = "conversation-follow-up"

    def __post_init__(self) -> None:
        for priority, actions in self.routes.items():
            odd = [a for a in actions if a not in ACTIONS]
            if odd:
                raise ValueError(
                    f"routes[{priority!r}]: {', '.join(map(repr, odd))} is not one of "
                    f"{', '.join(ACTIONS)}"
                )


class FollowUps:
    """The runbook bound to one team's settings (the workflows are its methods)."""

    def __init__(self, app: App, settings: FollowUpSettings) -> None:
        self.app = app
        self.s = settings

    async def limit(self, app: App | None = None) -> None:
        """Apply the start rate limit (stored: every process on the store obeys it)."""
        per_second = None if self.s.per_hour is None else self.s.per_hour / 3600
        await (app or self.app).limit_rate(WORKFLOW, per_second, self.s.burst)

    # --- the follow-up -------------------------------------------------------------------------

    async def run(self, ctx: Context, event: dict[str, Any]) -> dict[str, Any]:
        """One conversation: collect its rules (debounce), then act on its priority."""
        s = self.s
        found = {event["data"]["rule"]: event["data"]}
        deadline = ctx.now() + timedelta(seconds=s.debounce)
        while (left := (deadline - ctx.now()).total_seconds()) > 0:
            try:
                delivered = await ctx.wait_for(INBOX, timeout=left)
            except WaitTimeoutError:
                break
            later = (delivered or {}).get("event") or delivered or {}
            if later.get("type") == ATTENTION and later.get("data"):
                found.setdefault(later["data"]["rule"], later["data"])
        rules = sorted(found)
        first = found[rules[0]]
        conversation = first["conversation"]
        priority = max((d["priority"] or "info" for d in found.values()), key=_rank)
        actions = s.routes.get(priority, ())
        outcome: dict[str, Any] = {
            "conversation": conversation["id"],
            "rules": rules,
            "priority": priority,
            "actions": list(actions),
        }
        await ctx.set_labels({"conversation": conversation["id"][:256], "priority": priority})
        text = self._describe(found, conversation)
        if "notify" in actions:
            posted = await ctx.step(
                slack.post_message,
                connection=s.slack,
                channel=s.channel,
                text=f"Conversation {conversation['id']} needs attention ({priority}): "
                + ", ".join(rules),
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
            )
            outcome["message"] = posted["ts"]
        if "review" in actions:
            decided = await approval(
                ctx,
                ApprovalRequest(
                    title=(
                        f"Review conversation {conversation['id']} ({', '.join(rules)}): "
                        "approve if nothing needs doing, deny to open a ticket"
                    ),
                    requester=s.requester,
                    subject={"conversation": conversation, "findings": found},
                    risk=priority,
                    stages=(Stage("review", groups=s.reviewers, sla=s.review_sla, on_sla="deny"),),
                ),
            )
            outcome["review"] = {"status": decided.status.value, "by": decided.decided_by}
            if not decided.approved:
                reason = decided.reason or "no reviewer answered in time"
                text += f"\n\nReviewer ({decided.decided_by or 'SLA'}): {reason}"
                actions = (*actions, "ticket")
        if "ticket" in actions:
            ticket = await ctx.step(self.open_ticket, conversation["id"], rules, priority, text)
            outcome["ticket"] = ticket["id"]
        return outcome

    def _describe(self, found: dict[str, dict[str, Any]], conversation: dict[str, Any]) -> str:
        lines = [f"Conversation {conversation['id']}"]
        lines.append(self.s.analysis_url.format(id=conversation["id"]))
        for rule, data in sorted(found.items()):
            lines.append(f"\n{rule} ({data['priority']}): {data.get('insight') or ''}")
            if data.get("recommendation"):
                lines.append(f"  advice: {data['recommendation']}")
            for flag in data.get("flags") or []:
                evidence = str(flag.get("evidence") or "")[:200]
                quote = f": {json.dumps(evidence)}" if evidence else ""
                lines.append(f"  flag {flag.get('code')} ({flag.get('severity')}){quote}")
        return "\n".join(lines)

    async def open_ticket(
        self, conversation: str, rules: list[str], priority: str, text: str
    ) -> dict[str, Any]:
        """A Zendesk ticket, once per conversation and rules (the Idempotency-Key)."""
        return await self.app.connections.call(
            zendesk.open_ticket,
            self.s.zendesk,
            {
                "subject": f"Conversation {conversation} needs follow-up: {', '.join(rules)}",
                "body": text,
                "public": False,
                "priority": _ZENDESK_PRIORITY.get(priority, "normal"),
                "type": "problem",
                "tags": ["opsloom", "conversation-follow-up", *rules],
                "external_id": f"conversation:{conversation}",
            },
            idempotency_key=f"conversation:{conversation}:{'+'.join(rules)}",
        )

    # --- the weekly report ---------------------------------------------------------------------

    async def report(self, ctx: Context, input: Any = None) -> dict[str, Any]:
        """The last 7 days of analyses and follow-ups, posted to the channel."""
        until = ctx.now()
        figures = await ctx.step(self.figures, (until - timedelta(days=7)).timestamp())
        lines = [
            f"*Conversation quality, week to {until.strftime('%Y-%m-%d')}*",
            f"{figures['conversations']} conversations analysed, "
            f"{figures['attention']} needed attention "
            f"({figures['attention_rate']:.0%}): "
            + (", ".join(f"{k} {v}" for k, v in figures["priorities"].items()) or "none"),
            "Rules: " + (", ".join(f"{k} {v}" for k, v in figures["rules"]) or "none"),
            "Flags: " + (", ".join(f"{k} {v}" for k, v in figures["flags"]) or "none"),
            f"Follow-ups: {figures['follow_ups']} runs, {figures['tickets']} tickets opened",
        ]
        posted = await ctx.step(
            slack.post_message,
            connection=self.s.slack,
            channel=self.s.channel,
            text="\n".join(lines),
        )
        return {**figures, "message": posted["ts"]}

    async def figures(self, since: float) -> dict[str, Any]:
        """Counts of the stored analyses and of the follow-up runs since ``since``."""
        from opsloom.services.conversation import stored_results

        latest: dict[str, dict[str, Any]] = {}
        async for result, moment in stored_results(self.app):
            if moment is not None and moment.timestamp() < since:
                break
            latest.setdefault(result["conversation"]["id"], result)  # newest analysis each
        priorities: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        flags: Counter[str] = Counter()
        for result in latest.values():
            attention = result["attention"]
            if attention["needed"]:
                priorities[attention["priority"]] += 1
                rules.update(attention["reasons"])
            flags.update({f["code"] for f in result["flags"]})
        runs = [
            r
            for r in await self.app.list_runs(workflow=WORKFLOW, limit=10_000)
            if r.created_at >= since
        ]
        tickets = 0
        for run in runs:
            if run.output and isinstance(run.output, dict) and run.output.get("ticket"):
                tickets += 1
        total = len(latest)
        needed = sum(priorities.values())
        return {
            "since": datetime.fromtimestamp(since, UTC).isoformat(),
            "conversations": total,
            "attention": needed,
            "attention_rate": needed / total if total else 0.0,
            "priorities": dict(sorted(priorities.items(), key=lambda kv: -_rank(kv[0]))),
            "rules": rules.most_common(5),
            "flags": flags.most_common(5),
            "follow_ups": len(runs),
            "tickets": tickets,
        }


def _rank(priority: str) -> int:
    order = ("info", "low", "medium", "high", "critical")
    return order.index(priority) if priority in order else 0


def install(app: App, settings: FollowUpSettings | None = None) -> FollowUps:
    """Register the follow-up (started by attention events) and the weekly report."""
    s = settings or FollowUpSettings()
    follow_ups = FollowUps(app, s)
    app.workflow(name=WORKFLOW)(follow_ups.run)
    # One open follow-up per conversation: its other rules join it (the debounce).
    app.trigger(WORKFLOW, on={"type": ATTENTION, "source": SOURCE}, key=".subject")
    app.workflow(name=REPORT, schedule=s.report_cron)(follow_ups.report)
    return follow_ups
