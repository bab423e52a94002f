"""Realistic conversation payloads in each supported format, shared by the insights tests."""

from __future__ import annotations

from typing import Any


def kv(key: str, value: Any) -> dict[str, Any]:
    """One OTLP attribute."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {
            "key": key,
            "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}},
        }
    return {"key": key, "value": {"stringValue": value}}


OPENAI_TOOLS: dict[str, Any] = {
    "id": "conv-weather-1",
    "model": "gpt-4o-mini",
    "metadata": {"app": "support-bot", "prompt_version": "v7", "user_id": "u-42"},
    "tags": ["weather", "beta"],
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "What's the weather in Paris?"}],
            "timestamp": "2026-12-07T10:00:00Z",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
            "timestamp": "2026-12-07T10:00:01Z",
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "upstream timeout",
            "error": "timeout after 10s",
        },
        {
            "role": "assistant",
            "content": "It is 12°C and cloudy in Paris right now.",
            "timestamp": "2026-12-07T10:00:02Z",
            "end_time": "2026-12-07T10:00:04Z",
            "model": "gpt-4o-mini-2024-07-18",
            "usage": {"prompt_tokens": 120, "completion_tokens": 14, "cost": 0.00021},
            "finish_reason": "stop",
        },
    ],
}

COMPLETION_LOG: dict[str, Any] = {
    "id": "log-9",
    "request": {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Summarise the incident in one line."}],
    },
    "response": {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1796637600,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "The database ran out of disk"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38},
    },
}

_T0 = 1796637600_000_000_000  # 2026-12-07T10:00:00Z in nanoseconds


def otel_genai() -> dict[str, Any]:
    """Two chat spans and a failing tool span of one conversation (GenAI conventions)."""
    first_in = '[{"role": "user", "parts": [{"type": "text", "content": "Restart the api pod"}]}]'
    first_out = (
        '[{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "restart",'
        ' "arguments": {"pod": "api"}}], "finish_reason": "tool_call"}]'
    )
    second_in = (
        '[{"role": "user", "parts": [{"type": "text", "content": "Restart the api pod"}]},'
        ' {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "restart"}]},'
        ' {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1",'
        ' "response": "forbidden"}]}]'
    )
    second_out = (
        '[{"role": "assistant", "parts": [{"type": "text", "content": "I could not restart it:'
        ' the service account lacks permission."}], "finish_reason": "stop"}]'
    )
    common = [kv("gen_ai.conversation.id", "ops-chat-7"), kv("gen_ai.provider.name", "openai")]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [kv("service.name", "ops-assistant")]},
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.openai"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat gpt-4o",
                                "startTimeUnixNano": str(_T0),
                                "endTimeUnixNano": str(_T0 + 900_000_000),
                                "attributes": [
                                    *common,
                                    kv("gen_ai.operation.name", "chat"),
                                    kv("gen_ai.request.model", "gpt-4o"),
                                    kv("gen_ai.response.model", "gpt-4o-2024-08-06"),
                                    kv("gen_ai.usage.input_tokens", 50),
                                    kv("gen_ai.usage.output_tokens", 12),
                                    kv("gen_ai.input.messages", first_in),
                                    kv("gen_ai.output.messages", first_out),
                                ],
                                "status": {},
                            },
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b175",
                                "name": "execute_tool restart",
                                "startTimeUnixNano": str(_T0 + 1_000_000_000),
                                "endTimeUnixNano": str(_T0 + 1_500_000_000),
                                "attributes": [
                                    *common,
                                    kv("gen_ai.operation.name", "execute_tool"),
                                    kv("gen_ai.tool.name", "restart"),
                                    kv("gen_ai.tool.call.id", "c1"),
                                ],
                                "status": {"code": 2, "message": "forbidden"},
                            },
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b176",
                                "name": "chat gpt-4o",
                                "startTimeUnixNano": str(_T0 + 2_000_000_000),
                                "endTimeUnixNano": str(_T0 + 3_000_000_000),
                                "attributes": [
                                    *common,
                                    kv("gen_ai.operation.name", "chat"),
                                    kv("gen_ai.request.model", "gpt-4o"),
                                    kv("gen_ai.usage.input_tokens", 80),
                                    kv("gen_ai.usage.output_tokens", 15),
                                    kv("gen_ai.response.finish_reasons", ["stop"]),
                                    kv("gen_ai.input.messages", second_in),
                                    kv("gen_ai.output.messages", second_out),
                                ],
                                "status": {},
                            },
                        ],
                    }
                ],
            }
        ]
    }


def openinference_spans() -> list[dict[str, Any]]:
    """A Phoenix-style span export: flat attributes, OpenInference names."""
    return [
        {
            "name": "ChatCompletion",
            "context": {"trace_id": "t-1", "span_id": "s-1"},
            "trace_id": "t-1",
            "span_id": "s-1",
            "start_time": "2026-12-07T10:00:00+00:00",
            "end_time": "2026-12-07T10:00:03+00:00",
            "attributes": {
                "openinference.span.kind": "LLM",
                "session.id": "sess-77",
                "user.id": "u-9",
                "llm.model_name": "claude-3-5-sonnet",
                "llm.token_count.prompt": 40,
                "llm.token_count.completion": 20,
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "Be brief.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "I was charged twice for order 88",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Sorry! I have opened a refund.",
            },
        }
    ]


def openllmetry_span() -> dict[str, Any]:
    """An OpenLLMetry span: gen_ai.prompt.N / gen_ai.completion.N attributes."""
    return {
        "traceId": "abc",
        "spanId": "def",
        "name": "openai.chat",
        "startTimeUnixNano": str(_T0),
        "endTimeUnixNano": str(_T0 + 2_000_000_000),
        "attributes": [
            kv("gen_ai.system", "OpenAI"),
            kv("gen_ai.request.model", "gpt-3.5-turbo"),
            kv("gen_ai.usage.prompt_tokens", 17),
            kv("gen_ai.usage.completion_tokens", 9),
            kv("gen_ai.prompt.0.role", "user"),
            kv("gen_ai.prompt.0.content", "Tell me a joke about Kubernetes"),
            kv("gen_ai.completion.0.role", "assistant"),
            kv("gen_ai.completion.0.content", "Why did the pod break up? Too many restarts."),
            kv("gen_ai.completion.0.finish_reason", "stop"),
        ],
    }


def langfuse_trace(
    trace_id: str, session: str, question: str, answer: str, minute: int
) -> dict[str, Any]:
    """A trace as ``GET /api/public/traces/{id}`` returns it, with one generation."""
    start = f"2026-12-07T10:{minute:02d}:00.000Z"
    end = f"2026-12-07T10:{minute:02d}:02.500Z"
    return {
        "id": trace_id,
        "timestamp": start,
        "name": "support-chat",
        "sessionId": session,
        "userId": "customer-3",
        "release": "2026.12.1",
        "version": "3",
        "tags": ["billing"],
        "public": False,
        "environment": "production",
        "input": question,
        "output": answer,
        "metadata": {"region": "eu"},
        "htmlPath": f"/project/p/traces/{trace_id}",
        "latency": 2.5,
        "totalCost": 0.0004,
        "scores": [],
        "observations": [
            {
                "id": f"{trace_id}-gen",
                "traceId": trace_id,
                "type": "GENERATION",
                "name": "llm",
                "startTime": start,
                "endTime": end,
                "completionStartTime": start,
                "model": "gpt-4o-mini",
                "modelParameters": {"temperature": 0},
                "input": [
                    {"role": "system", "content": "You answer billing questions."},
                    {"role": "user", "content": question},
                ],
                "output": {"role": "assistant", "content": answer},
                "level": "DEFAULT",
                "usageDetails": {"input": 25, "output": 10, "total": 35},
                "costDetails": {"total": 0.0002},
                "calculatedTotalCost": 0.0002,
                "promptName": "billing",
                "promptVersion": 4,
                "latency": 2.5,
                "timeToFirstToken": 0.4,
            }
        ],
    }
