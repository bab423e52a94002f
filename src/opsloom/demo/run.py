"""``opsloom demo`` (and ``make demo``): the incident-response runbook end to end, on loopback,
with no accounts.

Starts local stand-ins of Slack, PagerDuty, GitHub, Jira and a Kubernetes API server
(:mod:`opsloom.demo.fakes`), real Prometheus and Alertmanager (Debian's ``prometheus`` and
``prometheus-alertmanager``), and ``opsloom up`` serving :mod:`opsloom.demo.app`; fires a real
alert and follows the run; prints the reference procedure (:data:`PROCEDURE`, also in
docs/howto/runbooks.md) with what opsloom did; stops everything it started. It needs nothing
of a source checkout: an installed wheel carries the runbook library.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

HOOK_TOKEN = "demo-alertmanager-credential"
API_TOKEN = "demo-admin-token"
KUBE_TOKEN = "demo-kube-token"
#: What an on-call engineer does without opsloom (docs/howto/runbooks.md says the same).
PROCEDURE = (
    "Notice the alert and check it is not part of an incident already open.",
    "Find the team that owns the service and its channel.",
    "Look at the alert's graphs around the time it fired.",
    "Check what was deployed recently.",
    "Page the on-call person.",
    "Open an incident thread in the team's channel and keep its status current.",
    "Acknowledge the page.",
    "Escalate when nobody acknowledges.",
    "Match the symptoms to the service's runbook (diagnosis).",
    "Silence the alert while working on it.",
    "Decide whether restarting is safe now.",
    "Restart the deployment.",
    "Watch the graphs until the service recovers.",
    "Resolve the page, expire the silence and say so in the channel.",
    "File the postmortem ticket with the timeline.",
)
#: Which recorded steps show that opsloom did a step of the reference procedure.
EVIDENCE: dict[int, tuple[str, ...]] = {
    1: ("decision_step",),  # started by the trigger whose key is the service: no duplicate
    2: ("decision_step",),
    3: ("prometheus.query_range",),
    4: ("github.list_deployments",),
    5: ("pagerduty.trigger",),
    6: ("slack.post_message", "slack.update_message"),
    8: ("escalated",),
    9: ("diagnosis",),
    10: ("alertmanager.create_silence",),
    12: ("kubernetes.rollout_restart",),
    13: ("prometheus.query",),
    14: ("pagerduty.resolve", "alertmanager.expire_silence"),
    15: ("jira.create_issue",),
}
#: The deployment GitHub reports for the checkout service.
DEPLOYMENT = {
    "id": 1,
    "sha": "a3f9c21d4e5b6a7980f1e2d3c4b5a69788d9e0f1",
    "ref": "v2.4.1",
    "environment": "production",
    "created_at": "2026-12-07T09:12:00Z",
    "creator": {"login": "octocat"},
    "description": "checkout v2.4.1",
}


def say(text: str) -> None:
    print(text, flush=True)


def kubeconfig(server: str, token: str) -> str:
    """A kubeconfig of one context on ``server`` with a bearer ``token`` (namespace shop)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "demo",
            "clusters": [{"name": "demo", "cluster": {"server": server}}],
            "users": [{"name": "demo", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "demo",
                    "context": {"cluster": "demo", "user": "demo", "namespace": "shop"},
                }
            ],
        }
    )


