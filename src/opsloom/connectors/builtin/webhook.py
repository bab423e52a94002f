"""Generic HTTP: send a request to an endpoint, signed the Standard Webhooks way if asked.

For internal services and vendors without a connector. With a ``signing_secret`` each request
carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers as the Standard
Webhooks specification defines them: ``v1,`` then base64 of HMAC-SHA256 over
``{id}.{timestamp}.{body}`` keyed with the secret (``whsec_`` + base64). The ``webhook-id`` is
the step's idempotency key, so a receiver can drop a retried delivery; an ``Idempotency-Key``
header carries it as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class WebhookSettings(ConnectionSettings):
    """An HTTP endpoint (base URL), fixed headers, and optional auth and signing."""

    url: str = Field(description="Base URL; a request's path is appended.")
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: SecretStr | None = None
    signing_secret: SecretStr | None = Field(default=None, description="whsec_… (base64 key).")


def _endpoint(settings: WebhookSettings) -> Endpoint:
    headers = dict(settings.headers)
    if settings.bearer_token is not None:
        headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
    return Endpoint(settings.url, headers)


connector = Connector(
    "webhook", WebhookSettings, title="HTTP", endpoint=_endpoint, doc=__doc__ or ""
)


class Send(BaseModel):
    """A request: JSON body (or none), to the base URL plus ``path``."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = ""
    body: Any = None
    query: dict[str, str] | None = None
    headers: dict[str, str] | None = None


class Answer(BaseModel):
    """The answer: status and body (JSON when it was JSON, else text)."""

    status: int
    body: Any


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value (``v1,<base64>``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@connector.action
async def send(ctx: ActionContext[WebhookSettings], data: Send) -> Answer:
    """Send a request; 2xx/3xx is success, 429/5xx are retried, other 4xx fail the step."""
    content = b"" if data.body is None else json.dumps(data.body, separators=(",", ":")).encode()
    message_id = ctx.idempotency_key or uuid.uuid4().hex
    headers = {"Idempotency-Key": message_id, **(data.headers or {})}
    if content:
        headers["Content-Type"] = "application/json"
    secret = ctx.settings.signing_secret
    if secret is not None:
        timestamp = int(ctx.now())
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = signature(
            secret.get_secret_value(), message_id, timestamp, content
        )
    response = await ctx.client.request(
        data.method, data.path, content=content or None, params=data.query, headers=headers
    )
    try:
        body: Any = (
            response.json() if "json" in response.headers.get("content-type", "") else response.text
        )
    except ValueError:
        body = response.text
    return Answer(status=response.status_code, body=body)
