"""Labels: given at start or set by the run, recorded once, listed and filtered on."""

from __future__ import annotations

import pytest
from engine_waits import parked

from opsloom import App, Context, RunFailedError
from opsloom.errors import InputError


async def test_labels__at_start_and_set_by_the_run_filter_listings(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context, service: str) -> None:
        await ctx.set_labels({"service": service, "stage": "triage"})
        await ctx.wait_for("go")
        await ctx.set_labels({"stage": None, "outcome": "fixed"})

    async with app:
        db = await app.start("wf", "db", labels={"team": "storage"})
        web = await app.start("wf", "web", labels={"team": "edge"})
        await parked(app, db.run_id)
        await parked(app, web.run_id)
        assert (await app.get_run(db.run_id)).labels == {
            "service": "db",
            "stage": "triage",
            "team": "storage",
        }
        found = await app.list_runs(labels={"team": "storage", "stage": "triage"})
        assert [run.id for run in found] == [db.run_id]
        assert found[0].labels["service"] == "db"
        assert await app.list_runs(labels={"team": "nobody"}) == []
        await app.signal(db.run_id, "go")
        await db.result(timeout=10)
        assert (await app.get_run(db.run_id)).labels == {
            "outcome": "fixed",
            "service": "db",
            "team": "storage",
        }
        names = [s.name for s in (await app.get_run(db.run_id)).steps]
        assert names == ["labels", "go", "labels"]


async def test_labels__bad_labels_are_refused_naming_the_key(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.set_labels({"bad key": "x"})

    async with app:
        with pytest.raises(InputError, match="'has space'"):
            await app.start("wf", labels={"has space": "x"})
        with pytest.raises(InputError, match="string value"):
            await app.start("wf", labels={"ok": 1})  # type: ignore[dict-item]
        with pytest.raises(RunFailedError) as info:
            await (await app.start("wf")).result(timeout=10)
    assert info.value.error is not None and "'bad key'" in info.value.error["message"]
