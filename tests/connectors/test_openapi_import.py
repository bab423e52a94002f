"""``opsloom connectors import``: OpenAPI documents become connectors, called through fakes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from typer.testing import CliRunner
from vendors import CONTRACTS, discord_fake, twilio_fake

from opsloom import App
from opsloom.cli.main import cli
from opsloom.connectors.openapi import connector_from_spec
from opsloom.connectors.testing import load_spec
from opsloom.errors import ConfigurationError, ConnectorPermanentError

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "imported"
    monkeypatch.setenv("OPSLOOM_CONNECTORS_DIR", str(target))
    return target


def test_import__cli_names_the_actions(folder: Path) -> None:
    spec = CONTRACTS / "twilio" / "twilio_api_v2010.json"
    result = runner.invoke(
        cli,
        ["connectors", "import", "tw2010", "--openapi", str(spec), "--operation", "CreateMessage"],
    )
    assert result.exit_code == 0, result.output
    assert "tw2010.create_message" in result.output and (folder / "tw2010.json").exists()
    bad = runner.invoke(
        cli, ["connectors", "import", "x", "--openapi", str(spec), "--operation", "Nope"]
    )
    assert bad.exit_code == 2 and "no operation nope" in bad.output


async def test_imported_twilio__typed_input_form_body_basic_auth(fresh: App, folder: Path) -> None:
    spec = CONTRACTS / "twilio" / "twilio_api_v2010.json"
    runner.invoke(
        cli,
        ["connectors", "import", "tw2010", "--openapi", str(spec), "--operation", "CreateMessage"],
    )
    sid = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    with twilio_fake() as fake:
        async with fresh:
            action = fresh.connections.registry.action("tw2010.create_message")
            assert set(action.input.model_fields) >= {"account_sid", "body"}
            await fresh.connections.add_connection(
                "tw", "tw2010", {"base_url": fake.url, "username": sid, "password": "tw-secret"}
            )
            out = await fresh.connections.call(
                action,
                "tw",
                {
                    "account_sid": sid,
                    "body": {"To": "+15558675310", "From": "+15557122661", "Body": "hi"},
                },
            )
            with pytest.raises(ConnectorPermanentError, match="body of create_message is invalid"):
                await fresh.connections.call(
                    action, "tw", {"account_sid": sid, "body": {"Body": 3}}
                )
    assert out["status"] == 201 and out["body"]["sid"].startswith("SM")
    assert parse_qs(fake.last().body.decode())["To"] == ["+15558675310"]
    assert fake.problems == []


async def test_imported_discord__path_parameters_query_and_json_body(
    fresh: App, folder: Path
) -> None:
    spec = load_spec(CONTRACTS / "discord" / "openapi.json")
    connector = connector_from_spec("dapi", spec, ["execute_webhook"])
    fresh.connections.registry.register(connector)
    with discord_fake() as fake:
        async with fresh:
            await fresh.connections.add_connection("d", "dapi", {"base_url": fake.url})
            out = await fresh.connections.call(
                connector.actions["execute_webhook"],
                "d",
                {
                    "webhook_id": "1101246325234061412",
                    "webhook_token": "tok",
                    "wait": True,
                    "body": {"content": "deployed"},
                },
            )
    assert out["status"] == 200 and out["body"]["content"] == "deployed"
    assert fake.last().query["wait"] == ["true"]
    assert fake.problems == []


def test_not_a_spec__refused() -> None:
    with pytest.raises(ConfigurationError, match="not an OpenAPI"):
        connector_from_spec("x", {"info": {}})
