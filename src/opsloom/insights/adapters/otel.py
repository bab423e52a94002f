"""OpenTelemetry spans (OTLP JSON) with GenAI, OpenLLMetry or OpenInference attributes.

A record is an OTLP export (``{"resourceSpans": [...]}``), ``{"spans": [...]}`` or a list of
spans whose ``attributes`` are OTLP key/value lists or plain objects. Spans are grouped into
conversations by ``gen_ai.conversation.id`` (else ``session.id``, else the trace id) and
ordered by start time. Messages come from, in this order of preference:

- ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (GenAI semantic conventions, JSON with
  ``parts``);
- ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` (OpenLLMetry);
- ``llm.input_messages.N.message.*`` / ``llm.output_messages.N.message.*`` (OpenInference);
- span events ``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``.

Each model call usually repeats the whole history as its input, so only the input messages
not already in the conversation are added; its output becomes an assistant turn carrying the
span's model, token counts, cost, finish reason and timing. Tool spans
(``gen_ai.operation.name = execute_tool`` or OpenInference kind ``TOOL``) become tool turns,
with the span's error status as the tool error.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from opsloom.insights.adapters.history import append_new, message_turn, tool_calls
from opsloom.insights.adapters.value import as_float, as_int, as_str, content_text, parse_time
from opsloom.insights.conversation import (
    Conversation,
    ConversationFormatError,
    Turn,
    normalise_role,
)

Attributes = dict[str, Any]
_CHAT_OPERATIONS = {"chat", "text_completion", "generate_content"}
_ERROR_STATUS = {2, "2", "STATUS_CODE_ERROR", "ERROR"}


def looks_like(payload: object) -> bool:
    """Whether ``payload`` is an OTLP export or a list of spans."""
    if isinstance(payload, dict):
        return "resourceSpans" in payload or isinstance(payload.get("spans"), list)
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return "spanId" in payload[0] or "span_id" in payload[0] or "traceId" in payload[0]
    return False


def attribute_value(value: object) -> Any:
    """Decode an OTLP ``AnyValue`` (``{"stringValue": …}`` …); plain values pass through."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((kind, inner),) = value.items()
    if kind == "intValue":
        return as_int(inner)
    if kind == "arrayValue":
        return [attribute_value(v) for v in (inner or {}).get("values", [])]
    if kind == "kvlistValue":
        return attributes((inner or {}).get("values", []))
    if kind in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        return inner
    return value


def attributes(raw: object) -> Attributes:
    """Attributes as a flat dict from an OTLP key/value list or a plain object."""
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, list):
        return {
            kv["key"]: attribute_value(kv.get("value"))
            for kv in raw
            if isinstance(kv, dict) and "key" in kv
        }
    return {}


def conversations(payload: Any, *, where: str = "") -> list[Conversation]:
    """Read one record into the conversations its spans belong to."""
    spans = list(_spans(payload, where))
    groups: dict[str, list[tuple[Attributes, Attributes, dict[str, Any]]]] = defaultdict(list)
    for resource, attrs, span in spans:
        key = (
            as_str(attrs.get("gen_ai.conversation.id"))
            or as_str(attrs.get("session.id"))
            or as_str(span.get("traceId") or span.get("trace_id"))
        )
        if key is None:
            raise ConversationFormatError("span has no trace id", where=where)
        groups[key].append((resource, attrs, span))
    return [_conversation(key, members, where) for key, members in groups.items()]


