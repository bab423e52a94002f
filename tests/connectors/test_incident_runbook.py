"""The incident-response runbook against real Prometheus and Alertmanager and the spec fakes.

Prometheus fires the alert of ``tests/e2e/peers/rules.yml`` (driven by a gate the test sets),
Alertmanager delivers its real webhook notification, which the Alertmanager source turns into
the event that starts the runbook. PagerDuty, Slack, GitHub and Jira are the vendor fakes; the
remediation (a Kubernetes rollout restart, on a loopback API server that validates with the
schemas ``kubernetes-validate`` ships) "fixes" the service by closing the gate, so the
runbook's verification sees the real alert stop firing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from examples.runbooks.incident import IncidentSettings, Remediation, install
from kube_fake import Cluster, deployment, kubeconfig
from vendors import github_fake, jira_fake, pagerduty_fake, slack_fake

from opsloom import App, WorkerOptions
from opsloom.connectors.builtin import kubernetes
from opsloom.connectors.testing import FakeResponse, FakeVendor
from opsloom.identity.access import Identity
from opsloom.settings import Settings
from opsloom.store.event import SUBSCRIBE_STEP
from opsloom.triggers.sources.alertmanager import AlertmanagerSource
from opsloom.triggers.sources.base import WebhookRequest
from opsloom.triggers.sources.pagerduty import PagerDutySource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from peers import Gate, Peer, require_binaries, start_alertmanager, start_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PAYLOADS = Path(__file__).resolve().parents[1] / "triggers" / "payloads"
ALERT = "OpsloomE2EDiskFull"


class Peers(NamedTuple):
    alertmanager: Peer
    prometheus: Peer
    gate: Gate
    hook: FakeVendor  # receives Alertmanager's webhook notifications


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    prometheus_bin, alertmanager_bin = require_binaries()
    folder = tmp_path_factory.mktemp("incident")
    hook = FakeVendor(None, {("POST", "/hook"): lambda r: FakeResponse(200, {})})
    gate = Gate(0.0)
    with ExitStack() as stack:
        stack.enter_context(hook)
        stack.enter_context(gate.serving())
        am = start_alertmanager(alertmanager_bin, folder, f"{hook.url}/hook", "am-token")
        stack.callback(am.stop)
        prom = start_prometheus(prometheus_bin, folder, am, gate)
        stack.callback(prom.stop)
        yield Peers(am, prom, gate, hook)


class Fakes(NamedTuple):
    slack: FakeVendor
    messages: list[dict[str, Any]]
    pagerduty: FakeVendor
    github: FakeVendor
    jira: FakeVendor
    cluster: Cluster
    kube: FakeVendor


KUBE_TOKEN = "kube-token-incident"


def restarting_cluster(gate: Gate) -> tuple[Cluster, FakeVendor]:
    """A cluster running deployment/checkout; restarting it fixes the service."""
    cluster = Cluster({KUBE_TOKEN})
    cluster.add(deployment("checkout", "shop", replicas=3))
    vendor = cluster.vendor()
    patch_workload = cluster._patch_workload

    def restarted(request: Any) -> Any:
        answer = patch_workload(request)
        gate.set(0)  # the new pods are healthy: the alert stops firing
        return answer

    vendor.routes = [
        (method, pattern, restarted if fn == patch_workload else fn)
        for method, pattern, fn in vendor.routes
    ]
    return cluster, vendor


@pytest.fixture
def fakes(peers: Peers) -> Iterator[Fakes]:
    messages: list[dict[str, Any]] = []
    cluster, kube = restarting_cluster(peers.gate)
    with ExitStack() as stack:
        slack = stack.enter_context(slack_fake(messages))
        pd = stack.enter_context(pagerduty_fake())
        jira = stack.enter_context(jira_fake())
        gh = stack.enter_context(github_fake())
        stack.enter_context(kube)
        yield Fakes(slack, messages, pd, gh, jira, cluster, kube)
    assert slack.problems == pd.problems == gh.problems == jira.problems == kube.problems == []


def settings(**changes: Any) -> IncidentSettings:
    def restart(incident: dict[str, Any]) -> dict[str, Any]:
        return {"name": incident["service"], "namespace": "shop"}

    base = {
        "repository": "acme/checkout",
        "ack_timeout": 30.0,
        "verify_interval": 1.0,
        "verify_checks": 20,
        "remediation": Remediation(
            kubernetes.rollout_restart, "kubernetes", restart, "rollout restart deployment/checkout"
        ),
    }
    return IncidentSettings(**{**base, **changes})


@pytest.fixture
def responder(db_url: str) -> App:
    """An app on the system clock (Alertmanager refuses silences that end in the past)."""
    return App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))


async def connect(app: App, peers: Peers, fakes: Fakes) -> None:
    add = app.connections.add_connection
    await add("prometheus", "prometheus", {"url": peers.prometheus.url})
    await add("alertmanager", "alertmanager", {"url": peers.alertmanager.url})
    pd = {"events_url": fakes.pagerduty.url}
    await add("pagerduty", "pagerduty", {**pd, "routing_key": "R" * 32})
    await add("pagerduty-escalation", "pagerduty", {**pd, "routing_key": "E" * 32})
    await add("slack", "slack", {"token": "xoxb-1-secret", "api_url": f"{fakes.slack.url}/api"})
    await add("github", "github", {"token": "ghp_secret", "api_url": fakes.github.url})
    jira = {"site_url": fakes.jira.url, "email": "bot@acme.test", "api_token": "t0k3n"}
    await add("jira", "jira", jira)
    await add("kubernetes", "kubernetes", {"kubeconfig": kubeconfig(fakes.kube.url, KUBE_TOKEN)})
    identity = Identity(app.store, app.clock)
    for user in ("alice", "bob"):
        await identity.add_user(user, roles=("approver",), actor="test")
        await identity.add_to_group(user, "sre-leads", actor="test")


async def until(what: str, check: Any, timeout: float = 45.0, app: App | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + await explain(app))
        await asyncio.sleep(0.1)


async def explain(app: App | None) -> str:
    """Every run's steps, for a failure message."""
    if app is None:
        return ""
    lines = []
    for run in await app.list_runs():
        record = await app.get_run(run.id)
        lines.append(f"\nrun {run.id} {record.status} {record.error or ''}")
        lines += [f"  {s.seq} {s.name} {s.status} {s.error or ''}" for s in record.steps]
    return "".join(line + "\n" for line in lines)


