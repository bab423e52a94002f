"""Retry delays from vendor headers and bodies, error classes, the token bucket."""

from __future__ import annotations

import httpx
import pytest

from opsloom.connectors.ratelimit import RateLimit, TokenBucket
from opsloom.connectors.secret import Redactor
from opsloom.connectors.transport import classify, retry_delay
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError, RateLimitedError

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "12"}, None, 12.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:40 GMT"}, None, 20.0),  # NOW + 20 s
        ({"retry-after-ms": "1500", "Retry-After": "9"}, None, 1.5),
        ({"X-RateLimit-Reset": str(int(NOW) + 42)}, None, 42.0),  # GitHub: epoch seconds
        ({"X-RateLimit-Reset": str(int(NOW + 3) * 1000)}, None, 3.0),  # epoch milliseconds
        ({"X-RateLimit-Reset": "5"}, None, 5.0),  # seconds from now
        ({"X-RateLimit-Reset": "2023-11-14T22:13:50Z"}, None, 30.0),  # ISO 8601
        ({"X-RateLimit-Reset-After": "0.25"}, None, 0.25),  # Discord
        ({}, {"retry_after": 3.5, "global": False}, 3.5),  # Discord body
        ({}, {"ok": False, "parameters": {"retry_after": 8}}, 8.0),  # Telegram body
        ({"Retry-After": "soon"}, None, None),
        ({}, None, None),
    ],
)
def test_retry_delay(headers: dict[str, str], body: object, expected: float | None) -> None:
    assert retry_delay(headers, NOW, body) == expected


def _response(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(
        status, headers=headers, text=text, request=httpx.Request("GET", "http://x/y")
    )


def test_classify() -> None:
    redactor = Redactor(["s3cret-token"])

    def kind(response: httpx.Response) -> type[Exception] | None:
        error = classify(response, NOW, what="GET x", redactor=redactor)
        return None if error is None else type(error)

    assert kind(_response(200)) is None
    assert kind(_response(429, {"Retry-After": "3"})) is RateLimitedError
    assert kind(_response(503)) is ConnectorRetryableError
    assert kind(_response(404)) is ConnectorPermanentError
    github = _response(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 60)})
    error = classify(github, NOW, what="GET x", redactor=redactor)
    assert isinstance(error, RateLimitedError) and error.retry_after == 60.0
    forbidden = classify(
        _response(403, text="token s3cret-token refused"), NOW, what="x", redactor=redactor
    )
    assert isinstance(forbidden, ConnectorPermanentError)
    assert "s3cret-token" not in str(forbidden) and "***" in str(forbidden)


def test_token_bucket__burst_then_rate() -> None:
    bucket = TokenBucket(RateLimit(rate=2, burst=3))
    assert [bucket.take(0)[0] for _ in range(3)] == [0.0, 0.0, 0.0]
    wait, granted = bucket.take(0)
    assert (wait, granted) == (0.5, False)  # nothing taken
    wait, granted = bucket.take(0, max_wait=1.0)
    assert (wait, granted) == (0.5, True)  # reserved
    wait, granted = bucket.take(0, max_wait=1.0)
    assert (wait, granted) == (1.0, True)  # queued behind the reservation
    assert bucket.take(10)[1] is True
