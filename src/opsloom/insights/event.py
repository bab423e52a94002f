"""Analysis results as CloudEvents, so triggers can start follow-up workflows.

Every analysed conversation gives one ``io.opsloom.conversation.analyzed.v1`` event (data:
the whole result) and, when it needs attention, one ``io.opsloom.conversation.attention.v1``
event per attention rule (data: conversation, rule, priority, insight, recommendation, the
flags and scores). ``subject`` is the conversation id, so a trigger's dedup key (``.subject``
by default) and window debounce follow-ups per conversation.

Event ids are idempotency keys: an analysed event's id derives from the result's content (the
same conversation analysed again the same way is a duplicate and ignored), an attention
event's from the conversation and the rule (a rule fires once per conversation, however often
the conversation grows and is analysed again).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from opsloom.model.cloudevent import CloudEvent, parse_event

SOURCE = "/opsloom/insights"
ANALYZED = "io.opsloom.conversation.analyzed.v1"
ATTENTION = "io.opsloom.conversation.attention.v1"
ANOMALY = "io.opsloom.conversation.anomaly.v1"


def _digest(*parts: object) -> str:
    blob = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:32]


def analyzed_event(result: dict[str, Any], time: str | None = None) -> dict[str, Any]:
    """The ``analyzed`` event of one result (JSON form)."""
    conversation_id = result["conversation"]["id"]
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"analyzed-{_digest(result)}",
        "source": SOURCE,
        "type": ANALYZED,
        "subject": conversation_id,
        "datacontenttype": "application/json",
        "attention": bool(result["attention"]["needed"]),
        "closed": bool(result["conversation"]["closed"]),
        "data": result,
    }
    if time is not None:
        event["time"] = time
    return event


def attention_events(result: dict[str, Any], time: str | None = None) -> list[dict[str, Any]]:
    """One ``attention`` event per attention rule that matched (JSON form)."""
    attention = result["attention"]
    if not attention["needed"]:
        return []
    conversation = result["conversation"]
    insights = {i["rule"]: i["text"] for i in result["insights"]}
    advice = {r["rule"]: r["text"] for r in result["recommendations"]}
    events = []
    for rule in attention["reasons"]:
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"attention-{_digest(conversation['id'], rule)}",
            "source": SOURCE,
            "type": ATTENTION,
            "subject": conversation["id"],
            "datacontenttype": "application/json",
            "rule": rule,
            "priority": attention["priority"],
            "data": {
                "conversation": conversation,
                "rule": rule,
                "priority": attention["priority"],
                "insight": insights.get(rule),
                "recommendation": advice.get(rule),
                "flags": result["flags"],
                "scores": result["scores"],
            },
        }
        if time is not None:
            event["time"] = time
        events.append(event)
    return events


def events_of(result: dict[str, Any], time: str | None = None) -> list[CloudEvent]:
    """All events of one result, validated, ready for :meth:`opsloom.app.App.emit_events`."""
    raw = [analyzed_event(result, time), *attention_events(result, time)]
    return [parse_event(e) for e in raw]


def anomaly_event(anomaly: dict[str, Any]) -> CloudEvent:
    """A flag-rate anomaly (see :mod:`opsloom.insights.trend`) as an event, once per window."""
    key = (anomaly["window"], anomaly["dimension"], anomaly["value"], anomaly["flag"])
    return parse_event(
        {
            "specversion": "1.0",
            "id": f"anomaly-{_digest(*key)}",
            "source": SOURCE,
            "type": ANOMALY,
            "subject": f"{anomaly['dimension']}={anomaly['value']}",
            "datacontenttype": "application/json",
            "flag": anomaly["flag"],
            "data": anomaly,
        }
    )
