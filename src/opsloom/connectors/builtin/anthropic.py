"""Anthropic Messages API.

No spec of it is in our contracts; this follows Anthropic's API documentation: ``POST
/v1/messages`` with ``x-api-key`` and ``anthropic-version: 2023-06-01``; answers ``content``
blocks. 429 (with ``retry-after``) and 529 (overloaded) are retried.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class AnthropicSettings(ConnectionSettings):
    """An Anthropic API key and default model."""

    api_key: SecretStr
    model: str = "claude-sonnet-4-5"
    api_url: str = "https://api.anthropic.com"
    timeout: float = Field(default=120.0, gt=0, le=600)


def _endpoint(settings: AnthropicSettings) -> Endpoint:
    return Endpoint(
        settings.api_url.rstrip("/"),
        {"x-api-key": settings.api_key.get_secret_value(), "anthropic-version": "2023-06-01"},
    )


connector = Connector(
    "anthropic", AnthropicSettings, title="Anthropic", endpoint=_endpoint, doc=__doc__ or ""
)


class Turn(BaseModel):
    """One message of the conversation."""

    role: Literal["user", "assistant"]
    content: str


class Messages(BaseModel):
    """A conversation to continue."""

    messages: list[Turn] = Field(min_length=1)
    system: str | None = None
    model: str | None = None
    max_tokens: int = Field(default=1024, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=1)


class Reply(BaseModel):
    """The model's text reply."""

    text: str
    model: str
    stop_reason: str | None
    usage: dict[str, Any] | None = None


@connector.action
async def message(ctx: ActionContext[AnthropicSettings], data: Messages) -> Reply:
    """Ask the model for the next assistant message; returns its text."""
    body: dict[str, Any] = {
        "model": data.model or ctx.settings.model,
        "max_tokens": data.max_tokens,
        "messages": [t.model_dump() for t in data.messages],
    }
    if data.system:
        body["system"] = data.system
    if data.temperature is not None:
        body["temperature"] = data.temperature
    answer = await ctx.client.json("POST", "/v1/messages", json=body)
    text = "".join(b.get("text", "") for b in answer.get("content", []) if b.get("type") == "text")
    return Reply(
        text=text,
        model=answer.get("model", body["model"]),
        stop_reason=answer.get("stop_reason"),
        usage=answer.get("usage"),
    )