def _spans(payload: Any, where: str) -> list[tuple[Attributes, Attributes, dict[str, Any]]]:
    found: list[tuple[Attributes, Attributes, dict[str, Any]]] = []
    if isinstance(payload, dict) and "resourceSpans" in payload:
        for r, resource_spans in enumerate(payload["resourceSpans"] or []):
            resource = attributes((resource_spans.get("resource") or {}).get("attributes"))
            for scope in resource_spans.get("scopeSpans") or []:
                for span in scope.get("spans") or []:
                    if not isinstance(span, dict):
                        raise ConversationFormatError(
                            "a span must be an object", where=f"{where}.resourceSpans[{r}]"
                        )
                    found.append((resource, attributes(span.get("attributes")), span))
        return found
    raw = payload.get("spans") if isinstance(payload, dict) else payload
    if not isinstance(raw, list):
        raise ConversationFormatError("expected resourceSpans or a list of spans", where=where)
    for i, span in enumerate(raw):
        if not isinstance(span, dict):
            raise ConversationFormatError("a span must be an object", where=f"{where}[{i}]")
        resource = attributes((span.get("resource") or {}).get("attributes"))
        found.append((resource, attributes(span.get("attributes")), span))
    return found


def _conversation(
    key: str, members: list[tuple[Attributes, Attributes, dict[str, Any]]], where: str
) -> Conversation:
    members.sort(key=lambda m: as_int(m[2].get("startTimeUnixNano")) or 0)
    turns: list[Turn] = []
    tool_spans = any(_is_tool_span(attrs) for _, attrs, _ in members)
    first_resource, first_attrs = members[0][0], members[0][1]
    for _, attrs, span in members:
        start = parse_time(span.get("startTimeUnixNano") or span.get("start_time"), where=where)
        end = parse_time(span.get("endTimeUnixNano") or span.get("end_time"), where=where)
        if _is_tool_span(attrs):
            turns.append(_tool_turn(attrs, span, start, end))
            continue
        inputs, outputs = _messages(attrs, span)
        if not inputs and not outputs:
            continue
        append_new(turns, [message_turn(m, where) for m in inputs], tool_spans)
        for message in outputs:
            turns.append(_output_turn(message, attrs, span, start, end, where))
    tags = first_attrs.get("tag.tags")
    return Conversation(
        id=key,
        turns=tuple(turns),
        app=as_str(first_resource.get("service.name")),
        prompt_version=as_str(first_attrs.get("llm.prompt_template.version"))
        or as_str(first_attrs.get("gen_ai.prompt.version")),
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        user=as_str(first_attrs.get("user.id")) or as_str(first_attrs.get("enduser.id")),
    )


def _is_tool_span(attrs: Attributes) -> bool:
    return (
        attrs.get("gen_ai.operation.name") == "execute_tool"
        or attrs.get("openinference.span.kind") == "TOOL"
    )


def _tool_turn(attrs: Attributes, span: dict[str, Any], start: Any, end: Any) -> Turn:
    status = span.get("status") or {}
    failed = status.get("code") in _ERROR_STATUS
    result = attrs.get("gen_ai.tool.call.result", attrs.get("output.value"))
    return Turn(
        role="tool",
        text=content_text(result)
        if not isinstance(result, dict)
        else orjson.dumps(result).decode(),
        time=start,
        end_time=end,
        name=as_str(attrs.get("gen_ai.tool.name")) or as_str(attrs.get("tool.name")),
        tool_call_id=as_str(attrs.get("gen_ai.tool.call.id")),
        error=(as_str(status.get("message")) or "tool span failed") if failed else None,
    )


