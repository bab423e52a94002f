"""OpenAI-compatible chat completions (OpenAI, and vLLM, Ollama, LiteLLM… that speak its API).

Follows OpenAI's published OpenAPI document: ``POST /chat/completions`` with ``Authorization:
Bearer`` (optional for local servers). A 429's ``retry-after-ms``/``Retry-After`` becomes the
retry delay. Completions are not idempotent: a retried step may ask again.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError


class OpenAISettings(ConnectionSettings):
    """An OpenAI-compatible endpoint and its default model."""

    base_url: str = Field(default="https://api.openai.com/v1", description="…/v1 of the server.")
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    timeout: float = Field(default=120.0, gt=0, le=600)


def _endpoint(settings: OpenAISettings) -> Endpoint:
    headers = {}
    if settings.api_key is not None:
        headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    return Endpoint(settings.base_url.rstrip("/") + "/", headers)


connector = Connector(
    "openai", OpenAISettings, title="OpenAI-compatible", endpoint=_endpoint, doc=__doc__ or ""
)


class ChatMessage(BaseModel):
    """One message of the conversation."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str


class Chat(BaseModel):
    """A conversation to complete."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = Field(default=None, description="Overrides the connection's model.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    json_output: bool = Field(default=False, description="Ask for a JSON object.")


class Completion(BaseModel):
    """The assistant's answer."""

    content: str
    model: str
    finish_reason: str | None
    usage: dict[str, Any] | None = None


@connector.action
async def chat(ctx: ActionContext[OpenAISettings], data: Chat) -> Completion:
    """Complete a chat conversation; returns the first choice's text."""
    body: dict[str, Any] = {
        "model": data.model or ctx.settings.model,
        "messages": [m.model_dump() for m in data.messages],
    }
    if data.temperature is not None:
        body["temperature"] = data.temperature
    if data.max_tokens is not None:
        body["max_completion_tokens"] = data.max_tokens
    if data.json_output:
        body["response_format"] = {"type": "json_object"}
    answer = await ctx.client.json("POST", "chat/completions", json=body)
    choices = answer.get("choices") or []
    if not choices:
        raise ConnectorPermanentError("the chat completion has no choices")
    first = choices[0]
    return Completion(
        content=(first.get("message") or {}).get("content") or "",
        model=answer.get("model", body["model"]),
        finish_reason=first.get("finish_reason"),
        usage=answer.get("usage"),
    )
