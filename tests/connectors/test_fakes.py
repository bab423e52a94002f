"""The vendor fakes refuse what the vendor's spec or documentation refuses."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from vendors import (
    discord_fake,
    github_fake,
    jira_fake,
    openai_fake,
    opsgenie_fake,
    pagerduty_fake,
    slack_fake,
    twilio_fake,
)

from opsloom.connectors.testing import FakeRequest, FakeVendor


def request(method: str, path: str, body: object = None, **headers: str) -> FakeRequest:
    content = b"" if body is None else json.dumps(body).encode()
    base = {"content-type": "application/json"} if body is not None else {}
    return FakeRequest(method, path, {}, {**base, **headers}, content)


@pytest.mark.parametrize(
    ("factory", "bad", "why"),
    [
        (slack_fake, request("POST", "/api/chat.postMessage", {"text": "no channel"}), "channel"),
        (slack_fake, request("POST", "/api/chat.nope", {}), "not an operation"),
        (
            pagerduty_fake,
            request("POST", "/v2/enqueue", {"routing_key": "k", "event_action": "trigger"}),
            "payload",
        ),
        (
            jira_fake,
            request(
                "POST",
                "/rest/api/3/issue",
                {"fields": {"summary": "x"}},
                authorization="Basic eDp5",
            ),
            "project",
        ),
        (
            github_fake,
            request("POST", "/repos/a/b/issues", {"body": "no title"}, authorization="Bearer x"),
            "title",
        ),
        (
            opsgenie_fake,
            request("POST", "/v2/alerts", {"alias": "no message"}, authorization="GenieKey x"),
            "message",
        ),
        (
            discord_fake,
            request("POST", "/webhooks/not-a-snowflake/tok", {"content": "x"}),
            "webhook_id",
        ),
        (
            twilio_fake,
            request("POST", "/2010-04-01/Accounts/AC1/Messages.json", {"To": "+1"}),
            "Security",
        ),
        (openai_fake, request("POST", "/v1/chat/completions", {"model": "m"}), "messages"),
    ],
)
def test_fake__refuses_a_request_the_vendor_would(
    factory: Callable[[], FakeVendor], bad: FakeRequest, why: str
) -> None:
    fake = factory()
    answer = fake.serve(bad)
    assert answer.status == 400
    assert fake.problems and any(why in problem for problem in fake.problems), fake.problems
