"""Telegram Bot API: send a message to a chat.

No spec of it is in our contracts; this follows the Bot API documentation: ``POST
https://api.telegram.org/bot<token>/sendMessage`` answers ``{"ok": true, "result": Message}``;
a flood limit is 429 with ``parameters.retry_after``, which becomes the retry delay. The token
is part of the URL path, so it is masked in every error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class TelegramSettings(ConnectionSettings):
    """A bot token."""

    bot_token: SecretStr
    api_url: str = "https://api.telegram.org"


def _endpoint(settings: TelegramSettings) -> Endpoint:
    return Endpoint(settings.api_url.rstrip("/"))


connector = Connector(
    "telegram", TelegramSettings, title="Telegram", endpoint=_endpoint, doc=__doc__ or ""
)


class SendMessage(BaseModel):
    """A message to a chat."""

    chat_id: int | str = Field(description="Chat id, or @channelusername.")
    text: str = Field(min_length=1, max_length=4096)
    parse_mode: Literal["MarkdownV2", "HTML"] | None = None
    disable_notification: bool | None = None


class Sent(BaseModel):
    """The message sent."""

    message_id: int
    chat_id: int | str


@connector.action
async def send_message(ctx: ActionContext[TelegramSettings], data: SendMessage) -> Sent:
    """Send a text message."""
    path = f"/bot{ctx.settings.bot_token.get_secret_value()}/sendMessage"
    answer = await ctx.client.json("POST", path, json=data.model_dump(exclude_none=True))
    result = answer["result"]
    return Sent(message_id=result["message_id"], chat_id=result["chat"]["id"])
