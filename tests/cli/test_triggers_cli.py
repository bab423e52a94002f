"""``opsloom triggers list`` and the starting event in ``opsloom runs show`` (Typer's runner)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from opsloom.cli.main import cli
from opsloom.cli.triggers import triggers_cli
from opsloom.model.cloudevent import parse_event
from opsloom.model.ratelimit import RateLimit
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


def test_triggers_show__debounce_rate_limit_and_the_keys_waiting(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'debounce.db'}"

    async def go() -> None:
        store = open_store(db)
        await store.open()
        try:
            limit = RateLimit.parse({"limit": 1, "period": "1m", "key": ".data.team"})
            trigger = Trigger(
                id="code:page",
                workflow="page",
                version="1",
                filters=[{"type": FIRING}],
                debounce=30,
                debounce_max=90,
                rate_limit=limit,
            )
            await store.save_trigger(trigger, 1e9)
            for n in range(3):
                event = {"specversion": "1.0", "id": f"e{n}", "source": "s", "type": FIRING}
                await store.append_events([parse_event({**event, "subject": "fp-9"})], 1e9 + n)
        finally:
            await store.close()

    asyncio.run(go())
    shown = runner.invoke(triggers_cli, ["show", "code:page", "--db", db, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert (data["debounce"], data["debounce_max"]) == (30.0, 90.0)
    assert data["rate_limit"] == {
        "per_second": 1 / 60,
        "burst": 1,
        "key": ".data.team",
        "overflow": "queue",
    }
    [held] = data["debounced"]
    assert (held["key"], held["event_id"], held["events"]) == ("fp-9", "e2", 3)
    assert held["due_at"] == "2001-09-09T01:47:12+00:00"
    text = runner.invoke(triggers_cli, ["show", "code:page", "--db", db], env={"COLUMNS": "250"})
    assert "debounce: 30s (max 90s)" in text.stdout
    assert "rate limit: 0.01667/s per .data.team, queue" in text.stdout
    assert "fp-9" in text.stdout and "s e2" in text.stdout
    table = runner.invoke(triggers_cli, ["list", "--db", db], env={"COLUMNS": "250"})
    assert "30s (max 90s)" in table.stdout


def test_workflows_limit__per_key_from_the_cli(tmp_path: Path) -> None:
    db, _ = make_db(tmp_path)
    args = ["workflows", "limit", "incident", "--db", db, "--rate", "6/minute"]
    done = runner.invoke(cli, [*args, "--key", ".service", "--burst", "2", "--overflow", "drop"])
    assert done.exit_code == 0, done.output
    assert "at most 0.1/s burst 2 per .service, drop" in done.stdout
    [shown] = json.loads(runner.invoke(cli, ["workflows", "limits", "--db", db, "--json"]).stdout)
    assert shown == {
        "workflow": "incident",
        "per_second": 0.1,
        "burst": 2,
        "key": ".service",
        "overflow": "drop",
        "declared": False,
    }
    bad = runner.invoke(cli, [*args[:-2], "--per-second", "1", "--overflow", "later"])
    assert bad.exit_code == 2 and "queue or drop" in bad.output
    both = runner.invoke(cli, [*args, "--off"])
    assert both.exit_code == 2 and "--off" in both.output
    lifted = runner.invoke(cli, [*args[:-2], "--off"])
    assert lifted.exit_code == 0 and "no rate limit" in lifted.stdout
