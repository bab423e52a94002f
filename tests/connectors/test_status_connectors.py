"""Statuspage, Grafana and GitLab connectors against documentation-shaped fakes."""

from __future__ import annotations

import pytest
from vendors import gitlab_fake, grafana_fake, statuspage_fake

from opsloom import App
from opsloom.connectors.builtin import gitlab, grafana, statuspage
from opsloom.errors import ConnectorPermanentError


async def test_statuspage__incident_update_and_component(ops: App) -> None:
    with statuspage_fake() as fake:
        await ops.connections.add_connection(
            "sp",
            "statuspage",
            {"api_key": "sp-secret", "page_id": "kctbh9vrtdwd", "api_url": fake.url},
        )
        made = await ops.connections.call(
            statuspage.open_incident, "sp", {"name": "API errors", "body": "Looking into it"}
        )
        assert made["status"] == "investigating"
        assert fake.last().path == "/pages/kctbh9vrtdwd/incidents"
        done = await ops.connections.call(
            statuspage.update_incident, "sp", {"incident_id": made["id"], "status": "resolved"}
        )
        assert done["status"] == "resolved"
        comp = await ops.connections.call(
            statuspage.set_component,
            "sp",
            {"component_id": "ftgks51sfs2d", "status": "major_outage"},
        )
        assert comp == {"id": "ftgks51sfs2d", "status": "major_outage"}
        with pytest.raises(ConnectorPermanentError, match="status"):
            await ops.connections.call(
                statuspage.set_component, "sp", {"component_id": "x", "status": "down"}
            )
    assert fake.problems == []


async def test_grafana__annotation_and_silence(ops: App) -> None:
    with grafana_fake() as fake:
        await ops.connections.add_connection(
            "gf", "grafana", {"url": fake.url, "token": "glsa_secret"}
        )
        out = await ops.connections.call(
            grafana.annotate, "gf", {"text": "deploy 1.2.3", "tags": ["deploy"]}
        )
        assert out == {"id": 7}
        assert fake.last().json["time"] == int(ops.clock.now() * 1000)
        out = await ops.connections.call(
            grafana.silence,
            "gf",
            {"matchers": {"alertname": "HighLatency"}, "minutes": 15, "comment": "deploy"},
        )
        assert out["silence_id"].startswith("6e8c0f25")
    assert fake.problems == []


async def test_gitlab__issue_note_pipeline(ops: App) -> None:
    with gitlab_fake() as fake:
        await ops.connections.add_connection(
            "gl", "gitlab", {"token": "glpat-secret", "api_url": fake.url}
        )
        issue = await ops.connections.call(
            gitlab.create_issue,
            "gl",
            {"project": "acme/api", "title": "db-1 down", "labels": ["incident", "sev1"]},
        )
        assert issue["iid"] == 14
        sent = fake.last()
        assert sent.path == "/projects/acme%2Fapi/issues" and sent.json["labels"] == "incident,sev1"
        assert sent.headers["private-token"] == "glpat-secret"
        note = await ops.connections.call(
            gitlab.add_note, "gl", {"project": "12", "issue_iid": 14, "body": "fixed"}
        )
        assert note == {"id": 302}
        pipe = await ops.connections.call(
            gitlab.run_pipeline,
            "gl",
            {"project": "12", "ref": "main", "variables": {"ROLLBACK": "1"}},
        )
        assert pipe["status"] == "created"
        assert fake.last().json["variables"] == [{"key": "ROLLBACK", "value": "1"}]
    assert fake.problems == []
