"""Fakes of the vendors our connectors talk to, answering as their specs or docs say.

Each ``*_fake()`` returns an unstarted :class:`~opsloom.connectors.testing.FakeVendor`; use it
as a context manager. Vendors with a spec in ``shared/contracts`` check every request against
it; the others (PagerDuty, Jira) check the documented shape in their routes.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from opsloom.connectors.testing import (
    FakeRequest,
    FakeResponse,
    FakeVendor,
    SwaggerContract,
    load_spec,
    spec_example,
)


def _contracts() -> Path:
    # shared/ sits beside the repository (CI) or a few folders up (work trees).
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "contracts"
        if candidate.is_dir():
            return candidate
    return Path("shared") / "contracts"


CONTRACTS = _contracts()


def contract(relative: str) -> dict[str, Any]:
    """A vendor spec from the shared contracts folder (skip without it; fail on CI)."""
    path = CONTRACTS / relative
    if not path.exists():
        reason = f"vendor spec {path} is not available"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return load_spec(path)


_ts = itertools.count(1)


def slack_fake() -> FakeVendor:
    """Slack Web API methods, checked against Slack's Swagger 2.0 spec."""
    spec = contract("slack/slack_web_openapi_v2.json")
    # The spec names a `token` header; Slack's docs send `Authorization: Bearer`.
    checker = SwaggerContract(spec, header_aliases={"token": "authorization"})

    def example(path: str, method: str = "post") -> dict[str, Any]:
        body: dict[str, Any] = spec_example(spec, path, method)
        return body

    def post(request: FakeRequest) -> FakeResponse:
        body = example("/chat.postMessage")
        ts = f"1503435956.{next(_ts):06d}"
        return FakeResponse(200, {**body, "channel": request.form["channel"], "ts": ts})

    def update(request: FakeRequest) -> FakeResponse:
        body = example("/chat.update")
        return FakeResponse(
            200, {**body, "channel": request.form["channel"], "ts": request.form["ts"]}
        )

    def react(request: FakeRequest) -> FakeResponse:
        if request.form["name"] == "already":
            return FakeResponse(200, spec_example(spec, "/reactions.add", "post", "default"))
        return FakeResponse(200, example("/reactions.add"))

    def open_im(request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, example("/conversations.open"))

    def auth(request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, example("/auth.test", "get"))

    return FakeVendor(
        checker,
        {
            ("POST", "/api/chat.postMessage"): post,
            ("POST", "/api/chat.update"): update,
            ("POST", "/api/reactions.add"): react,
            ("POST", "/api/conversations.open"): open_im,
            ("GET", "/api/auth.test"): auth,
        },
    )


def slack_rate_limited(retry_after: int) -> FakeResponse:
    """Slack's documented answer when a method is over its rate limit."""
    return FakeResponse(
        429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
    )
