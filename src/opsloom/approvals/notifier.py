"""Telling approvers: one durable run per request that posts, mails and updates its messages.

When approval notices are configured (:mod:`opsloom.approvals.notice`), the step that opens a
request creates, in the same transaction, its notices run (``<request id>.notices``, workflow
``opsloom.approval-notices``); every later change of the request (a vote, a question, an
answer, an escalation at the SLA, a delegation, the end) signals that run in the change's own
transaction. So a notice is never lost, and never holds up the approval: the request is
decided from the API, the CLI, the UI, a link or a Slack button whatever becomes of the
messages.

Each time it wakes, the run reads the request (a recorded step) and compares it with what it
has already done (its own recorded steps), then does the difference, each delivery a step of
its own, all at once:

- a stage open at a level its audience was not told of: a Slack message with Approve / Deny
  buttons and an Ask input, an e-mail to each person with their own signed one-time links
  (approve and deny), an Adaptive Card to Teams;
- a question: the requester is told on their own channels;
- a Slack message whose rendering changed (votes, a question, its answer, an escalation, the
  decision): updated in place (``chat.update``), without its buttons once its stage at that
  level is over;
- the end of the request: a last card to each Teams channel told of it (a Workflows webhook
  cannot edit a card).

Deliveries are retried under :data:`NOTICE_RETRY` (with ``Retry-After`` and the circuit
breaker's time to half-open as delays, waiting durably without a worker slot). A delivery
that fails for good is recorded as failed and the run goes on; it never fails the approval.
Every delivery runs at least once: an e-mail sent again carries the same ``Message-ID`` (from
the step's idempotency key), and a Slack post retried after a failed attempt first looks for
the message the earlier attempt may have posted (its marker block) before posting again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloom.approvals import message
from opsloom.approvals.link import ApprovalLinks
from opsloom.approvals.notice import NoticeConfig, audience, reach
from opsloom.approvals.service import request_view
from opsloom.connectors.builtin import email, slack, teams
from opsloom.engine.context import current_step
from opsloom.engine.registry import attach_step_spec, make_step_spec
from opsloom.errors import StepFailedError
from opsloom.model.approval import RequestStatus
from opsloom.model.retry import RetryPolicy
from opsloom.store.approval import NOTICE_SIGNAL

if TYPE_CHECKING:
    from opsloom.approvals.service import Approvals
    from opsloom.connectors.runtime import ConnectorRuntime
    from opsloom.engine.context import Context
    from opsloom.model.run import NewRun

#: The workflow of notices runs.
NOTICES_WORKFLOW = "opsloom.approval-notices"
#: About half an hour of tries per delivery (2 s doubling up to 5 min between them).
NOTICE_RETRY = RetryPolicy(attempts=10, initial_delay=2.0, backoff=2.0, max_delay=300.0)
ACTIVE = ("open", "clarifying")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One thing to do: ``op`` (post, update, mail, card, ask, end) for ``key``."""

    key: str
    op: str
    data: dict[str, Any]


def plan(view: dict[str, Any], told: dict[str, dict[str, Any]], base_url: str) -> list[Delivery]:
    """What is left to do for the request as ``view`` shows it (pure: replays the same)."""
    work: list[Delivery] = []
    request = view["request"]
    pending = request["status"] == RequestStatus.PENDING
    for stage in request["stages"]:
        if not (pending and stage["status"] in ACTIVE):
            continue
        task, level = stage["task"], stage["level"]
        for dest in view["audience"].get(task, []):
            key = f"open:{task}:{level}:{dest['key']}"
            if key not in told:
                data = {"task": task, "level": level, "dest": dest}
                work.append(Delivery(key, dest["kind"], data))
    for question in request["clarifications"]:
        if question["answer"] is not None or not pending:
            continue
        for dest in view["requester"]:
            key = f"ask:{question['id']}:{dest['key']}"
            if key not in told:
                work.append(Delivery(key, "ask", {"question": question, "dest": dest}))
    for key, done in told.items():
        if done.get("kind") == "slack" and done.get("ts"):
            text, blocks = message.slack_message(request, done["task"], done["level"], base_url)
            if message.fingerprint(text, blocks) != done["shown"]:
                data = {"told": key, "text": text, "blocks": blocks}
                work.append(Delivery(f"update:{key}", "update", data))
        if done.get("kind") == "teams" and done.get("ok") and not pending:
            end = f"end:{done['dest']['key']}"
            if end not in told and not any(w.key == end for w in work):
                work.append(Delivery(end, "end", {"task": done["task"], "dest": done["dest"]}))
    return work


