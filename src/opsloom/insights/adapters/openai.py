"""OpenAI-style chat messages: ``{"messages": [...]}``, a bare list, or request + response.

Accepted shapes, one conversation each:

- ``{"messages": [...], "id"|"conversation_id"|"session_id": …, "model": …, "metadata": {…},
  "tags": […]}``;
- a JSON list of messages;
- a logged completion: ``{"request": {"model", "messages"}, "response": {"choices", "usage"}}``.

Messages follow the Chat Completions shape (``role``, ``content`` as text or parts,
``tool_calls``, ``tool_call_id``, ``name``). Optional per-message extras that loggers add are
kept: ``timestamp``/``created_at``, ``end_time``, ``model``, ``usage`` (``prompt_tokens``,
``completion_tokens``, ``cost``), ``finish_reason`` and ``error``.
"""

from __future__ import annotations

from typing import Any

from opsloom.insights.adapters.value import (
    as_float,
    as_int,
    as_str,
    content_text,
    parse_time,
    stable_id,
)
from opsloom.insights.conversation import (
    Conversation,
    ConversationFormatError,
    ToolCall,
    Turn,
    normalise_role,
)

_ID_KEYS = ("id", "conversation_id", "session_id", "thread_id")


def looks_like(payload: object) -> bool:
    """Whether ``payload`` has one of the shapes this adapter reads."""
    if isinstance(payload, list):
        return bool(payload) and all(isinstance(m, dict) and "role" in m for m in payload[:3])
    if isinstance(payload, dict):
        return "messages" in payload or isinstance(payload.get("request"), dict)
    return False


def conversations(payload: Any, *, where: str = "") -> list[Conversation]:
    """Read one record; raises :class:`ConversationFormatError` naming the bad part."""
    if isinstance(payload, list):
        return [_conversation({"messages": payload}, payload, where)]
    if not isinstance(payload, dict):
        raise ConversationFormatError("expected an object or a list of messages", where=where)
    if "messages" not in payload and isinstance(payload.get("request"), dict):
        return [_conversation(_from_completion_log(payload, where), payload, where)]
    return [_conversation(payload, payload, where)]


def _from_completion_log(payload: dict[str, Any], where: str) -> dict[str, Any]:
    request = payload["request"]
    response = payload.get("response") or {}
    messages = list(request.get("messages") or [])
    if not isinstance(response, dict):
        raise ConversationFormatError("response must be an object", where=f"{where}.response")
    choices = response.get("choices") or []
    usage = response.get("usage") or {}
    created = response.get("created")
    for choice in choices[:1]:
        message = dict(choice.get("message") or {})
        message.setdefault("role", "assistant")
        message.setdefault("finish_reason", choice.get("finish_reason"))
        message.setdefault("model", response.get("model") or request.get("model"))
        message.setdefault("usage", usage)
        if created is not None:
            message.setdefault("timestamp", created)
        messages.append(message)
    merged = {k: v for k, v in payload.items() if k not in ("request", "response")}
    merged["messages"] = messages
    merged.setdefault("model", request.get("model"))
    return merged


def _conversation(record: dict[str, Any], original: Any, where: str) -> Conversation:
    messages = record.get("messages")
    if not isinstance(messages, list):
        raise ConversationFormatError("'messages' must be a list", where=f"{where}.messages")
    turns = tuple(_turn(message, f"{where}.messages[{i}]") for i, message in enumerate(messages))
    metadata = record.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    conv_id = next((as_str(record.get(k)) for k in _ID_KEYS if as_str(record.get(k))), None)
    conv_id = conv_id or as_str(metadata.get("conversation_id")) or stable_id(original)
    tags = record.get("tags") or metadata.get("tags") or ()
    return Conversation(
        id=conv_id,
        turns=turns,
        app=as_str(record.get("app")) or as_str(metadata.get("app")),
        model=as_str(record.get("model")),
        prompt_version=as_str(record.get("prompt_version"))
        or as_str(metadata.get("prompt_version")),
        tags=tuple(str(t) for t in tags) if isinstance(tags, list | tuple) else (),
        user=as_str(record.get("user")) or as_str(metadata.get("user_id")),
        ended=bool(record.get("ended", False)),
        metadata=metadata,
    )


def _turn(message: object, where: str) -> Turn:
    if not isinstance(message, dict):
        raise ConversationFormatError("a message must be an object", where=where)
    if "role" not in message:
        raise ConversationFormatError("message has no 'role'", where=where)
    role = normalise_role(message["role"], where=f"{where}.role")
    usage: dict[str, Any] = message["usage"] if isinstance(message.get("usage"), dict) else {}
    calls = message.get("tool_calls") or ()
    if not isinstance(calls, list | tuple):
        raise ConversationFormatError("'tool_calls' must be a list", where=f"{where}.tool_calls")
    tool_calls = tuple(_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls))
    if isinstance(message.get("function_call"), dict):  # the pre-tools shape
        tool_calls += (_tool_call({"function": message["function_call"]}, where),)
    error = message.get("error")
    return Turn(
        role=role,
        text=content_text(message.get("content")),
        time=parse_time(
            message.get("timestamp") or message.get("created_at") or message.get("time"),
            where=f"{where}.timestamp",
        ),
        end_time=parse_time(message.get("end_time"), where=f"{where}.end_time"),
        model=as_str(message.get("model")),
        input_tokens=as_int(usage.get("prompt_tokens", usage.get("input_tokens"))),
        output_tokens=as_int(usage.get("completion_tokens", usage.get("output_tokens"))),
        cost=as_float(usage.get("cost", message.get("cost"))),
        tool_calls=tool_calls,
        tool_call_id=as_str(message.get("tool_call_id")),
        name=as_str(message.get("name")),
        finish_reason=as_str(message.get("finish_reason")),
        error=content_text(error) if error else None,
    )


def _tool_call(call: object, where: str) -> ToolCall:
    if not isinstance(call, dict):
        raise ConversationFormatError("a tool call must be an object", where=where)
    function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
    name = as_str(function.get("name"))
    if name is None:
        raise ConversationFormatError("tool call has no function name", where=where)
    arguments = function.get("arguments", "")
    return ToolCall(
        name=name,
        arguments=arguments if isinstance(arguments, str) else str(arguments),
        id=as_str(call.get("id")),
    )
