"""Every route, fed hostile ids, queries and bodies: never a 500, nothing half-created.

Hypothesis draws the requests (derandomised, so every run sends the same ones) against a real
App on a SQLite file; a refused request must leave the runs and events exactly as they were.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastapi.routing
import httpx
import pytest
from authkit import bearer
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsloom import App, Context, FakeClock
from opsloom.api import create_api
from opsloom.api.routes.hooks import HookReceiver
from opsloom.settings import Settings
from opsloom.store.event import EventQuery
from opsloom.triggers.sources import load_hooks_config

NOW = 1_715_004_000.0

#: Ids and path segments that have broken servers: control characters, unicode, traversal.
HOSTILE_IDS = [
    "a\r\nSet-Cookie: x=1",
    "caf\u00e9",
    "\u202e\u0000",
    "x" * 300,
    "../../etc/passwd",
    "%00",
    "doc:ops/x#1",
    "1e23",
    str(2**64),
    "-1",
]
#: Bodies as raw text: nesting past the parser's limits, long numbers, NaN, odd types.
HOSTILE_TEXTS = [
    "[" * 5000 + "]" * 5000,
    '{"a":' * 1000 + "1" + "}" * 1000,
    "1" * 5000,
    "NaN",
    '{"x": Infinity}',
    '{"workflow": "hold", "priority": 9223372036854775808}',
    '{"workflow": "hold", "run_id": "a\\r\\nb"}',
    '{"workflow": "hold", "input": "\\ud800"}',
    '{"workflow": ["hold"], "input": {"deep": ' + "[" * 300 + "]" * 300 + "}}",
    '{"approved": "yes", "reason": 5, "to": null}',
    '"' + "z" * 200_000 + '"',
    "\xff\xfe not utf-8",
    "",
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["workflow", "input", "run_id", "priority", "approved", "reason", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
BODIES = st.sampled_from(HOSTILE_TEXTS).map(lambda t: t.encode("utf-8", "surrogatepass")) | (
    JSON_VALUES.map(lambda value: json.dumps(value).encode())
)
IDS = st.sampled_from(HOSTILE_IDS) | st.text(min_size=1, max_size=40)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/cloudevents+json",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
    ]
)


class Target:
    """The App and a client, kept open across the examples of one route."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = App(f"sqlite:///{path / 'fuzz.db'}", clock=FakeClock(NOW))

        @self.app.workflow(name="hold")
        async def hold(ctx: Context, x: Any = None) -> Any:
            return await ctx.wait_for("go")

        self.run(self.app.open())
        token = self.run(bearer(self.app))
        self.api = create_api(self.app, Settings(api_token=None))
        config = load_hooks_config(environ={"OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": token})
        self.api.state.hooks = HookReceiver(config)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.api),
            base_url="http://opsloom.test",
            headers={"Authorization": f"Bearer {token}"},
        )

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def state(self) -> tuple[list[str], list[str]]:
        runs = sorted(run.id for run in await self.app.list_runs(limit=1000))
        events = [
            item.event.id for item in await self.app.store.list_events(EventQuery(limit=1000))
        ]
        return runs, sorted(events)

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.app.close())
        self.loop.close()


def routes() -> list[tuple[str, str]]:
    """(method, path) of every route the API serves, the documentation pages left out."""
    api: FastAPI = create_api(App("sqlite:///:memory:"), Settings(api_token=None))
    # FastAPI 0.16x keeps included routers as such; their routes are reached through contexts.
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    found = list(api.routes) if iterate is None else list(iterate(api.routes))
    return sorted(
        {
            (method, route.path)
            for route in found
            if isinstance(getattr(route, "original_route", route), APIRoute)
            for method in route.methods
        }
    )


ROUTES = routes()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    target = Target(tmp_path)
    yield target
    target.close()


def fill(path: str, ids: list[str]) -> str:
    """``path`` with each ``{param}`` replaced by the next id, percent-encoded."""
    values = iter(ids)
    return re.sub(r"\{[^}]+\}", lambda _: quote(next(values), safe=""), path)


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_route__hostile_requests_never_500_and_refusals_change_nothing(
    target: Target, method: str, path: str
) -> None:
    params = re.findall(r"\{([^}:]+)", path)

    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        ids=st.lists(IDS, min_size=len(params), max_size=len(params)),
        body=BODIES,
        content_type=CONTENT_TYPES,
        query=st.dictionaries(
            st.sampled_from(["before", "limit", "status", "source", "since", "mine"]),
            st.sampled_from(HOSTILE_IDS),
            max_size=2,
        ),
    )
    def attempt(ids: list[str], body: bytes, content_type: str, query: dict[str, str]) -> None:
        url = fill(path, ids)

        async def send() -> None:
            before = await target.state()
            headers = {"Content-Type": content_type} if content_type else {}
            response = await target.client.request(
                method,
                url,
                content=body if method != "GET" else None,
                params=query,
                headers=headers,
            )
            assert response.status_code < 500, (method, url, response.text[:500])
            if response.status_code >= 400:
                assert await target.state() == before, (method, url, response.text[:300])

        target.run(send())

    attempt()
