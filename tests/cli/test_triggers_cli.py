"""``opsloom triggers list`` and the starting event in ``opsloom runs show`` (Typer's runner)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from opsloom.cli.main import cli
from opsloom.cli.triggers import triggers_cli
from opsloom.model.cloudevent import parse_event
from opsloom.model.trigger import Trigger, default_follow
from opsloom.store import RunFilter, open_store

runner = CliRunner()
FIRING = "io.opsloom.alert.firing.v1"


def make_db(tmp_path: Path) -> tuple[str, str]:
    """A database with one trigger and the run a firing alert started; (url, run id)."""
    url = f"sqlite:///{tmp_path / 'triggers.db'}"

    async def go() -> str:
        store = open_store(url)
        await store.open()
        try:
            filters = [{"type": FIRING}]
            await store.save_trigger(
                Trigger(
                    id="code:incident",
                    workflow="incident",
                    version="1",
                    filters=filters,
                    follow=default_follow("one", filters),
                    window=120,
                ),
                1e9,
            )
            event = {
                "specversion": "1.0",
                "id": "alert-1",
                "source": "/hooks/alertmanager",
                "type": FIRING,
                "subject": "fp-1",
                "data": {"labels": {"alertname": "DiskFull"}},
            }
            await store.append_events([parse_event(event)], 1e9 + 1)
            [run] = await store.list_runs(RunFilter(workflow="incident"))
            return run.id
        finally:
            await store.close()

    return url, asyncio.run(go())


def test_triggers_list__json_and_table(tmp_path: Path) -> None:
    db, run_id = make_db(tmp_path)
    listed = runner.invoke(triggers_cli, ["list", "--db", db, "--json", "--runs", "5"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["workflow"], row["mode"], row["key"], row["window"]) == (
        "code:incident",
        "incident",
        "one",
        ".subject",
        120.0,
    )
    assert row["follow"] == [{"type": "io.opsloom.alert.resolved.v1"}]
    [started] = row["runs"]
    assert (started["run_id"], started["key"], started["event_id"], started["closed_at"]) == (
        run_id,
        "fp-1",
        "alert-1",
        None,
    )
    table = runner.invoke(triggers_cli, ["list", "--db", db, "--runs", "5"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "code:incident" in table.stdout and "incident:1" in table.stdout
    assert "follows io.opsloom.alert.resolved.v1" in table.stdout
    assert "open" in table.stdout and "fp-1" in table.stdout


def test_runs_show__names_the_event_that_started_the_run(tmp_path: Path) -> None:
    db, run_id = make_db(tmp_path)
    shown = runner.invoke(cli, ["runs", "show", run_id, "--db", db], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "event:  /hooks/alertmanager alert-1" in shown.stdout
    as_json = runner.invoke(cli, ["runs", "show", run_id, "--db", db, "--json"])
    data = json.loads(as_json.stdout)
    assert (data["event_source"], data["event_id"]) == ("/hooks/alertmanager", "alert-1")
    assert data["input"]["data"]["labels"] == {"alertname": "DiskFull"}


def test_triggers_show__one_trigger_with_its_runs_or_exit_1(tmp_path: Path) -> None:
    db, run_id = make_db(tmp_path)
    shown = runner.invoke(triggers_cli, ["show", "code:incident", "--db", db, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["id"] == "code:incident" and [r["run_id"] for r in data["runs"]] == [run_id]
    text = runner.invoke(triggers_cli, ["show", "code:incident", "--db", db])
    assert "dedup key: .subject  window: 120s" in text.stdout
    missing = runner.invoke(triggers_cli, ["show", "code:nope", "--db", db])
    assert missing.exit_code == 1 and "no trigger 'code:nope'" in missing.output