def _messages(
    attrs: Attributes, span: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if "gen_ai.input.messages" in attrs or "gen_ai.output.messages" in attrs:
        inputs = _json_messages(attrs.get("gen_ai.system_instructions"), "system")
        inputs += _json_messages(attrs.get("gen_ai.input.messages"), None)
        return inputs, _json_messages(attrs.get("gen_ai.output.messages"), "assistant")
    for prompt, completion, inner in (
        ("gen_ai.prompt", "gen_ai.completion", ""),
        ("llm.input_messages", "llm.output_messages", "message."),
    ):
        inputs = _indexed(attrs, prompt, inner)
        outputs = _indexed(attrs, completion, inner)
        if inputs or outputs:
            return inputs, outputs
    return _event_messages(span)


def _json_messages(raw: object, default_role: str | None) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [{"role": default_role or "user", "content": raw}]
    if isinstance(raw, dict):
        raw = [raw]
    found: list[dict[str, Any]] = []
    for message in raw if isinstance(raw, list) else []:
        if not isinstance(message, dict):
            continue
        if "parts" not in message and "role" not in message and "content" in message:
            message = {"role": default_role, **message}
        parts = message.get("parts") or []
        text = content_text(message.get("content")) or "\n".join(
            content_text(p) for p in parts if isinstance(p, dict) and p.get("type") == "text"
        )
        calls = [
            {"name": p.get("name"), "arguments": p.get("arguments"), "id": p.get("id")}
            for p in parts
            if isinstance(p, dict) and p.get("type") == "tool_call"
        ]
        found.append(
            {
                "role": message.get("role") or default_role or "user",
                "content": text,
                "tool_calls": calls,
                "finish_reason": message.get("finish_reason"),
            }
        )
    return found


def _indexed(attrs: Attributes, prefix: str, inner: str) -> list[dict[str, Any]]:
    """Messages spread over ``prefix.N.{inner}field`` attributes, in index order."""
    lead = prefix + "."
    by_index: dict[int, dict[str, Any]] = defaultdict(dict)
    calls: dict[int, dict[int, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for key, value in attrs.items():
        if not key.startswith(lead):
            continue
        position, _, rest = key[len(lead) :].partition(".")
        if not position.isdigit():
            continue
        index = int(position)
        rest = rest.removeprefix(inner)
        if rest.startswith("tool_calls."):
            number, _, field = rest[len("tool_calls.") :].partition(".")
            field = field.removeprefix("tool_call.").removeprefix("function.")
            if number.isdigit():
                calls[index][int(number)][field] = value
            continue
        by_index[index][rest] = value
    for index, per_call in calls.items():
        by_index[index]["tool_calls"] = [per_call[n] for n in sorted(per_call)]
    return [by_index[i] for i in sorted(by_index)]


def _event_messages(span: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for event in span.get("events") or []:
        name = event.get("name", "")
        attrs = attributes(event.get("attributes"))
        body = attribute_value(event.get("body")) if "body" in event else attrs
        if name == "gen_ai.choice":
            message = body.get("message", body) if isinstance(body, dict) else {"content": body}
            outputs.append(
                {
                    "role": "assistant",
                    "content": content_text(message.get("content")),
                    "finish_reason": (body or {}).get("finish_reason"),
                }
            )
        elif name.startswith("gen_ai.") and name.endswith(".message"):
            role = name[len("gen_ai.") : -len(".message")]
            content = body.get("content") if isinstance(body, dict) else body
            inputs.append({"role": role, "content": content_text(content)})
    return inputs, outputs


def _output_turn(
    message: dict[str, Any],
    attrs: Attributes,
    span: dict[str, Any],
    start: Any,
    end: Any,
    where: str,
) -> Turn:
    finish = message.get("finish_reason") or attrs.get("gen_ai.response.finish_reasons")
    if isinstance(finish, list):
        finish = finish[0] if finish else None
    status = span.get("status") or {}
    return Turn(
        role=normalise_role(message.get("role") or "assistant", where=where),
        text=content_text(message.get("content")),
        time=start,
        end_time=end,
        model=as_str(attrs.get("gen_ai.response.model"))
        or as_str(attrs.get("gen_ai.request.model"))
        or as_str(attrs.get("llm.model_name")),
        input_tokens=as_int(
            attrs.get("gen_ai.usage.input_tokens")
            or attrs.get("gen_ai.usage.prompt_tokens")
            or attrs.get("llm.token_count.prompt")
        ),
        output_tokens=as_int(
            attrs.get("gen_ai.usage.output_tokens")
            or attrs.get("gen_ai.usage.completion_tokens")
            or attrs.get("llm.token_count.completion")
        ),
        cost=as_float(attrs.get("gen_ai.usage.cost") or attrs.get("llm.cost.total")),
        tool_calls=tool_calls(message),
        finish_reason=as_str(finish),
        error=as_str(status.get("message")) if status.get("code") in _ERROR_STATUS else None,
    )
