"""A catalog function, a webhook source and a connector, registered through entry points."""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from opsloom.plugin import (
    ActionContext,
    CloudEvent,
    ConnectionSettings,
    Connector,
    FunctionCall,
    HooksConfig,
    WebhookAuthError,
    WebhookRequest,
    catalog_function,
    json_object,
    make_event,
)


async def _shout(call: FunctionCall) -> dict[str, Any]:
    return {"shouted": str(call.arguments["text"]).upper() + "!"}


shout = catalog_function(
    "shout",
    "1.0.0",
    _shout,
    description="Upper-case a text.",
    input_schema={"type": "object", "required": ["text"]},
)


class DemoConfig(BaseModel):
    """Tokens accepted in ``X-Demo-Token``."""

    tokens: list[SecretStr] = Field(default_factory=list, json_schema_extra={"env": "TOKEN"})


class DemoSource:
    """``/hooks/demo``: a shared token in a header, one event per delivery."""

    name = "demo"
    config = DemoConfig

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        tokens = config.section(self.name, DemoConfig).tokens
        if not tokens:
            raise WebhookAuthError("not_configured", "the demo source has no token")
        given = (request.header("X-Demo-Token") or "").encode()
        if not any(hmac.compare_digest(given, t.get_secret_value().encode()) for t in tokens):
            raise WebhookAuthError("bad_credentials", "header X-Demo-Token does not match")

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        payload = json_object(request.body)
        return [
            make_event(
                source="/hooks/demo",
                type="io.example.demo.v1",
                id=str(payload.get("id", "")),
                data=payload,
            )
        ]


class DemoSettings(ConnectionSettings):
    """Nothing to configure: the demo connector talks to no one."""


connector = Connector("demo", DemoSettings, title="Demo", doc="Echoes what it is given.")


class PingInput(BaseModel):
    """What to echo."""

    text: str


class Pong(BaseModel):
    """The echo."""

    text: str
    connection: str


@connector.action
async def ping(ctx: ActionContext[DemoSettings], data: PingInput) -> Pong:
    """Echo a text, naming the connection it went through."""
    return Pong(text=data.text, connection=ctx.connection)
