"""``opsloom schedules list|pause|resume`` (Typer's runner, a temporary SQLite file)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from opsloom.cli.main import cli
from opsloom.model.schedule import Schedule, schedule_record
from opsloom.store import open_store

runner = CliRunner()


def make_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'sched.db'}"

    async def go() -> None:
        store = open_store(url)
        await store.open()
        try:
            for sid, schedule in [
                ("code:report", Schedule(cron="0 6 * * *", timezone="Europe/Berlin")),
                ("code:poll", Schedule(every=300)),
            ]:
                await store.save_schedule(schedule_record(sid, "w", "1", schedule, 1e9), 1e9)
        finally:
            await store.close()

    asyncio.run(go())
    return url


def test_schedules__list_pause_resume(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    listed = runner.invoke(cli, ["schedules", "list", "--db", db, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows["code:report"]["spec"] == "0 6 * * *"
    assert rows["code:report"]["timezone"] == "Europe/Berlin"
    assert rows["code:poll"]["kind"] == "every" and not rows["code:poll"]["paused"]

    paused = runner.invoke(cli, ["schedules", "pause", "code:poll", "--db", db, "--json"])
    assert paused.exit_code == 0 and json.loads(paused.stdout)["paused"] is True
    table = runner.invoke(cli, ["schedules", "list", "--db", db], env={"COLUMNS": "200"})
    assert "paused" in table.stdout and "Europe/Berlin" in table.stdout

    resumed = runner.invoke(cli, ["schedules", "resume", "code:poll", "--db", db])
    assert resumed.exit_code == 0 and "resumed code:poll" in resumed.stdout


def test_schedules__unknown_id_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    result = runner.invoke(cli, ["schedules", "pause", "code:nope", "--db", db])
    assert result.exit_code == 2
    assert "no schedule 'code:nope'" in result.output
