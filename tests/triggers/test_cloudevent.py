"""CloudEvents validation and the HTTP binding's three modes (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsloom.model.cloudevent import InvalidEventError, parse_event
from opsloom.triggers.binding import UnsupportedEventMediaError, events_from_http

BASE = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}


@pytest.mark.parametrize(
    "time",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01t12:00:00z",
        "2024-05-01T12:00:00.123456789+02:00",
        "1985-04-12T23:20:50.52-05:30",
    ],
)
def test_time__rfc3339_timestamps_are_kept_as_written(time: str) -> None:
    assert parse_event({**BASE, "time": time}).time == time


@pytest.mark.parametrize(
    "time", ["2024-13-01T12:00:00Z", "2024-05-01 12:00:00Z", "2024-05-01T12:00:00", "yesterday"]
)
def test_time__anything_else_is_refused(time: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event({**BASE, "time": time})
    assert caught.value.attribute == "time"


@pytest.mark.parametrize(
    ("extra", "attribute"),
    [
        ({"big": 2**31}, "big"),
        ({"data": 1, "data_base64": "AA=="}, "data_base64"),
        ({"data_base64": "not base64!"}, "data_base64"),
        ({"tags": ["a"]}, "tags"),
        ({"data": {"when": object()}}, "data"),
    ],
)
def test_invalid__names_the_attribute(extra: dict[str, Any], attribute: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event({**BASE, **extra})
    assert caught.value.attribute == attribute and caught.value.code == "invalid_event"


def test_null__means_absent_and_a_default_id_fills_a_missing_one() -> None:
    event = parse_event({**BASE, "id": None, "subject": None, "x": None}, default_id=lambda: "g")
    assert event.id == "g" and event.subject is None and dict(event.extensions) == {}
    with pytest.raises(InvalidEventError, match="'id' is missing"):
        parse_event({**BASE, "id": None})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
events = st.fixed_dictionaries(
    {
        "specversion": st.just("1.0"),
        "id": st.text(min_size=1, max_size=10),
        "source": st.text(min_size=1, max_size=10),
        "type": st.text(min_size=1, max_size=10),
    },
    optional={
        "subject": st.text(min_size=1, max_size=10),
        "team": st.text(max_size=5) | st.booleans() | st.integers(-(2**31), 2**31 - 1),
        "data": json_values.filter(lambda v: v is not None),
    },
)


@given(events)
def test_round_trip__the_json_form_parses_back_to_the_same_event(value: dict[str, Any]) -> None:
    event = parse_event(value)
    assert event.to_dict() == value
    assert parse_event(event.to_dict()) == event


def test_binding__structured_batch_and_binary() -> None:
    [structured] = events_from_http(
        {"Content-Type": "application/cloudevents+json; charset=utf-8"},
        b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t"}',
    )
    assert structured.id == "1"
    batch = events_from_http(
        {"content-type": "application/cloudevents-batch+json"},
        b'[{"specversion": "1.0", "id": "1", "source": "s", "type": "t"},'
        b' {"specversion": "1.0", "id": "2", "source": "s", "type": "t"}]',
    )
    assert [e.id for e in batch] == ["1", "2"]
    assert events_from_http({"content-type": "application/cloudevents-batch+json"}, b"[]") == []
    [binary] = events_from_http(
        {"CE-SpecVersion": "1.0", "ce-id": "9", "ce-source": "a%20b", "ce-type": "t",
         "content-type": "application/vnd.api+json"},
        b'{"x": 1}',
    )  # fmt: skip
    assert (binary.source, binary.data, binary.datacontenttype) == (
        "a b",
        {"x": 1},
        "application/vnd.api+json",
    )


def test_binding__errors_say_where() -> None:
    with pytest.raises(InvalidEventError) as caught:
        events_from_http(
            {"content-type": "application/cloudevents-batch+json"},
            b'[{"specversion": "1.0", "id": "1", "source": "s", "type": "t"}, {"id": "2"}]',
        )
    assert caught.value.index == 1 and caught.value.attribute == "source"
    assert str(caught.value).startswith("event #1 of the batch")
    with pytest.raises(InvalidEventError, match="not valid JSON"):
        events_from_http({"ce-specversion": "1.0", "content-type": "application/json"}, b"{")
    with pytest.raises(UnsupportedEventMediaError):
        events_from_http({"content-type": "application/xml"}, b"<a/>")


def test_http__json_bodies_of_any_content_type_are_structured_or_batched() -> None:
    one = b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": {"n": 1}}'
    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}):
        [event] = events_from_http(headers, one)
        assert event.to_dict() == {
            "specversion": "1.0",
            "id": "1",
            "source": "s",
            "type": "t",
            "data": {"n": 1},
        }
    batch = b'[{"specversion": "1.0", "id": "1", "source": "s", "type": "t"}, {"id": "2"}]'
    with pytest.raises(InvalidEventError) as caught:
        events_from_http({"content-type": "text/plain"}, batch)
    assert (caught.value.index, caught.value.attribute) == (1, "source")