async def fire(app: App, peers: Peers) -> list[dict[str, Any]]:
    """Open the gate, take Alertmanager's next firing notification and store its events."""
    since = len(peers.hook.requests)
    peers.gate.set(1)

    def firing() -> bytes | None:
        for request in peers.hook.requests[since:]:
            body = request.json
            if body["status"] == "firing" and body["alerts"][0]["labels"]["alertname"] == ALERT:
                return request.body
        return None

    body = await until("Alertmanager's notification", firing)
    events = AlertmanagerSource().normalise(WebhookRequest.build(body))
    await app.emit_events(events)
    return [event.to_dict() for event in events]


async def acknowledge(app: App, dedup: str) -> None:
    """PagerDuty's webhook saying the on-call person acknowledged the page."""
    payload = json.loads((PAYLOADS / "pagerduty_incident_triggered.json").read_text())
    payload["event"]["event_type"] = "incident.acknowledged"
    payload["event"]["id"] = f"ack-{dedup}"
    payload["event"]["data"]["incident_key"] = dedup
    request = WebhookRequest.build(json.dumps(payload).encode())
    await app.emit_events(PagerDutySource().normalise(request))


async def listening(app: App, run_id: str) -> bool:
    """Whether the run has subscribed to events (a listen task stores nothing before)."""
    record = await app.get_run(run_id)
    return any(step.name == SUBSCRIBE_STEP for step in record.steps)


def pages(fakes: Fakes) -> list[dict[str, Any]]:
    return [r.json for r in fakes.pagerduty.requests if r.path == "/v2/enqueue"]


async def silences(peers: Peers) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        found: list[dict[str, Any]] = (
            await client.get(f"{peers.alertmanager.url}/api/v2/silences")
        ).json()
    return found


async def run_of(app: App) -> str:
    async def started() -> str | None:
        runs = await app.list_runs(workflow="incident-response")
        return runs[0].id if runs else None

    found: str = await until("the incident run", started)
    return found