class Notices:
    """The notices of one app: its config, the workflow and the steps it records.

    Args:
        config: the notices file.
        approvals: the approvals service (identity, store, clock).
        connections: the connector runtime that delivers.
        link_secret: signs the e-mails' one-time links (None: e-mails carry the UI link only).
        new_run: builds the notices run of a request (``NewRun``) at a time (what
            :func:`~opsloom.approvals.notice.active_notices` offers the opening step).
    """

    def __init__(
        self,
        config: NoticeConfig,
        approvals: Callable[[], Approvals],
        connections: ConnectorRuntime,
        link_secret: str | None,
        new_run: Callable[[str, float], NewRun],
    ) -> None:
        self.config = config
        self._approvals = approvals
        self._connections = connections
        self._link_secret = link_secret
        self.new_run = new_run
        self._steps = self._bind()

    def _bind(self) -> dict[str, Callable[..., Awaitable[Any]]]:
        config, runtime = self.config, self._connections
        base = config.base_url

        async def look(request_id: str) -> dict[str, Any]:
            service = self._approvals()
            state = await service.store.get_approval(request_id)
            if state is None:
                return {"request": None}
            view = request_view(state)
            r = state.request
            excluded = {r.requester}
            if r.started_by and not r.starter_may_decide:
                excluded.add(r.started_by)
            heard: dict[str, list[dict[str, Any]]] = {}
            for stage in state.stages:
                if stage.status in ACTIVE and r.status == RequestStatus.PENDING:
                    found = await audience(
                        config, service.identity, stage.approvers, stage.delegations, excluded
                    )
                    heard[stage.id] = [d.to_dict() for d in found]
            asker = await reach(config, service.identity, r.requester)
            return {
                "request": view,
                "audience": heard,
                "requester": [d.to_dict() for d in asker],
            }

        async def slack_post(
            connection: str, channel: str, text: str, blocks: list[dict[str, Any]]
        ) -> dict[str, Any]:
            info = current_step()
            marker = f"notice:{info.idempotency_key}"
            marked = [{**blocks[0], "block_id": marker}, *blocks[1:]]
            if info.attempt > 1:
                # The attempt before may have posted and lost the answer: reuse its message.
                found = await runtime.call(
                    slack.find_message, connection, {"channel": channel, "block_id": marker}
                )
                if found.get("ts"):
                    return {"channel": found["channel"], "ts": found["ts"]}
            return await runtime.call(
                slack.post_message,
                connection,
                {"channel": channel, "text": text, "blocks": marked},
            )

        async def slack_update(
            connection: str, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
        ) -> dict[str, Any]:
            return await runtime.call(
                slack.update_message,
                connection,
                {"channel": channel, "ts": ts, "text": text, "blocks": blocks},
            )

        async def mail(
            connection: str, to: str, user: str, request: dict[str, Any], task: str
        ) -> dict[str, Any]:
            inbox = message.inbox_url(base, request)
            approve_url = deny_url = inbox
            if self._link_secret is not None:
                links = ApprovalLinks(self._approvals(), self._link_secret)
                ttl = config.link_ttl
                approve_url = f"{base}/approvals/links/{await links.issue(task, user, True, ttl)}"
                deny_url = f"{base}/approvals/links/{await links.issue(task, user, False, ttl)}"
            subject, text, html = message.email_message(request, task, approve_url, deny_url, base)
            fields = {"to": [to], "subject": subject, "text": text, "html": html}
            return await runtime.call(email.send_email, connection, fields)

        async def mail_text(connection: str, to: str, subject: str, text: str) -> dict[str, Any]:
            fields = {"to": [to], "subject": subject, "text": text}
            return await runtime.call(email.send_email, connection, fields)

        async def card(connection: str, body: dict[str, Any]) -> dict[str, Any]:
            return await runtime.call(teams.post_card, connection, {"card": body})

        steps: dict[str, Callable[..., Awaitable[Any]]] = {
            "look": look,
            "slack_post": slack_post,
            "slack_update": slack_update,
            "mail": mail,
            "mail_text": mail_text,
            "card": card,
        }
        for name, fn in steps.items():
            # Stable names in run histories, whatever this module's layout.
            fn.__qualname__ = f"approval.notice.{name}"
            retry = NOTICE_RETRY if name != "look" else RetryPolicy(attempts=5)
            attach_step_spec(fn, make_step_spec(fn, None, retry, 60.0))
        return steps

    async def _deliver(
        self, ctx: Context, work: Delivery, request: dict[str, Any], told: dict[str, Any]
    ) -> dict[str, Any]:
        steps, base, data = self._steps, self.config.base_url, work.data
        dest = data.get("dest") or {}
        record: dict[str, Any] = {"kind": work.op, "dest": dest, "task": data.get("task")}
        record["level"] = data.get("level")
        try:
            if work.op == "slack":
                text, blocks = message.slack_message(request, data["task"], data["level"], base)
                ref = await ctx.step(
                    steps["slack_post"], dest["connection"], dest["address"], text, blocks
                )
                record.update(ts=ref["ts"], channel=ref["channel"])
                record["shown"] = message.fingerprint(text, blocks)
            elif work.op == "email":
                await ctx.step(
                    steps["mail"],
                    dest["connection"],
                    dest["address"],
                    dest["user"],
                    request,
                    data["task"],
                )
            elif work.op in ("teams", "end"):
                level = data.get("level")
                if level is None:  # the end: as the stage was last posted
                    level = message.stage_of(request, data["task"])["level"]
                body = message.teams_card(request, data["task"], level, base)
                await ctx.step(steps["card"], dest["connection"], body)
                record["kind"] = "teams" if work.op == "teams" else "end"
            elif work.op == "ask":
                text = message.question_text(request, data["question"], base)
                if dest["kind"] == "slack":
                    await ctx.step(
                        steps["slack_post"],
                        dest["connection"],
                        dest["address"],
                        text,
                        [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
                    )
                elif dest["kind"] == "email":
                    subject = f"A question on your request: {request['title']}"
                    await ctx.step(
                        steps["mail_text"], dest["connection"], dest["address"], subject, text
                    )
                else:
                    body = {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [{"type": "TextBlock", "text": text, "wrap": True}],
                    }
                    await ctx.step(steps["card"], dest["connection"], body)
                record["kind"] = "ask"
            elif work.op == "update":
                earlier = told[data["told"]]
                await ctx.step(
                    steps["slack_update"],
                    earlier["dest"]["connection"],
                    earlier["channel"],
                    earlier["ts"],
                    data["text"],
                    data["blocks"],
                )
                record = {**earlier, "shown": message.fingerprint(data["text"], data["blocks"])}
                return {"key": data["told"], "record": record, "ok": True}
        except StepFailedError as exc:
            # Told as well as it could be: the approval goes on without this message.
            record.update(ok=False, error=str(exc))
            if work.op == "update":
                # Not tried again for this rendering; a later change renders it anew.
                earlier = {**told[data["told"]]}
                earlier["shown"] = message.fingerprint(data["text"], data["blocks"])
                return {"key": data["told"], "record": earlier, "ok": False}
            return {"key": work.key, "record": record, "ok": False}
        record["ok"] = True
        return {"key": work.key, "record": record, "ok": True}

    async def workflow(self, ctx: Context, input: dict[str, Any]) -> dict[str, Any]:
        """The notices run of one request (see the module docstring)."""
        request_id = str(input["request_id"])
        told: dict[str, dict[str, Any]] = {}
        failed = 0
        while True:
            view = await ctx.step(self._steps["look"], request_id)
            request = view["request"]
            if request is None:
                return {"request_id": request_id, "told": 0, "failed": 0}
            work = plan(view, told, self.config.base_url)
            if work:
                done = await ctx.gather(*(self._deliver(ctx, w, request, told) for w in work))
                for result in done:
                    told[result["key"]] = result["record"]
                    failed += not result["ok"]
                continue  # look again: the request may have moved meanwhile
            if request["status"] != RequestStatus.PENDING:
                told_ok = sum(1 for r in told.values() if r.get("ok"))
                return {"request_id": request_id, "told": told_ok, "failed": failed}
            await ctx.wait_for(NOTICE_SIGNAL)
