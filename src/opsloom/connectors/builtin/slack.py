"""Slack Web API: post and update messages (Block Kit), add reactions, open conversations.

Follows Slack's Web API documentation and its published spec (``slack_web_openapi_v2.json``):
methods are ``POST https://slack.com/api/<method>`` with a form-encoded body (``blocks`` as a
JSON string) and ``Authorization: Bearer <token>``. Slack answers 200 with ``{"ok": false,
"error": …}`` for most failures: ``ratelimited`` and server-side errors are retried (the 429's
``Retry-After`` is honoured), the rest fail the step. Slack has no idempotency key.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError

#: ``error`` values that say Slack itself had trouble: worth another try.
_TRANSIENT = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
}


class SlackSettings(ConnectionSettings):
    """A Slack connection: a bot (``xoxb-``) or user token."""

    token: SecretStr = Field(description="Bot or user OAuth token (xoxb-… / xoxp-…).")
    api_url: str = Field(default="https://slack.com/api", description="Web API base URL.")


def _endpoint(settings: SlackSettings) -> Endpoint:
    return Endpoint(
        settings.api_url.rstrip("/") + "/",
        {"Authorization": f"Bearer {settings.token.get_secret_value()}"},
    )


connector = Connector("slack", SlackSettings, title="Slack", endpoint=_endpoint, doc=__doc__ or "")


def _blocks(value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if len(value) > 50:
        raise ValueError("Slack takes at most 50 blocks in a message")
    for index, block in enumerate(value):
        if not isinstance(block.get("type"), str):
            raise ValueError(f"block {index} has no 'type' (Block Kit blocks need one)")
    return value


class PostMessage(BaseModel):
    """A message: ``text`` (also the notification fallback), ``blocks`` (Block Kit) or both."""

    channel: str = Field(description="Channel id or name (#incidents), or a user id for a DM.")
    text: str | None = Field(default=None, max_length=40000)
    blocks: list[dict[str, Any]] | None = Field(default=None, description="Block Kit blocks.")
    thread_ts: str | None = Field(default=None, description="Reply in this thread.")
    unfurl_links: bool | None = None

    _check_blocks = field_validator("blocks")(_blocks)


class UpdateMessage(BaseModel):
    """New content for a message posted earlier."""

    channel: str
    ts: str = Field(description="The message's timestamp, as post_message returned it.")
    text: str | None = Field(default=None, max_length=40000)
    blocks: list[dict[str, Any]] | None = None

    _check_blocks = field_validator("blocks")(_blocks)


class MessageRef(BaseModel):
    """Where a message is: its channel id and timestamp."""

    channel: str
    ts: str


class AddReaction(BaseModel):
    """An emoji reaction on a message."""

    channel: str
    timestamp: str = Field(description="The message's ts.")
    name: str = Field(description="Emoji name without colons (eyes, white_check_mark).")


class Done(BaseModel):
    """The call succeeded."""

    ok: bool = True


class OpenConversation(BaseModel):
    """A direct or multi-person message with these users."""

    users: list[str] = Field(min_length=1, max_length=8, description="User ids.")


class Conversation(BaseModel):
    """The conversation's channel id."""

    channel: str


async def _call(ctx: ActionContext[SlackSettings], method: str, form: dict[str, Any]) -> Any:
    fields = {
        k: json.dumps(v)
        if isinstance(v, list | dict)
        else str(v).lower()
        if isinstance(v, bool)
        else v
        for k, v in form.items()
        if v is not None
    }
    return _checked(method, await ctx.client.json("POST", method, data=fields))


def _checked(method: str, body: Any) -> Any:
    if not isinstance(body, dict) or body.get("ok") is not True:
        error = body.get("error", "no error given") if isinstance(body, dict) else "not JSON"
        kind = ConnectorRetryableError if error in _TRANSIENT else ConnectorPermanentError
        raise kind(f"Slack {method} failed: {error}")
    return body


def _needs_content(text: str | None, blocks: list[dict[str, Any]] | None) -> None:
    if not text and not blocks:
        raise ConnectorPermanentError("a Slack message needs text or blocks")


@connector.action
async def post_message(ctx: ActionContext[SlackSettings], data: PostMessage) -> MessageRef:
    """Post a message to a channel (chat.postMessage); returns its channel id and ts."""
    _needs_content(data.text, data.blocks)
    body = await _call(ctx, "chat.postMessage", data.model_dump())
    return MessageRef(channel=body["channel"], ts=body["ts"])


@connector.action
async def update_message(ctx: ActionContext[SlackSettings], data: UpdateMessage) -> MessageRef:
    """Replace the text or blocks of a message posted earlier (chat.update)."""
    _needs_content(data.text, data.blocks)
    body = await _call(ctx, "chat.update", data.model_dump())
    return MessageRef(channel=body["channel"], ts=body["ts"])


@connector.action
async def add_reaction(ctx: ActionContext[SlackSettings], data: AddReaction) -> Done:
    """Add an emoji reaction to a message (reactions.add); an existing one is fine."""
    try:
        await _call(ctx, "reactions.add", data.model_dump())
    except ConnectorPermanentError as exc:
        if "already_reacted" not in str(exc):
            raise
    return Done()


@connector.action
async def open_conversation(
    ctx: ActionContext[SlackSettings], data: OpenConversation
) -> Conversation:
    """Open (or find) a direct message with users (conversations.open); returns its channel."""
    body = await _call(ctx, "conversations.open", {"users": ",".join(data.users)})
    return Conversation(channel=body["channel"]["id"])


class FindMessage(BaseModel):
    """A recent message to find by the ``block_id`` of one of its blocks."""

    channel: str = Field(description="Channel id, or a user id (their direct messages).")
    block_id: str = Field(min_length=1, max_length=255)
    limit: int = Field(default=50, ge=1, le=200, description="How many recent messages to read.")


class FoundMessage(BaseModel):
    """The message found (``ts`` None: none has that block)."""

    channel: str
    ts: str | None = None


@connector.action
async def find_message(ctx: ActionContext[SlackSettings], data: FindMessage) -> FoundMessage:
    """Find a recent message carrying a block with ``block_id`` (conversations.history).

    A poster that marks its message with a block id can look for it before posting again,
    which makes a retried post idempotent although Slack has no idempotency key.
    """
    channel = data.channel
    if channel[:1] in ("U", "W"):  # a person: their direct-message channel holds it
        opened = await _call(ctx, "conversations.open", {"users": channel})
        channel = opened["channel"]["id"]
    query = {"channel": channel, "limit": data.limit}
    method = "conversations.history"
    body = _checked(method, await ctx.client.json("GET", method, params=query))
    for found in body.get("messages") or []:
        if any(b.get("block_id") == data.block_id for b in found.get("blocks") or []):
            return FoundMessage(channel=channel, ts=str(found["ts"]))
    return FoundMessage(channel=channel)


@connector.connection_check
async def _check(ctx: ActionContext[SlackSettings]) -> str:
    response = await ctx.client.request("GET", "auth.test")
    body = response.json()
    if not body.get("ok"):
        raise ConnectorPermanentError(f"Slack auth.test failed: {body.get('error')}")
    return f"Slack workspace {body.get('team')!r} as {body.get('user')!r}"
