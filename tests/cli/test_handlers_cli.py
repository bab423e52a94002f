"""``opsloom query`` and ``opsloom update`` as subprocesses against a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import Project

FLOWS = """
from opsloom import App, Context

app = App()


@app.workflow(name="tally")
async def tally(ctx: Context, goal: int) -> int:
    state = {"total": 0}

    def add(amount):
        state["total"] += amount
        return state["total"]

    def positive(amount):
        if not isinstance(amount, int) or amount <= 0:
            raise ValueError("amount must be a positive integer")

    ctx.on_signal("add", add)
    ctx.on_query("total", lambda _: state["total"])
    ctx.on_update("add", add, positive)
    await ctx.wait_until(lambda: state["total"] >= goal)
    return state["total"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "flows.py").write_text(FLOWS)
    return Project(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}")


def test_query__replays_the_run_with_its_signals(project: Project) -> None:
    # No worker ever runs it: the query replays the run with the signals sent so far.
    run_id = project.ok(
        "start", "tally", "--input", "10", "--app", "flows:app", "--db", project.db
    ).strip()
    project.ok("signal", run_id, "add", "--data", "4", "--db", project.db)
    answer = project.ok("query", run_id, "total", "--app", "flows:app", "--db", project.db)
    assert json.loads(answer) == 4


def test_query_and_update__refusals_exit_with_the_reason(project: Project) -> None:
    run_id = project.ok(
        "start", "tally", "--input", "10", "--app", "flows:app", "--db", project.db
    ).strip()
    unknown = project.run("query", run_id, "nope", "--app", "flows:app", "--db", project.db)
    assert unknown.returncode != 0
    assert "no query 'nope'" in unknown.stderr
    refused = project.run(
        "update", run_id, "add", "--data", "-3", "--app", "flows:app", "--db", project.db
    )
    assert refused.returncode != 0
    assert "positive integer" in refused.stderr
