"""The incident-response runbook started by Grafana and Datadog alerts.

The vendors' documented payloads (``tests/triggers/payloads``: a Grafana Alerting contact
point's notification, a Datadog monitor webhook with opsloom's payload template) are posted to
``/hooks/grafana`` (HMAC-signed) and ``/hooks/datadog`` (token header) of the real API; the
trigger that ``install`` registers starts the runbook. Slack, PagerDuty, GitHub and Jira are
the vendor fakes, the remediation a rollout restart on the Kubernetes fake. A Grafana or
Datadog alert has no Prometheus ``ALERTS`` series: the runbook verifies recovery with the
sender's own resolved notification, and hands over when none comes.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.runbooks.incident import IncidentSettings, install
from kube_fake import Cluster, deployment, kubeconfig
from test_incident_runbook import KUBE_TOKEN, Fakes, pages, run_of, settings, until
from vendors import github_fake, jira_fake, pagerduty_fake, slack_fake

from opsloom import App, WorkerOptions
from opsloom.api import create_api
from opsloom.api.routes import hooks
from opsloom.errors import ConfigurationError
from opsloom.identity.access import Identity
from opsloom.settings import Settings
from opsloom.triggers.sources import load_hooks_config

pytestmark = [pytest.mark.timeout(60)]

PAYLOADS = Path(__file__).resolve().parents[1] / "triggers" / "payloads"
GRAFANA_SECRET = "grafana-contact-point-secret"
DATADOG_TOKEN = "datadog-webhook-token"


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    messages: list[dict[str, Any]] = []
    cluster = Cluster({KUBE_TOKEN})
    cluster.add(deployment("checkout", "shop", replicas=3))
    with ExitStack() as stack:
        slack = stack.enter_context(slack_fake(messages))
        pd = stack.enter_context(pagerduty_fake())
        github = stack.enter_context(github_fake())
        jira = stack.enter_context(jira_fake())
        kube = stack.enter_context(cluster.vendor())
        yield Fakes(slack, messages, pd, github, jira, cluster, kube)
    assert slack.problems == pd.problems == jira.problems == github.problems == kube.problems == []


@pytest.fixture
async def responder(db_url: str, fakes: Fakes) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    """The runbook on an app (no escalation, short timings) and a client of its hooks."""
    app = App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))
    install(app, settings(ack_timeout=0.5, escalation=None, verify_interval=0.5, verify_checks=6))
    api = create_api(app, Settings(api_token="api-token"))
    api.state.hooks = hooks.HookReceiver(
        load_hooks_config(
            environ={
                "OPSLOOM_HOOKS_GRAFANA_SECRET": GRAFANA_SECRET,
                "OPSLOOM_HOOKS_DATADOG_TOKEN": DATADOG_TOKEN,
            }
        )
    )
    async with app:
        add = app.connections.add_connection
        pd = {"events_url": fakes.pagerduty.url, "routing_key": "R" * 32}
        await add("pagerduty", "pagerduty", pd)
        await add("slack", "slack", {"token": "xoxb-1-secret", "api_url": f"{fakes.slack.url}/api"})
        await add("github", "github", {"token": "ghp_secret", "api_url": fakes.github.url})
        jira = {"site_url": fakes.jira.url, "email": "bot@acme.test", "api_token": "t0k3n"}
        await add("jira", "jira", jira)
        kube = {"kubeconfig": kubeconfig(fakes.kube.url, KUBE_TOKEN)}
        await add("kubernetes", "kubernetes", kube)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
            yield app, client


def payload_json(name: str) -> dict[str, Any]:
    """A documented payload of the webhook source tests."""
    found: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return found


def grafana_notification(status: str) -> dict[str, Any]:
    """Grafana's documented notification, its first alert on the checkout service."""
    body = payload_json("grafana.json")
    alert = copy.deepcopy(body["alerts"][0])
    alert["labels"].update({"service": "checkout", "severity": "critical"})
    alert["status"] = status
    if status == "resolved":
        alert["endsAt"] = "2024-10-12T10:21:03.157076+02:00"
    return {**body, "status": status, "alerts": [alert]}


async def post_grafana(client: httpx.AsyncClient, notification: dict[str, Any]) -> None:
    data = json.dumps(notification).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Grafana-Alerting-Signature": hmac.new(
            GRAFANA_SECRET.encode(), data, hashlib.sha256
        ).hexdigest(),
    }
    answer = await client.post("/hooks/grafana", content=data, headers=headers)
    assert answer.status_code == 202, answer.text


