"""Under overload the intake answers 503 with Retry-After instead of queueing without bound,
and every event it acknowledged is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from authkit import auth_headers

from opsloom import App
from opsloom.api import create_api
from opsloom.settings import Settings
from opsloom.store.event import EventQuery


async def test_intake__over_the_pending_limit_answers_503_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOM_INTAKE_MAX_PENDING", "2")
    app = App(f"sqlite:///{tmp_path / 'intake.db'}", worker=None)
    async with app:
        api = create_api(app, Settings())
        transport = httpx.ASGITransport(app=api)
        headers = await auth_headers(app, roles=["operator"])
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as client:

            async def send(i: int) -> httpx.Response:
                body = {"specversion": "1.0", "id": f"e{i}", "source": "load", "type": "t"}
                return await client.post("/api/v1/events", json=body)

            answers = await asyncio.gather(*(send(i) for i in range(40)))
        accepted = [a for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code == 503]
        assert len(accepted) + len(refused) == 40
        assert accepted and refused, [a.status_code for a in answers]
        assert all(a.headers["Retry-After"] == "1" for a in refused)
        assert refused[0].json()["code"] == "overloaded"
        stored = await app.store.list_events(EventQuery(limit=100))
        assert sorted(s.event.id for s in stored) == sorted(
            a.json()["accepted"][0] for a in accepted
        )
