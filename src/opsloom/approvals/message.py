"""What approvers see: a request rendered for Slack (Block Kit), e-mail and Teams cards.

Pure functions of a request as :func:`~opsloom.approvals.service.request_view` shows it. A
Slack message is rendered for the stage and escalation level it was posted for: while that
stage is open at that level it carries the Approve and Deny buttons (``action_id``
``approve``/``deny``, ``value`` the task id: the callbacks of :mod:`opsloom.approvals.slack`)
and an "Ask the requester" input that sends the question when Enter is pressed; once the
stage is decided, escalated past that level, paused by a question or the request ended, the
same message is re-rendered without them, saying what happened.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Longest subject shown, in characters of its JSON.
SUBJECT_LIMIT = 1500
#: Block id prefix of the question input (its block id carries the task id).
ASK_BLOCK = "ask:"


def _subject(view: dict[str, Any]) -> str | None:
    subject = view.get("subject")
    if subject is None:
        return None
    text = json.dumps(subject, indent=1, sort_keys=True, default=str)
    return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 1] + "…"


def _who(approvers: dict[str, list[str]]) -> str:
    parts = [*approvers.get("users", []), *(f"group {g}" for g in approvers.get("groups", []))]
    return ", ".join(parts) or "nobody"


def _facts(view: dict[str, Any], stage: dict[str, Any]) -> list[tuple[str, str]]:
    facts = [("Requested by", str(view["requester"])), ("Stage", str(stage["name"]))]
    if view.get("risk") is not None:
        facts.append(("Risk", str(view["risk"])))
    if view.get("impact") is not None:
        facts.append(("Impact", str(view["impact"])))
    return facts


def inbox_url(base_url: str, view: dict[str, Any]) -> str:
    """The request's page in the web UI."""
    return f"{base_url}/approvals/{view['id']}"


def stage_of(view: dict[str, Any], task: str) -> dict[str, Any]:
    """A stage of the view by task id."""
    return next(s for s in view["stages"] if s["task"] == task)


def outcome_line(view: dict[str, Any], stage: dict[str, Any], level: int) -> str | None:
    """What became of the stage as posted at ``level``; None while it waits for its approvers."""
    status = stage["status"]
    if status == "approved":
        by, comment = stage["decided_by"], stage.get("comment")
        return f"✅ Approved by {by}" + (f": {comment}" if comment else "")
    if status == "denied":
        return f"❌ Denied by {stage['decided_by']}: {stage.get('comment') or ''}".rstrip(": ")
    if status == "cancelled":
        if view["status"] == "denied":
            return f"Closed: the request was denied by {view['decided_by']}"
        return f"Cancelled by {view['decided_by']}: {view.get('reason') or ''}".rstrip(": ")
    if stage["level"] > level:
        return f"⏫ Escalated to {_who(stage['approvers'])} (no decision within the SLA)"
    return None


def _questions(view: dict[str, Any], task: str) -> list[str]:
    lines = []
    for c in view["clarifications"]:
        if c["task"] != task:
            continue
        answer = c["answer"] if c["answer"] is not None else "_waiting for the answer_"
        lines.append(f"*Q* ({c['asked_by']}): {c['question']}\n*A* ({view['requester']}): {answer}")
    return lines


