"""Catalog functions registered on the App reach the documents it runs and ``validate``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsloom import App, WorkerOptions
from opsloom.cli.main import cli
from opsloom.plugin import FunctionCall
from opsloom.settings import Settings

DOCUMENT = """\
document:
  dsl: '1.0.3'
  namespace: ops
  name: greet
  version: '1.0.0'
do:
  - hello:
      call: greet:1.0.0@default
      with:
        who: ${ .who }
"""

MODULE = """\
from opsloom import App

app = App()


@app.function("greet", input_schema={"type": "object", "required": ["who"]})
async def greet(call):
    return {"greeting": "hello " + call.arguments["who"]}
"""


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(
        f"sqlite:///{tmp_path / 'catalog.db'}",
        worker=WorkerOptions(reap_seconds=None),
        settings=Settings(),
    )

    @app.function("greet", description="Say hello.")
    async def greet(call: FunctionCall) -> dict[str, Any]:
        return {"greeting": f"hello {call.arguments['who']}"}

    async with app:
        yield app


async def test_app_function__called_by_a_deployed_document(app: App) -> None:
    assert app.catalog.function("greet", "1.0.0").description == "Say hello."
    assert app.catalog.has("approval", "1.0.0")  # the installed ones are there too
    record, created = await app.documents.deploy(DOCUMENT)
    assert created and record.workflow == "ops/greet"
    handle = await app.documents.start("ops/greet", {"who": "oncall"})
    assert await handle.result(timeout=30) == {"greeting": "hello oncall"}


def test_validate__knows_the_functions_of_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "greetings.py").write_text(MODULE, encoding="utf-8")
    document = tmp_path / "greet.yaml"
    document.write_text(DOCUMENT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "greetings", raising=False)
    runner = CliRunner()
    alone = runner.invoke(cli, ["validate", str(document)])
    assert alone.exit_code == 1
    assert "unknown function 'greet' version 1.0.0" in alone.stdout
    known = runner.invoke(cli, ["validate", str(document), "--app", "greetings:app"])
    assert known.exit_code == 0, known.stdout
    assert "all valid" in known.stdout


def test_deploy_and_run__know_the_functions_of_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "greeters.py").write_text(MODULE, encoding="utf-8")
    document = tmp_path / "greet.yaml"
    document.write_text(DOCUMENT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "greeters", raising=False)
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'deploy.db'}"
    refused = runner.invoke(cli, ["deploy", str(document), "--db", db])
    assert refused.exit_code == 2
    deployed = runner.invoke(cli, ["deploy", str(document), "--db", db, "--app", "greeters:app"])
    assert deployed.exit_code == 0, deployed.output
    assert "deployed ops/greet version 1.0.0" in deployed.stdout
    ran = runner.invoke(
        cli, ["run", str(document), "--input", '{"who": "you"}', "--app", "greeters:app"]
    )
    assert ran.exit_code == 0, ran.output
    assert '"greeting": "hello you"' in ran.stdout