def datadog_notification(transition: str, notification_id: str) -> dict[str, Any]:
    """Datadog's webhook (opsloom's template) for a monitor on the checkout service."""
    body = payload_json("datadog.json")
    body.update(
        id=notification_id,
        transition=transition,
        tags="env:prod, service:checkout, team:shop",
        date=str(int(time.time() * 1000)),
    )
    return body


async def post_datadog(client: httpx.AsyncClient, notification: dict[str, Any]) -> None:
    headers = {"X-Opsloom-Token": DATADOG_TOKEN}
    answer = await client.post("/hooks/datadog", json=notification, headers=headers)
    assert answer.status_code == 202, answer.text


async def approve(app: App) -> None:
    identity = Identity(app.store, app.clock)
    await identity.add_user("alice", roles=("approver",), actor="test")
    await identity.add_to_group("alice", "sre-leads", actor="test")
    pending = await until("the approval request", lambda: app.approvals.requests(status="pending"))
    alice = await identity.principal("alice")
    await app.approvals.decide(alice, pending[0]["stages"][0]["task"], True, "go")


async def datadog_incident(app: App, client: httpx.AsyncClient, *then: str) -> str:
    """Post the monitor's Triggered notification (then ``then`` transitions), approve the
    remediation; the incident run's id."""
    await post_datadog(client, datadog_notification("Triggered", "7409215284539834185"))
    run_id = await run_of(app)
    for number, transition in enumerate(then):
        await post_datadog(client, datadog_notification(transition, f"74092152845398342{number}"))
    await approve(app)
    return run_id


async def test_grafana_alert__starts_the_incident_and_its_resolution_verifies_recovery(
    responder: tuple[App, httpx.AsyncClient], fakes: Fakes
) -> None:
    app, client = responder
    await post_grafana(client, grafana_notification("firing"))
    run_id = await run_of(app)
    [page] = await until("the page", lambda: pages(fakes))  # critical: the SRE on-call is paged
    assert page["payload"]["source"] == "checkout"
    await approve(app)
    await until("the rollout restart", lambda: fakes.cluster.patches)
    await post_grafana(client, grafana_notification("resolved"))  # Grafana: back to normal
    output = await app.result(run_id, timeout=30)
    assert output["alert"] == "High memory usage" and output["service"] == "checkout"
    assert output["resolved"] is True and output["remediated"] is True
    assert any(
        "dashboard: https://grafana.example.org/d/mem" in line for line in output["diagnosis"]
    )
    assert [p["event_action"] for p in pages(fakes)] == ["trigger", "resolve"]
    record = await app.get_run(run_id)
    names = {step.name for step in record.steps}
    # No Prometheus series and no Alertmanager silence for a Grafana-managed alert.
    assert not names & {"prometheus.query_range", "prometheus.query", "alertmanager.create_silence"}
    assert "recovered and resolved" in fakes.messages[-1]["text"]  # the status message


async def test_datadog_alert__starts_the_incident_and_without_recovery_hands_over(
    responder: tuple[App, httpx.AsyncClient], fakes: Fakes
) -> None:
    app, client = responder
    # The repeat notification of the same monitor joins the open incident.
    run_id = await datadog_incident(app, client, "Re-Triggered")
    output = await app.result(run_id, timeout=30)  # no Recovered notification comes
    assert output["service"] == "checkout" and output["alert"].endswith("Load is high")
    assert output["remediated"] is False and output["resolved"] is False
    assert any("monitor query: avg(last_5m)" in line for line in output["diagnosis"])
    assert len(fakes.cluster.patches) == 1
    assert pages(fakes) == []  # the routing table does not page for this alert
    assert "still firing after the remediation" in fakes.messages[-1]["text"]  # the status message
    assert len(await app.list_runs(workflow="incident-response")) == 1
    assert fakes.jira.last("/rest/api/3/issue").json["fields"]["summary"].startswith("Postmortem")


async def test_datadog_recovered__reaches_the_open_incident_and_resolves_it(
    responder: tuple[App, httpx.AsyncClient], fakes: Fakes
) -> None:
    app, client = responder
    run_id = await datadog_incident(app, client)
    await until("the rollout restart", lambda: fakes.cluster.patches)
    await post_datadog(client, datadog_notification("Recovered", "7409215284539839999"))
    output = await app.result(run_id, timeout=30)
    assert output["resolved"] is True and output["remediated"] is True


def test_install__refuses_a_source_that_sends_no_alerts() -> None:
    with pytest.raises(ConfigurationError, match="github"):
        install(App("sqlite:///:memory:"), IncidentSettings(sources=("grafana", "github")))
