"""Building one conversation from model calls that each repeat the history."""

from __future__ import annotations

from typing import Any

import orjson

from opsloom.insights.adapters.value import as_str, content_text
from opsloom.insights.conversation import ToolCall, Turn, normalise_role


def tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    """A logged message's tool calls: OpenAI's nested ``function`` or flat name/arguments."""
    calls = []
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        function = call["function"] if isinstance(call.get("function"), dict) else call
        name = as_str(function.get("name"))
        if name is None:
            continue
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode() if arguments is not None else ""
        calls.append(ToolCall(name=name, arguments=arguments, id=as_str(call.get("id"))))
    return tuple(calls)


def message_turn(message: object, where: str) -> Turn:
    """A turn from a logged input message (a role/content object, or bare text)."""
    if not isinstance(message, dict):
        return Turn(role="user", text=content_text(message))
    return Turn(
        role=normalise_role(message.get("role") or "user", where=where),
        text=content_text(message.get("content")),
        tool_calls=tool_calls(message),
        tool_call_id=as_str(message.get("tool_call_id")),
    )


def append_new(turns: list[Turn], inputs: list[Turn], tool_spans: bool) -> None:
    """Append the input messages the conversation does not hold yet.

    Inputs usually repeat the history: skip the common prefix (tool messages aside, which
    tool spans may have recorded already). When the history was cut (a sliding window),
    nothing lines up; then only the messages after the last assistant message are new.
    """
    seen = [(t.role, t.text) for t in turns if t.role != "tool"]
    fresh = [t for t in inputs if t.role != "tool" or not tool_spans]
    matched = 0  # non-tool messages of `fresh` matching the history, in order
    start = 0  # index in `fresh` after the last matched message
    for i, turn in enumerate(fresh):
        if turn.role == "tool":
            continue
        if matched < len(seen) and seen[matched] == (turn.role, turn.text):
            matched += 1
            start = i + 1
        else:
            break
    if turns and matched == 0:
        start = 1 + max((i for i, t in enumerate(fresh) if t.role == "assistant"), default=-1)
    turns.extend(fresh[start:])
