"""Dead letters: an event a trigger cannot turn into a run is kept with the reason, listed,
and replayed once the trigger is fixed; API and CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx
import pytest

from opsloom import App, Context, FakeClock
from opsloom.api import create_api
from opsloom.errors import DeadLetterStateError
from opsloom.settings import Settings


async def test_dead_letters__kept_listed_refused_then_replayed_after_a_fix(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="count")
    async def count(ctx: Context, n: object) -> object:
        return n

    app.trigger("count", on={"type": "test.counted"}, key=None, input=".data.n + 1")
    api = create_api(app, Settings(api_token="tok"))
    auth = {"Authorization": "Bearer tok"}
    async with app:
        await app.emit(
            {
                "specversion": "1.0",
                "id": "e1",
                "source": "test",
                "type": "test.counted",
                "data": {"n": "x"},
            }
        )
        [letter] = await app.store.list_dead_letters()
        assert (letter.trigger_id, letter.event_id, letter.reason) == ("code:count", "e1", "input")
        assert ".data.n + 1" in letter.detail
        with pytest.raises(DeadLetterStateError, match="fails again"):
            await app.store.replay_dead_letter(letter.id, clock.now())
        assert (await app.store.list_dead_letters())[0].replayed_at is None
        trigger = await app.store.get_trigger("code:count")
        assert trigger is not None
        await app.store.save_trigger(dataclasses.replace(trigger, input=".data.n"), clock.now())
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            listed = await http.get("/api/v1/dead-letters", headers=auth)
            replayed = await http.post(f"/api/v1/dead-letters/{letter.id}/replay", headers=auth)
            again = await http.post(f"/api/v1/dead-letters/{letter.id}/replay", headers=auth)
            missing = await http.post("/api/v1/dead-letters/999/replay", headers=auth)
        assert listed.status_code == 200 and listed.json()[0]["id"] == letter.id
        assert replayed.status_code == 200, replayed.text
        run_id = replayed.json()["run_id"]
        assert run_id is not None
        assert await app.handle(run_id).result(timeout=10) == "x"
        assert again.status_code == 409 and "replayed already" in again.text
        assert missing.status_code == 404
        assert await app.store.list_dead_letters() == []
        assert len(await app.store.list_dead_letters(pending=False)) == 1