async def test_incident__paged_acknowledged_approved_remediated_verified_resolved(
    responder: App, peers: Peers, fakes: Fakes
) -> None:
    app = responder
    install(app, settings())
    async with app:
        await connect(app, peers, fakes)
        await fire(app, peers)
        run_id = await run_of(app)
        [page] = await until("the page", lambda: pages(fakes))
        assert page["event_action"] == "trigger" and page["payload"]["source"] == "checkout"
        await acknowledge(app, page["dedup_key"])
        pending = await until(
            "the approval request", lambda: app.approvals.requests(status="pending"), app=app
        )
        # Silenced in the real Alertmanager while the remediation waits and runs.
        active = [s for s in await silences(peers) if s["status"]["state"] == "active"]
        assert any(m["value"] == ALERT for s in active for m in s["matchers"])
        alice = await Identity(app.store, app.clock).principal("alice")
        await app.approvals.decide(alice, pending[0]["stages"][0]["task"], True, "go")
        output = await app.result(run_id, timeout=60)
    assert output["resolved"] is True and output["remediated"] is True
    assert output["acknowledged"] is True and "escalated" not in output
    assert [p["event_action"] for p in pages(fakes)] == ["trigger", "resolve"]
    assert [s["status"]["state"] for s in await silences(peers)].count("active") == 0
    head = fakes.messages[-1]
    assert "recovered and resolved" in head["text"]  # the status message, updated in place
    thread = [m for m in fakes.messages if m is not head]
    assert any("Postmortem ticket: OPS-" in m["text"] for m in thread)
    description = fakes.jira.last("/rest/api/3/issue").json["fields"]["description"]
    text = json.dumps(description)
    assert "acknowledged" in text and "slack.post_message" in text
    [(path, _, patch)] = fakes.cluster.patches  # one rollout restart
    assert path == "/apis/apps/v1/namespaces/shop/deployments/checkout"
    assert "kubectl.kubernetes.io/restartedAt" in json.dumps(patch)


async def test_incident__nobody_acknowledges_escalates_and_a_denied_remediation_hands_over(
    responder: App, peers: Peers, fakes: Fakes
) -> None:
    app = responder
    install(app, settings(ack_timeout=1.0))
    async with app:
        await connect(app, peers, fakes)
        await fire(app, peers)
        run_id = await run_of(app)
        # Nobody acknowledges: the escalation service is paged, then the run goes on.
        await until("the escalation", lambda: len(pages(fakes)) == 2)
        pending = await until(
            "the approval request", lambda: app.approvals.requests(status="pending"), app=app
        )
        bob = await Identity(app.store, app.clock).principal("bob")
        task = pending[0]["stages"][0]["task"]
        await app.approvals.decide(bob, task, False, "not during the sale")
        output = await app.result(run_id, timeout=60)
    peers.gate.set(0)
    assert output["escalated"] is True and output["acknowledged"] is False
    assert output["approval"] == "denied" and output["remediated"] is False
    assert output["resolved"] is False and output["postmortem"].startswith("OPS-")
    first, escalated = pages(fakes)
    assert escalated["routing_key"] == "E" * 32 and "ESCALATED" in escalated["payload"]["summary"]
    assert first["dedup_key"] == escalated["dedup_key"]
    assert fakes.cluster.patches == []  # nothing restarted
    assert [s["status"]["state"] for s in await silences(peers)].count("active") == 0
    assert "over to on-call" in fakes.messages[-1]["text"]  # the live status message
    assert any("denied by bob: not during the sale" in m["text"] for m in fakes.messages)


DOCUMENT = Path(__file__).resolve().parents[2] / "examples" / "runbooks" / "incident-response.yaml"


async def test_incident_document__acknowledged_approved_remediated_and_resolved(
    db_url: str, peers: Peers, fakes: Fakes
) -> None:
    decisions = DOCUMENT.parents[1] / "decisions"
    app = App(
        db_url,
        worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5),
        settings=Settings(decisions_dir=decisions),
    )
    text = DOCUMENT.read_text()
    workflow = app.documents.register(app.documents.load(text, str(DOCUMENT)), text)
    async with app:
        await connect(app, peers, fakes)
        [event] = await fire(app, peers)
        handle = await app.start(workflow, event)
        [page] = await until("the page", lambda: pages(fakes), app=app)
        # The on-call person acknowledges once the run listens for it: the document's listen
        # task subscribes when it starts, after the page went out, and takes only events
        # stored from then on.
        await until(
            "the listen for the acknowledgement", lambda: listening(app, handle.run_id), app=app
        )
        await acknowledge(app, page["dedup_key"])
        pending = await until(
            "the approval request", lambda: app.approvals.requests(status="pending"), app=app
        )
        alice = await Identity(app.store, app.clock).principal("alice")
        await app.approvals.decide(alice, pending[0]["stages"][0]["task"], True, "go")
        output = await handle.result(timeout=60)
    assert output["resolved"] is True and output["escalated"] is False
    assert output["phase"] == "recovered and resolved" and output["postmortem"].startswith("OPS-")
    assert [p["event_action"] for p in pages(fakes)] == ["trigger", "resolve"]
    assert [s["status"]["state"] for s in await silences(peers)].count("active") == 0
    assert "recovered and resolved" in fakes.messages[0]["text"]  # updated in place
    assert len(fakes.cluster.patches) == 1  # deployment/checkout restarted once
