"""Microsoft Teams: post an Adaptive Card through a Workflows (Power Automate) webhook.

No spec of it is in our contracts; this follows Microsoft's documentation of the "When a Teams
webhook request is received" workflow: ``POST`` to the workflow's URL a message whose
``attachments`` hold one ``application/vnd.microsoft.card.adaptive`` card; it answers 202.
The URL carries its signature, so it is the connection's secret.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError


class TeamsSettings(ConnectionSettings):
    """A Teams Workflows webhook URL."""

    webhook_url: SecretStr


def _endpoint(settings: TeamsSettings) -> Endpoint:
    return Endpoint(settings.webhook_url.get_secret_value())


connector = Connector(
    "teams", TeamsSettings, title="Microsoft Teams", endpoint=_endpoint, doc=__doc__ or ""
)


class Card(BaseModel):
    """An Adaptive Card, or just text (made into a card with one TextBlock)."""

    card: dict[str, Any] | None = Field(default=None, description="An AdaptiveCard object.")
    text: str | None = None

    @field_validator("card")
    @classmethod
    def _adaptive(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and (value.get("type") != "AdaptiveCard" or "version" not in value):
            raise ValueError('an Adaptive Card has "type": "AdaptiveCard" and a "version"')
        return value


class Posted(BaseModel):
    """The webhook accepted the card."""

    status: int


@connector.action
async def post_card(ctx: ActionContext[TeamsSettings], data: Card) -> Posted:
    """Post an Adaptive Card (or a text) to the channel of the workflow."""
    card = data.card
    if card is None:
        if not data.text:
            raise ConnectorPermanentError("a Teams message needs a card or text")
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{"type": "TextBlock", "text": data.text, "wrap": True}],
        }
    message = {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }
    response = await ctx.client.request(
        "POST", ctx.settings.webhook_url.get_secret_value(), json=message
    )
    return Posted(status=response.status_code)
