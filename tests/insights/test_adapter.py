"""Adapters: each format's realistic payloads read into the one conversation model."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from payloads import (
    COMPLETION_LOG,
    OPENAI_TOOLS,
    langfuse_trace,
    openinference_spans,
    openllmetry_span,
    otel_genai,
)

from opsloom.insights import ConversationFormatError, conversations_from, detect, read_stream


def test_openai__messages_with_tool_calls_keep_metadata() -> None:
    [conv] = conversations_from(OPENAI_TOOLS)
    assert conv.id == "conv-weather-1"
    assert (conv.app, conv.prompt_version, conv.user) == ("support-bot", "v7", "u-42")
    assert conv.tags == ("weather", "beta")
    assert [t.role for t in conv.turns] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.turns[1].text == "What's the weather in Paris?"
    assert conv.turns[1].time == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    call = conv.turns[2].tool_calls[0]
    assert (call.name, call.arguments, call.id) == ("get_weather", '{"city": "Paris"}', "call_1")
    assert conv.turns[3].error == "timeout after 10s"
    last = conv.turns[4]
    assert (last.input_tokens, last.output_tokens, last.cost) == (120, 14, 0.00021)
    assert last.model == "gpt-4o-mini-2024-07-18"
    assert conv.main_model() == "gpt-4o-mini"


def test_openai__completion_log_becomes_request_plus_answer() -> None:
    [conv] = conversations_from(COMPLETION_LOG, "openai")
    assert [t.role for t in conv.turns] == ["user", "assistant"]
    answer = conv.turns[1]
    assert answer.finish_reason == "length"
    assert answer.model == "gpt-4o-2024-08-06"
    assert (answer.input_tokens, answer.output_tokens) == (30, 8)
    assert answer.time is not None


def test_openai__unnamed_conversation_gets_a_stable_id() -> None:
    record = {"messages": [{"role": "user", "content": "hi"}]}
    assert conversations_from(record)[0].id == conversations_from(dict(record))[0].id
    other = {"messages": [{"role": "user", "content": "hello"}]}
    assert conversations_from(record)[0].id != conversations_from(other)[0].id


def test_otel_genai__spans_join_into_one_conversation_with_tool_error() -> None:
    [conv] = conversations_from(otel_genai())
    assert detect(otel_genai()) == "otel"
    assert conv.id == "ops-chat-7"
    assert conv.app == "ops-assistant"
    assert [t.role for t in conv.turns] == ["user", "assistant", "tool", "assistant"]
    assert conv.turns[1].tool_calls[0].name == "restart"
    assert conv.turns[2].error == "forbidden"
    assert conv.turns[3].text.startswith("I could not restart it")
    assert conv.turns[3].output_tokens == 15
    assert conv.turns[3].finish_reason == "stop"
    assert conv.turns[1].model == "gpt-4o-2024-08-06"
    assert conv.turns[3].end_time == datetime(2026, 12, 7, 10, 0, 3, tzinfo=UTC)


def test_otel__openinference_flat_attributes() -> None:
    [conv] = conversations_from(openinference_spans(), "otel")
    assert conv.id == "sess-77"
    assert conv.user == "u-9"
    assert [t.role for t in conv.turns] == ["system", "user", "assistant"]
    assert conv.turns[2].model == "claude-3-5-sonnet"
    assert conv.turns[2].input_tokens == 40


def test_otel__openllmetry_indexed_prompt_and_completion() -> None:
    [conv] = conversations_from({"spans": [openllmetry_span()]})
    assert [(t.role, t.text) for t in conv.turns] == [
        ("user", "Tell me a joke about Kubernetes"),
        ("assistant", "Why did the pod break up? Too many restarts."),
    ]
    assert conv.turns[1].input_tokens == 17


def test_langfuse__session_traces_form_one_conversation() -> None:
    page = {
        "data": [
            langfuse_trace("t2", "s-1", "And the VAT?", "VAT is 20%, included.", 5),
            langfuse_trace(
                "t1", "s-1", "Why was I billed twice?", "The second charge is a hold.", 1
            ),
        ]
    }
    [conv] = conversations_from(page)
    assert detect(page) == "langfuse"
    assert conv.id == "s-1"
    assert [(t.role, t.text) for t in conv.turns] == [
        ("system", "You answer billing questions."),
        ("user", "Why was I billed twice?"),
        ("assistant", "The second charge is a hold."),
        ("user", "And the VAT?"),
        ("assistant", "VAT is 20%, included."),
    ]
    assert conv.prompt_version == "billing:4"
    assert conv.turns[2].cost == 0.0002
    assert conv.turns[2].input_tokens == 25


def test_read_stream__jsonl_joins_consecutive_records_of_a_session() -> None:
    lines = [
        json.dumps(langfuse_trace("t1", "s-9", "q1", "a1", 1)),
        json.dumps(langfuse_trace("t2", "s-9", "q2", "a2", 2)),
        json.dumps(OPENAI_TOOLS),
    ]
    stream = io.BytesIO(("\n".join(lines) + "\n\n").encode())
    conversations = list(read_stream(stream))
    assert [c.id for c in conversations] == ["s-9", "conv-weather-1"]
    assert len(conversations[0].turns) == 5


def test_read_stream__pretty_printed_document() -> None:
    stream = io.BytesIO(json.dumps(otel_genai(), indent=2).encode())
    assert [c.id for c in read_stream(stream)] == ["ops-chat-7"]


def test_read_stream__bad_line_is_named() -> None:
    stream = io.BytesIO(b'{"messages": []}\n{"messages": [{"content": "no role"}]}\n')
    with pytest.raises(ConversationFormatError, match=r"chats.jsonl:2.*has no 'role'"):
        list(read_stream(stream, name="chats.jsonl"))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"hello": "world"}, "not a conversation in a known format"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "unknown role 'wizard'"),
        ({"messages": [{"role": "user", "timestamp": "yesterday"}]}, "not an ISO 8601 time"),
        ({"messages": "hi"}, "'messages' must be a list"),
    ],
)
def test_conversations_from__bad_input_says_what(payload: object, message: str) -> None:
    with pytest.raises(ConversationFormatError, match=message):
        conversations_from(payload)
