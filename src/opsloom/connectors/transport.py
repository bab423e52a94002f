"""The one HTTP layer of every connector: timeouts, error classes and retry delays.

Built on ``httpx`` (the client the rest of opsloom already uses, so one connection pool per
connection and one set of behaviours). A connector sends requests through
:class:`Transport`, which turns what comes back into a result or a classified error:

- 2xx/3xx: the response;
- 429, and GitHub's 403 with ``x-ratelimit-remaining: 0`` (or a ``Retry-After``):
  :class:`~opsloom.errors.RateLimitedError`;
- 5xx and 408, a refused/reset connection, a timeout:
  :class:`~opsloom.errors.ConnectorRetryableError`;
- any other 4xx: :class:`~opsloom.errors.ConnectorPermanentError` (retrying cannot help).

The delay a remote asks for (see :func:`retry_delay`) becomes the error's ``retry_after``,
which the engine's retry policy honours: the step waits durably, holding no worker slot.
Every message is passed through the connection's :class:`~opsloom.model.redaction.Redactor`
(URLs and bodies can carry tokens).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Any

import httpx

from opsloom.errors import (
    ConnectorError,
    ConnectorPermanentError,
    ConnectorRetryableError,
    RateLimitedError,
)
from opsloom.model.redaction import Redactor

_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")
#: Epoch values above this are absolute times; below, seconds from now.
_EPOCH = 1_000_000_000.0
_SNIPPET = 300


def retry_delay(headers: Mapping[str, str], now: float, body: Any = None) -> float | None:
    """Seconds a response asks the caller to wait before trying again, if it says.

    Looks, in this order, at ``retry-after-ms`` (OpenAI-style), ``Retry-After`` (seconds or an
    HTTP date), ``X-RateLimit-Reset-After`` (Discord, seconds), ``X-RateLimit-Reset`` (epoch
    seconds as GitHub sends, epoch milliseconds, seconds from now, or an ISO 8601 time), then
    the body: ``retry_after`` (Discord, Slack) or ``parameters.retry_after`` (Telegram).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    millis = lower.get("retry-after-ms")
    if millis is not None and _NUMBER.match(millis):
        return float(millis) / 1000.0
    after = lower.get("retry-after")
    if after is not None:
        parsed = _seconds_or_date(after, now)
        if parsed is not None:
            return parsed
    reset_after = lower.get("x-ratelimit-reset-after")
    if reset_after is not None and _NUMBER.match(reset_after):
        return max(0.0, float(reset_after))
    reset = lower.get("x-ratelimit-reset")
    if reset is not None:
        parsed = _reset(reset, now)
        if parsed is not None:
            return parsed
    return _body_hint(body)


def _seconds_or_date(value: str, now: float) -> float | None:
    if _NUMBER.match(value):
        return max(0.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _reset(value: str, now: float) -> float | None:
    if _NUMBER.match(value):
        number = float(value)
        if number > _EPOCH * 1000:
            number /= 1000.0
        return max(0.0, number - now) if number > _EPOCH else number
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _body_hint(body: Any) -> float | None:
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("parameters")):
        if isinstance(holder, dict):
            value = holder.get("retry_after")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return float(value)
    return None


def _json_or_none(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def classify(
    response: httpx.Response, now: float, *, what: str, redactor: Redactor
) -> ConnectorError | None:
    """The error a response stands for (None for success); see the module docstring."""
    status = response.status_code
    if status < 400:
        return None
    body = _json_or_none(response)
    delay = retry_delay(response.headers, now, body)
    text = redactor.text(response.text[:_SNIPPET].strip())
    message = f"{what}: HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
    github_limited = status == 403 and (
        response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
    )
    if status == 429 or github_limited:
        return RateLimitedError(message, status=status, retry_after=delay)
    if status >= 500 or status == 408:
        return ConnectorRetryableError(message, status=status, retry_after=delay)
    return ConnectorPermanentError(message, status=status)


def transport_error(exc: httpx.HTTPError, *, what: str, redactor: Redactor) -> ConnectorError:
    """The connector error for a request that got no answer.

    A server whose certificate does not verify is a permanent failure: a wrong CA, a name
    the certificate does not cover or someone in the middle, which retrying cannot mend.
    """
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    detail = redactor.text(str(exc) or type(exc).__name__)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ConnectorPermanentError(f"{what}: the server's TLS certificate: {detail}")
        cause = cause.__cause__ or cause.__context__
    return ConnectorRetryableError(f"{what}: request {kind}: {detail}")


class Transport:
    """HTTP requests of one connection, on its own pooled ``httpx.AsyncClient``.

    Args:
        client: the connection's client (base URL, auth headers, timeouts already set).
        redactor: masks the connection's secrets in error messages.
        now: the time source for ``Retry-After`` dates.
        label: names the connection in messages.
    """

    __slots__ = ("client", "label", "now", "redactor")

    def __init__(self, client: httpx.AsyncClient, redactor: Redactor, now: Any, label: str) -> None:
        self.client = client
        self.redactor = redactor
        self.now = now
        self.label = label

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send a request; the response when it succeeded, else a classified error.

        Args:
            ok: extra error statuses the caller handles itself (e.g. 404 for "not there").
        """
        try:
            response = await self.client.request(
                method, url, json=json, data=data, params=params, headers=headers, content=content
            )
        except httpx.HTTPError as exc:
            what = self._what(method, url)
            raise transport_error(exc, what=what, redactor=self.redactor) from None
        # Parsing the URL again costs more than the rest of a call's overhead: errors only.
        if response.status_code < 400 or response.status_code in ok:
            return response
        error = classify(response, self.now(), what=self._what(method, url), redactor=self.redactor)
        if error is not None:
            raise error
        return response

    def _what(self, method: str, url: str) -> str:
        return f"{method} {self.label}{httpx.URL(url).path}"

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the body as JSON (``None`` when empty)."""
        response = await self.request(method, url, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ConnectorPermanentError(
                f"{method} {self.label}: the answer is not JSON "
                f"({response.headers.get('content-type', 'no content type')})",
                status=response.status_code,
            ) from None


def make_client(
    base_url: str,
    headers: Mapping[str, str],
    timeout: float,
    *,
    verify: bool | ssl.SSLContext = True,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """A pooled client for one connection: connect timeout 5 s (or less), others ``timeout``."""
    try:
        version = metadata.version("opsloom")
    except metadata.PackageNotFoundError:
        version = "0"
    merged = {"User-Agent": f"opsloom/{version}", **headers}
    return httpx.AsyncClient(
        base_url=base_url,
        headers=merged,
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        follow_redirects=False,
        verify=verify,
        auth=auth,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )
