"""Langfuse exports: traces with their observations (``GET /api/public/traces/{id}``).

A record is a trace (``TraceWithFullDetails``: the trace and its ``observations``), a page
of them (``{"data": [...]}``) or a list of traces. Traces that share a ``sessionId`` form one
conversation (Langfuse's sessions), in time order. Within a trace, ``GENERATION``
observations in start order give the messages: their ``input`` (a message list, a
``{"messages"}`` object or text) adds the messages not yet seen, their ``output`` is the
assistant turn with the observation's model, usage, cost, prompt and timing. ``TOOL``
observations become tool turns; level ``ERROR`` marks a tool or generation as failed. A trace
without generations falls back to its own ``input``/``output``.
"""

from __future__ import annotations

from typing import Any

from opsloom.insights.adapters.history import append_new, message_turn, tool_calls
from opsloom.insights.adapters.value import (
    as_float,
    as_int,
    as_str,
    content_text,
    parse_time,
)
from opsloom.insights.conversation import (
    Conversation,
    ConversationFormatError,
    Turn,
    normalise_role,
)


def looks_like(payload: object) -> bool:
    """Whether ``payload`` is a Langfuse trace, a page of traces or a list of them."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        payload = payload["data"]
    if isinstance(payload, list):
        payload = payload[0] if payload else None
    return isinstance(payload, dict) and "observations" in payload and "id" in payload


def conversations(payload: Any, *, where: str = "") -> list[Conversation]:
    """Read one record: each session (or lone trace) becomes a conversation."""
    traces = payload.get("data") if isinstance(payload, dict) and "data" in payload else payload
    if isinstance(traces, dict):
        traces = [traces]
    if not isinstance(traces, list):
        raise ConversationFormatError("expected a trace, a list or a page of traces", where=where)
    sessions: dict[str, list[dict[str, Any]]] = {}
    for i, trace in enumerate(traces):
        if not isinstance(trace, dict) or not as_str(trace.get("id")):
            raise ConversationFormatError(
                "a trace must be an object with an id", where=f"{where}[{i}]"
            )
        key = as_str(trace.get("sessionId")) or str(trace["id"])
        sessions.setdefault(key, []).append(trace)
    return [_conversation(key, members, where) for key, members in sessions.items()]


def _conversation(key: str, traces: list[dict[str, Any]], where: str) -> Conversation:
    traces.sort(key=lambda t: str(t.get("timestamp") or ""))
    turns: list[Turn] = []
    prompt_version: str | None = None
    for trace in traces:
        tw = f"{where}.trace[{trace['id']}]"
        observations = trace.get("observations") or []
        if not isinstance(observations, list):
            raise ConversationFormatError("'observations' must be a list", where=tw)
        ordered = sorted(
            (o for o in observations if isinstance(o, dict)),
            key=lambda o: str(o.get("startTime") or ""),
        )
        generations = [o for o in ordered if o.get("type") == "GENERATION"]
        tool_observations = any(o.get("type") == "TOOL" for o in ordered)
        for obs in ordered:
            ow = f"{tw}.observation[{obs.get('id')}]"
            if obs.get("type") == "TOOL":
                turns.append(_tool_turn(obs, ow))
            elif obs.get("type") == "GENERATION":
                append_new(turns, _input_turns(obs.get("input"), ow), tool_observations)
                turns.extend(_output_turns(obs, ow))
                if obs.get("promptName"):
                    prompt_version = f"{obs['promptName']}:{obs.get('promptVersion')}"
        if not generations:
            time = parse_time(trace.get("timestamp"), where=f"{tw}.timestamp")
            if trace.get("input") is not None:
                append_new(turns, _input_turns(trace["input"], tw, time), False)
            if trace.get("output") is not None:
                text = content_text(_unwrap_output(trace["output"]))
                turns.append(Turn(role="assistant", text=text, time=time))
    first = traces[0]
    tags = first.get("tags")
    metadata = first.get("metadata")
    return Conversation(
        id=key,
        turns=tuple(turns),
        app=as_str(first.get("name")),
        prompt_version=prompt_version or as_str(first.get("version")),
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        user=as_str(first.get("userId")),
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def _input_turns(raw: object, where: str, time: Any = None) -> list[Turn]:
    if isinstance(raw, dict) and isinstance(raw.get("messages"), list):
        raw = raw["messages"]
    if isinstance(raw, list):
        return [message_turn(m, f"{where}.input[{i}]") for i, m in enumerate(raw)]
    if raw is None:
        return []
    return [Turn(role="user", text=content_text(raw), time=time)]


def _unwrap_output(output: object) -> object:
    if isinstance(output, dict) and isinstance(output.get("choices"), list) and output["choices"]:
        first = output["choices"][0]
        return first.get("message", first) if isinstance(first, dict) else first
    return output


def _output_turns(obs: dict[str, Any], where: str) -> list[Turn]:
    output = _unwrap_output(obs.get("output"))
    failed = obs.get("level") == "ERROR"
    if output is None and not failed:
        return []
    message = output if isinstance(output, dict) else {"content": output}
    usage = obs.get("usageDetails") or obs.get("usage") or {}
    cost = obs.get("costDetails") or {}
    return [
        Turn(
            role=normalise_role(message.get("role") or "assistant", where=where),
            text=content_text(message.get("content")),
            time=parse_time(obs.get("startTime"), where=f"{where}.startTime"),
            end_time=parse_time(obs.get("endTime"), where=f"{where}.endTime"),
            model=as_str(obs.get("model")),
            input_tokens=as_int(usage.get("input")),
            output_tokens=as_int(usage.get("output")),
            cost=as_float(obs.get("calculatedTotalCost")) or as_float(cost.get("total")),
            tool_calls=tool_calls(message),
            finish_reason=as_str(message.get("finish_reason"))
            or as_str((obs.get("metadata") or {}).get("finish_reason")),
            error=(as_str(obs.get("statusMessage")) or "generation failed") if failed else None,
        )
    ]


def _tool_turn(obs: dict[str, Any], where: str) -> Turn:
    failed = obs.get("level") == "ERROR"
    return Turn(
        role="tool",
        text=content_text(obs.get("output")),
        time=parse_time(obs.get("startTime"), where=f"{where}.startTime"),
        end_time=parse_time(obs.get("endTime"), where=f"{where}.endTime"),
        name=as_str(obs.get("name")),
        error=(as_str(obs.get("statusMessage")) or "tool failed") if failed else None,
    )
