"""Matching events to filters (pure functions)."""

from __future__ import annotations

import json
import logging
from typing import Any

import jq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsloom.errors import InputError
from opsloom.model.matching import check_filters, deliveries, first_match, first_output, matches

EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "e1",
    "source": "am/prod",
    "type": "alert.firing",
    "subject": "db-1",
    "priority": "1",  # arrived as the header ce-priority: 1
    "urgent": True,
    "data": {"labels": {"severity": "page"}, "count": 3},
}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"type": "alert.firing"}, True),
        ({"type": "alert.resolved"}, False),
        ({"type": "alert.firing", "subject": "db-1", "source": "am/prod"}, True),
        ({"type": "alert.firing", "subject": "db-2"}, False),
        ({"type": "alert.firing", "priority": 1}, True),
        ({"type": "alert.firing", "urgent": True}, True),
        ({"type": "alert.firing", "urgent": "true"}, True),
        ({"type": "alert.firing", "team": "dba"}, False),
        ({"type": "alert.firing", "where": '.data.labels.severity == "page"'}, True),
        ({"type": "alert.firing", "where": ".data.count > 5"}, False),
        ({"type": "alert.firing", "where": ".data.count"}, False),  # 3 is not true
        ({"type": "alert.firing", "where": "empty"}, False),
    ],
)
def test_matches(flt: dict[str, Any], expected: bool) -> None:
    assert matches(check_filters([flt])[0], EVENT) is expected


def test_where__an_evaluation_error_is_no_match_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flt = check_filters([{"type": "alert.firing", "where": ".data.labels + 1"}])[0]
    with caplog.at_level(logging.WARNING, logger="opsloom.triggers"):
        assert matches(flt, EVENT) is False
    assert any("jq filter failed" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([], "non-empty list"),
        ([{"source": "am"}], "'type'"),
        ([{"type": "a"}, {"subject": "x"}], "filter #1"),
        ([{"type": "a", "where": ".["}], "not a valid jq expression"),
        ([{"type": "a", "Subject": "x"}], "not a CloudEvents attribute name"),
        ([{"type": "a", "subject": ["x"]}], "literal"),
        ([{"type": "a", "data": "x"}], "'where'"),
        (["alert.firing"], "object"),
    ],
)
def test_check_filters__refuses_with_a_clear_message(filters: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_filters(filters)


def test_first_match__is_the_index_of_the_first_matching_filter() -> None:
    filters = check_filters(
        [
            {"type": "deploy.done"},
            {"type": "alert.firing", "subject": "db-1"},
            {"type": "alert.firing"},
        ]
    )
    assert first_match(filters, EVENT) == 1
    assert first_match(filters[:1], EVENT) is None


def test_deliveries__one_per_subscription_through_its_first_matching_filter() -> None:
    candidates = [
        ("s2", "r2", 1, {"type": "alert.firing"}),
        ("s1", "r1", 2, {"type": "alert.firing"}),
        ("s1", "r1", 0, {"type": "alert.firing", "subject": "db-1"}),
        ("s3", "r3", 0, {"type": "alert.firing", "subject": "db-9"}),
    ]
    assert deliveries(candidates, EVENT) == [("s1", "r1", 0), ("s2", "r2", 1)]


# --- first_output: plain paths without jq's round trip -----------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c_1"]), inner, max_size=3)
    ),
    max_leaves=12,
)
_PATHS = st.sampled_from([".", ".a", ".b", ".a.b", ".a.c_1.b", " .a ", ".a.a.a"])


def _by_jq(expression: str, value: Any) -> Any:
    outputs = jq.compile(expression).input_value(value).all()
    return outputs[0] if outputs else None


@given(expression=_PATHS, value=_JSON)
@settings(max_examples=300, deadline=None)
def test_first_output__a_plain_path_gives_what_jq_gives(expression: str, value: Any) -> None:
    try:
        expected: Any = _by_jq(expression, value)
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            first_output(expression, value)
        assert str(raised.value) == str(exc)
        return
    got = first_output(expression, value)
    # The same JSON, numbers written as jq writes them.
    assert json.dumps(got) == json.dumps(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (".data.labels.severity", "page"),
        (".data.count + 1", 4),
        ("[.id, .subject]", ["e1", "db-1"]),
    ],
)
def test_first_output__paths_and_other_expressions(expression: str, expected: Any) -> None:
    assert first_output(expression, EVENT) == expected


def test_first_output__refuses_what_is_not_jq() -> None:
    with pytest.raises(ValueError):
        first_output(".a..", EVENT)
