"""Twilio Programmable Messaging: send an SMS.

Follows Twilio's published OpenAPI document (API 2010-04-01): ``POST
/2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form body (``To``, ``From`` or
``MessagingServiceSid``, ``Body``) and HTTP Basic auth (account SID or API key SID, and its
secret); answers 201 with the message resource. Twilio takes no idempotency key for messages.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError


class TwilioSettings(ConnectionSettings):
    """A Twilio account (or an API key of it) and the default sender."""

    account_sid: str
    auth_token: SecretStr = Field(description="Auth token, or the secret of api_key_sid.")
    api_key_sid: str | None = Field(default=None, description="Authenticate with an API key.")
    from_number: str | None = Field(default=None, description="Default sender (E.164).")
    messaging_service_sid: str | None = None
    api_url: str = "https://api.twilio.com"


def _endpoint(settings: TwilioSettings) -> Endpoint:
    user = settings.api_key_sid or settings.account_sid
    credential = base64.b64encode(
        f"{user}:{settings.auth_token.get_secret_value()}".encode()
    ).decode()
    return Endpoint(
        settings.api_url.rstrip("/"), {"Authorization": f"Basic {credential}"}, redact=(credential,)
    )


connector = Connector(
    "twilio", TwilioSettings, title="Twilio", endpoint=_endpoint, doc=__doc__ or ""
)


class Sms(BaseModel):
    """A text message."""

    to: str = Field(pattern=r"^\+[1-9]\d{1,14}$", description="E.164 number (+15558675310).")
    body: str = Field(min_length=1, max_length=1600)
    from_number: str | None = Field(default=None, description="Overrides the connection's.")


class Message(BaseModel):
    """The message resource Twilio created."""

    sid: str
    status: str


@connector.action
async def send_sms(ctx: ActionContext[TwilioSettings], data: Sms) -> Message:
    """Send an SMS from the connection's number (or messaging service)."""
    settings = ctx.settings
    form = {"To": data.to, "Body": data.body}
    sender = data.from_number or settings.from_number
    if sender:
        form["From"] = sender
    elif settings.messaging_service_sid:
        form["MessagingServiceSid"] = settings.messaging_service_sid
    else:
        raise ConnectorPermanentError(
            f"connection {ctx.connection!r} has no from_number or messaging_service_sid"
        )
    path = f"/2010-04-01/Accounts/{settings.account_sid}/Messages.json"
    answer = await ctx.client.json("POST", path, data=form)
    return Message(sid=answer["sid"], status=answer["status"])
