"""Decision tables used by runs: the versioned set, the durable step, ``decide:1.0.0``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opsloom import App, Context, FakeClock, RunFailedError, WorkerOptions
from opsloom.app import default_catalog
from opsloom.decisions.decide import DecisionTables, decide
from opsloom.decisions.loader import load_table
from opsloom.dsl.runtime import DslRuntime
from opsloom.errors import ConfigurationError
from opsloom.model.decision import DecisionError, InvalidDecisionTableError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "decisions"

ROUTING = """\
name: routing
version: "{version}"
hitPolicy: FIRST
inputs:
  - name: severity
    expression: .severity
outputs:
  - name: team
rules:
  - when: [critical]
    then: [{team}]
  - when: ["-"]
    then: [ops]
"""

CLASH = """\
name: clash
version: "1"
inputs:
  - name: n
    expression: .n
outputs:
  - name: out
rules:
  - when: ["${ . > 1 }"]
    then: [a]
  - when: ["${ . > 2 }"]
    then: [b]
"""


def routing(version: str, team: str = "sre") -> Any:
    return load_table(ROUTING.format(version=version, team=team), f"routing-{version}.yaml")


def test_tables__latest_version_by_default() -> None:
    tables = DecisionTables([routing("1.9.0", "old"), routing("1.10.0", "new")])
    assert tables.get("routing").version == "1.10.0"
    assert tables.get("routing", "1.9.0").version == "1.9.0"
    with pytest.raises(DecisionError, match=r"no decision table routing:2 \(known: routing:1"):
        tables.get("routing", "2")
    with pytest.raises(ConfigurationError, match="defined twice"):
        tables.add(routing("1.9.0"))


def test_tables__load_directory_skips_case_files(tmp_path: Path) -> None:
    tables = DecisionTables.load_directory(EXAMPLES)
    assert [t.reference for t in tables.tables()] == [
        "alert-routing:1.0.0",
        "approval-policy:1.0.0",
        "change-risk:1.0.0",
        "compliance-findings:1.0.0",
    ]
    (tmp_path / "good.yaml").write_text(ROUTING.format(version="1", team="sre"))
    (tmp_path / "bad.yaml").write_text("name: bad\n")
    with pytest.raises(InvalidDecisionTableError, match=r"bad\.yaml:1:1"):
        DecisionTables.load_directory(tmp_path)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    target = App(
        f"sqlite:///{tmp_path / 'decide.db'}",
        worker=WorkerOptions(poll_seconds=0.02, reap_seconds=None),
        clock=FakeClock(),
        sqlite_synchronous="OFF",
    )
    yield target


async def test_decide__is_a_recorded_step(app: App) -> None:
    table = routing("1")
    clash = load_table(CLASH)

    @app.workflow(name="route")
    async def route(ctx: Context, alert: dict[str, Any]) -> Any:
        decision = await decide(ctx, table, alert)
        return {"team": decision.output["team"], "rules": list(decision.selected)}

    @app.workflow(name="clash")
    async def clashing(ctx: Context, n: int) -> Any:
        return (await decide(ctx, clash, {"n": n})).output

    async with app:
        handle = await app.start("route", {"severity": "critical"})
        assert await handle.result(timeout=10) == {"team": "sre", "rules": ["rule-1"]}
        run = await app.get_run(handle.run_id)
        (step,) = run.steps
        assert step.name == "decision_step"
        assert step.output["output"] == {"team": "sre"}
        failing = await app.start("clash", 5)
        with pytest.raises(RunFailedError, match="matched several rules"):
            await failing.result(timeout=10)


async def test_decide__catalog_function_in_a_document(app: App) -> None:
    tables = DecisionTables([routing("1", "sre"), routing("2", "platform"), load_table(CLASH)])
    catalog = default_catalog(decision_tables=tables)
    runtime = DslRuntime(app, catalog=catalog)
    text = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: route
  version: '1.0.0'
do:
  - latest:
      call: decide:1.0.0@default
      with:
        table: routing
      export:
        as: '${ { latest: .output.team } }'
  - pinned:
      call: decide:1.0.0@default
      with:
        table: routing
        version: '1'
        input: ${ $workflow.input }
      output:
        as: '${ { latest: $context.latest, pinned: .output.team, matched: .matched } }'
"""
    workflow = runtime.register(runtime.load(text, "route.yaml"), text)
    clash = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: clash
  version: '1.0.0'
do:
  - decide:
      try:
        - pick:
            call: decide:1.0.0@default
            with:
              table: clash
      catch:
        as: failure
        do:
          - report:
              set:
                caught: ${ $failure.detail }
"""
    clashing = runtime.register(runtime.load(clash, "clash.yaml"), clash)
    try:
        async with app:
            handle = await app.start(workflow, {"severity": "critical"})
            assert await handle.result(timeout=20) == {
                "latest": "platform",
                "pinned": "sre",
                "matched": ["rule-1"],
            }
            handle = await app.start(clashing, {"n": 9})
            output = await handle.result(timeout=20)
            assert "matched several rules" in output["caught"]
            assert "'rule-1', 'rule-2'" in output["caught"]
    finally:
        await runtime.close()
