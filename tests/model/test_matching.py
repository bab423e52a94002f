"""Matching events to filters (pure functions)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from opsloom.errors import InputError
from opsloom.model.matching import check_filters, deliveries, first_match, matches

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
