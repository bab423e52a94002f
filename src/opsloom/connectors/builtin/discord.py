"""Discord webhooks: post a message (text and embeds) to a channel.

Follows Discord's published OpenAPI document (API v10): ``POST
/webhooks/{webhook_id}/{webhook_token}?wait=true`` answers the message created. The webhook URL
holds its token, so the whole URL is the connection's secret. Discord's 429 carries
``retry_after`` in the body and ``X-RateLimit-Reset-After``; both become the retry delay.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class DiscordSettings(ConnectionSettings):
    """A Discord channel webhook."""

    webhook_url: SecretStr = Field(description="https://discord.com/api/webhooks/ID/TOKEN")


def _endpoint(settings: DiscordSettings) -> Endpoint:
    url = settings.webhook_url.get_secret_value()
    # The token is the last path segment: mask it on its own too (it shows up in paths).
    return Endpoint(url, redact=(url.rstrip("/").rsplit("/", 1)[-1],))


connector = Connector(
    "discord", DiscordSettings, title="Discord", endpoint=_endpoint, doc=__doc__ or ""
)


class WebhookMessage(BaseModel):
    """A message: ``content`` and/or up to 10 ``embeds``."""

    content: str | None = Field(default=None, max_length=2000)
    embeds: list[dict[str, Any]] | None = Field(default=None, max_length=10)
    username: str | None = None
    avatar_url: str | None = None


class Posted(BaseModel):
    """The message created."""

    id: str
    channel_id: str


@connector.action
async def send_message(ctx: ActionContext[DiscordSettings], data: WebhookMessage) -> Posted:
    """Post a message through the channel's webhook."""
    body: dict[str, Any] = data.model_dump(exclude_none=True)
    body.setdefault("allowed_mentions", {"parse": []})  # never ping @everyone by accident
    url = ctx.settings.webhook_url.get_secret_value()
    answer = await ctx.client.json("POST", url, params={"wait": "true"}, json=body)
    return Posted(id=str(answer["id"]), channel_id=str(answer["channel_id"]))