def main(approve_after: float = 20.0) -> int:
    """Run the demo; 0 when the incident ended resolved. Without an answer within
    ``approve_after`` seconds of the approval request, the demo approves from the CLI."""
    import httpx
    from cryptography.fernet import Fernet

    from opsloom.demo.fakes import Jira, Kubernetes, PagerDuty, Slack, github
    from opsloom.demo.peers import (
        ALERTMANAGER,
        PROMETHEUS,
        Gate,
        binary,
        clean_env,
        opsloom,
        start_alertmanager,
        start_opsloom,
        start_prometheus,
        wait_until,
    )

    prometheus_bin, alertmanager_bin = binary(PROMETHEUS), binary(ALERTMANAGER)
    if not prometheus_bin or not alertmanager_bin:
        say(
            "the demo needs Prometheus and Alertmanager: "
            "apt-get install prometheus prometheus-alertmanager"
        )
        return 2
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opsloom-demo-")))
        db = f"sqlite:///{folder / 'demo.db'}"
        env = clean_env(
            OPSLOOM_SECRET_KEY=Fernet.generate_key().decode(),
            OPSLOOM_HOOKS_ALERTMANAGER_TOKEN=HOOK_TOKEN,
            OPSLOOM_API_TOKEN=API_TOKEN,
        )
        slack_state, pagerduty_state, jira_state = Slack(), PagerDuty(), Jira()
        messages = slack_state.messages
        slack = stack.enter_context(slack_state.vendor())
        pagerduty = stack.enter_context(pagerduty_state.vendor())
        github_vendor = stack.enter_context(github([DEPLOYMENT]))
        jira = stack.enter_context(jira_state.vendor())
        cluster = Kubernetes(KUBE_TOKEN)
        cluster.add("checkout", "shop", replicas=3)
        kube = stack.enter_context(cluster.vendor())
        say("· stand-ins of Slack, PagerDuty, GitHub, Jira and a Kubernetes API server are up")

        # From the current folder: a source checkout's examples/ is the runbook library there.
        server = start_opsloom(
            folder, db, env, app="opsloom.demo.app:app", cwd=Path.cwd(), timeout=120
        )
        stack.callback(server.stop)
        say(f"· opsloom up: {server.url}  (web UI; sign in with the token {API_TOKEN})")
        connections = {
            "prometheus": ("prometheus", {}),
            "alertmanager": ("alertmanager", {}),
            "pagerduty": ("pagerduty", {"events_url": pagerduty.url, "routing_key": "R" * 32}),
            "pagerduty-escalation": (
                "pagerduty",
                {"events_url": pagerduty.url, "routing_key": "E" * 32},
            ),
            "slack": ("slack", {"token": "xoxb-demo", "api_url": f"{slack.url}/api"}),
            "github": ("github", {"token": "ghp_demo", "api_url": github_vendor.url}),
            "jira": (
                "jira",
                {"site_url": jira.url, "email": "bot@acme.test", "api_token": "demo"},
            ),
        }
        gate = stack.enter_context(Gate(value=0).serving())
        alertmanager = start_alertmanager(
            alertmanager_bin, folder, f"{server.url}/hooks/alertmanager", HOOK_TOKEN
        )
        stack.callback(alertmanager.stop)
        prometheus = start_prometheus(prometheus_bin, folder, alertmanager, gate)
        stack.callback(prometheus.stop)
        connections["prometheus"][1]["url"] = prometheus.url
        connections["alertmanager"][1]["url"] = alertmanager.url
        connections["kubernetes"] = ("kubernetes", {"kubeconfig": kubeconfig(kube.url, KUBE_TOKEN)})
        # In this process (the store takes a second writer): faster than a CLI call each.
        asyncio.run(_prepare(db, env["OPSLOOM_SECRET_KEY"], connections))
        say(f"· Prometheus {prometheus.url} and Alertmanager {alertmanager.url} are up")

        api = httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        stack.callback(api.close)
        say("\n▶ the checkout service breaks: Prometheus fires OpsloomE2EDiskFull")
        gate.set(1)
        run_id = wait_until(lambda: _first_run(api), "the alert to start the incident run", 90)
        path = quote(run_id, safe="")
        say(f"▶ Alertmanager → opsloom: incident run {run_id}\n   ({server.url}/runs/{path})")
        shown: set[int] = set()
        approved = False
        asked_at: float | None = None
        deadline = time.monotonic() + 240
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = api.get(f"/runs/{path}").json()
            for step in run.get("steps", []):
                if step["seq"] not in shown and step["status"] == "completed":
                    shown.add(step["seq"])
                    if step["name"] not in ("now", "subscribe", "unsubscribe"):
                        say(f"   ✓ {step['name']}")
            if cluster.patches:
                gate.set(0)  # the restarted pods are healthy
            pending = [] if approved else api.get("/approvals", params={"status": "pending"}).json()
            if pending and asked_at is None:
                asked_at = time.monotonic()
                task = pending[0]["stages"][0]["task"]
                say(f"\n⏸ approval needed: {pending[0]['title']}")
                page = f"{server.url}/approvals/{quote(pending[0]['id'], safe='')}"
                say(f"   decide in the UI: {page}")
                say(f"   or: opsloom approvals approve {task} --as alice --db {db}")
                say(f"   (the demo approves as alice from the CLI in {approve_after:.0f} s)\n")
            if pending and asked_at is not None and time.monotonic() - asked_at > approve_after:
                task = pending[0]["stages"][0]["task"]
                opsloom(
                    "approvals",
                    "approve",
                    task,
                    "--as",
                    "alice",
                    "--comment",
                    "demo",
                    "--db",
                    db,
                    env=env,
                )
                approved = True
                say("   ✓ approved by alice (CLI)")
            if pending == [] and asked_at is not None:
                approved = True
            if run.get("status") in ("completed", "failed", "cancelled", "timed_out"):
                break
            time.sleep(0.5)
        output = run.get("output") or {}
        say(f"\n■ run {run.get('status')}: {json.dumps(output)}")
        say(f"   Slack status message: {messages[-1]['text'] if messages else '(none)'}")
        say(f"   PagerDuty events: {', '.join(pagerduty_state.events)}")
        say(f"   Kubernetes restarts: {len(cluster.patches)}; Jira: {output.get('postmortem')}")
        steps = [s["name"] for s in run.get("steps", []) if s["status"] == "completed"]
        done = set(steps) | {k for k in ("escalated", "diagnosis") if output.get(k)}
        say("\nThe reference procedure (docs/howto/runbooks.md):")
        automated = 0
        manual = []
        for number, text in enumerate(PROCEDURE, 1):
            evidence = EVIDENCE.get(number, ())
            did = bool(evidence) and all(e in done for e in evidence)
            automated += did
            if not did:
                manual.append(number)
            say(f"  {'✔ opsloom' if did else '✋ person '}  {number:2}. {text}")
        total = len(PROCEDURE)
        say(
            f"\nopsloom did {automated} of {total} steps ({round(100 * automated / total)} %); "
            f"left to people: {', '.join(map(str, manual))}"
        )
        ok = run.get("status") == "completed" and output.get("resolved") is True
        say("stopping everything the demo started…")
    return 0 if ok else 1


async def _prepare(db: str, key: str, connections: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """The runbook's connections, and alice, who approves as a member of sre-leads."""
    from pydantic import SecretStr

    from opsloom import App
    from opsloom.identity.access import Identity
    from opsloom.settings import Settings

    settings = Settings(database_url=db, secret_key=SecretStr(key))
    app = App(db, worker=None, settings=settings)
    async with app:
        for name, (connector, values) in connections.items():
            await app.connections.add_connection(name, connector, values)
        identity = Identity(app.store, app.clock)
        await identity.add_user("alice", roles=("approver",), actor="demo")
        await identity.add_to_group("alice", "sre-leads", actor="demo")


def _first_run(api: Any) -> str | None:
    runs = api.get("/runs", params={"workflow": "incident-response", "limit": "5"}).json()
    return runs[-1]["id"] if runs else None


if __name__ == "__main__":
    raise SystemExit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))