def slack_message(
    view: dict[str, Any], task: str, level: int, base_url: str
) -> tuple[str, list[dict[str, Any]]]:
    """The text and blocks of the Slack message posted for ``task`` at ``level``."""
    stage = stage_of(view, task)
    ended = outcome_line(view, stage, level)
    title = view["title"]
    text = f"Approval needed: {title}" if ended is None else f"{title}: {ended}"
    facts = " · ".join(f"{k}: *{v}*" for k, v in _facts(view, stage))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{facts}"}}
    ]
    subject = _subject(view)
    if subject is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{subject}```"}})
    votes = [v for v in stage["votes"] if v["approve"]]
    if votes and ended is None:
        names = ", ".join(v["voter"] for v in votes)
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Approved so far by {names}"}],
            }
        )
    for line in _questions(view, task):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
    link = {
        "type": "button",
        "action_id": "open",
        "text": {"type": "plain_text", "text": "Open in opsloom"},
        "url": inbox_url(base_url, view),
    }
    if ended is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{ended}*"}})
        blocks.append({"type": "actions", "elements": [link]})
        return text, blocks
    if stage["status"] == "clarifying":
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"Paused until {view['requester']} answers."}
                ],
            }
        )
        blocks.append({"type": "actions", "elements": [link]})
        return text, blocks
    blocks.append(
        {
            "type": "actions",
            "block_id": f"decide:{task}",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": task,
                },
                {
                    "type": "button",
                    "action_id": "deny",
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "value": task,
                },
                link,
            ],
        }
    )
    blocks.append(
        {
            "type": "input",
            "block_id": f"{ASK_BLOCK}{task}",
            "dispatch_action": True,
            "label": {"type": "plain_text", "text": "Ask the requester (Enter sends)"},
            "element": {
                "type": "plain_text_input",
                "action_id": "ask",
                "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
            },
        }
    )
    return text, blocks


def fingerprint(text: str, blocks: list[dict[str, Any]]) -> str:
    """A short digest of a rendering: a message is updated only when it changes."""
    raw = json.dumps([text, blocks], sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def email_message(
    view: dict[str, Any], task: str, approve_url: str, deny_url: str, base_url: str
) -> tuple[str, str, str]:
    """Subject, text and HTML of the e-mail carrying one person's one-time links."""
    import html

    stage = stage_of(view, task)
    title = view["title"]
    facts = _facts(view, stage)
    subject_json = _subject(view)
    inbox = inbox_url(base_url, view)
    lines = [f"Approval needed: {title}", ""]
    lines += [f"{k}: {v}" for k, v in facts]
    if subject_json is not None:
        lines += ["", subject_json]
    lines += [
        "",
        f"Approve: {approve_url}",
        f"Deny:    {deny_url}",
        "",
        "Each link asks you to confirm, works once and only for you.",
        f"To ask the requester a question or delegate: {inbox}",
    ]
    esc = html.escape
    rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    pre = "" if subject_json is None else f"<pre>{esc(subject_json)}</pre>"
    body = (
        f"<h2>Approval needed: {esc(title)}</h2><table>{rows}</table>{pre}"
        f"<p><a href='{esc(approve_url)}'>Approve</a> · <a href='{esc(deny_url)}'>Deny</a></p>"
        "<p>Each link asks you to confirm, works once and only for you. "
        f"<a href='{esc(inbox)}'>Ask a question or delegate in opsloom</a>.</p>"
    )
    return f"Approval needed: {title}", "\n".join(lines), body


def question_text(view: dict[str, Any], question: dict[str, Any], base_url: str) -> str:
    """What the requester is told when an approver asks them something."""
    return (
        f'{question["asked_by"]} asks about your request "{view["title"]}":\n'
        f"{question['question']}\n\n"
        f"Answer in opsloom: {inbox_url(base_url, view)}\n"
        f'or: opsloom approvals answer {view["id"]} "your answer"'
    )


def teams_card(view: dict[str, Any], task: str, level: int, base_url: str) -> dict[str, Any]:
    """An Adaptive Card: the request, or what became of it, with a link to decide."""
    stage = stage_of(view, task)
    ended = outcome_line(view, stage, level)
    heading = f"Approval needed: {view['title']}" if ended is None else view["title"]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": heading, "wrap": True},
        {
            "type": "FactSet",
            "facts": [{"title": k, "value": v} for k, v in _facts(view, stage)],
        },
    ]
    if ended is not None:
        body.append({"type": "TextBlock", "text": ended, "wrap": True, "weight": "Bolder"})
    label = "Review and decide" if ended is None else "Open in opsloom"
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": label, "url": inbox_url(base_url, view)}],
    }
