"""``make demo``: the incident-response runbook end to end, on loopback, with no accounts.

Starts the local fakes (Slack, PagerDuty, GitHub, Jira: checked against the vendors' specs;
a Kubernetes API server checked against the schemas ``kubernetes-validate`` ships), real
Prometheus and Alertmanager, and ``opsloom up`` serving ``examples/runbooks/demo_app.py``;
fires a real alert and follows the run; prints the reference procedure of
``docs/howto/runbooks.md`` with what opsloom did; stops everything it started.

Run from a source checkout after ``make .venv/.installed`` (the fakes and the peers' helpers
live in ``tests/``; the vendors' specs in ``shared/contracts`` or ``$OPSLOOM_CONTRACTS``).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
PROCEDURE = ROOT / "docs" / "howto" / "runbooks.md"
HOOK_TOKEN = "demo-alertmanager-credential"
API_TOKEN = "demo-admin-token"
KUBE_TOKEN = "demo-kube-token"
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


def say(text: str) -> None:
    print(text, flush=True)


def procedure() -> list[tuple[int, str]]:
    """The numbered steps of the reference procedure in the docs."""
    found = re.findall(r"^(\d+)\. (.+)$", PROCEDURE.read_text(encoding="utf-8"), re.MULTILINE)
    return [(int(n), text) for n, text in found]


def main() -> int:
    sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "connectors")]
    import httpx
    from cryptography.fernet import Fernet
    from kube_fake import Cluster, deployment, kubeconfig
    from peers import (
        Gate,
        clean_env,
        opsloom,
        require_binaries,
        start_alertmanager,
        start_opsloom,
        start_prometheus,
        wait_until,
    )
    from vendors import github_fake, jira_fake, pagerduty_fake, slack_fake

    prometheus_bin, alertmanager_bin = require_binaries()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opsloom-demo-")))
        db = f"sqlite:///{folder / 'demo.db'}"
        env = clean_env(
            OPSLOOM_SECRET_KEY=Fernet.generate_key().decode(),
            OPSLOOM_HOOKS_ALERTMANAGER_TOKEN=HOOK_TOKEN,
            OPSLOOM_API_TOKEN=API_TOKEN,
        )
        messages: list[dict[str, Any]] = []
        slack = stack.enter_context(slack_fake(messages))
        pagerduty = stack.enter_context(pagerduty_fake())
        github = stack.enter_context(github_fake())
        jira = stack.enter_context(jira_fake())
        cluster = Cluster({KUBE_TOKEN})
        cluster.add(deployment("checkout", "shop", replicas=3))
        kube = stack.enter_context(cluster.vendor())
        say("· fakes of Slack, PagerDuty, GitHub, Jira and a Kubernetes API server are up")

        server = start_opsloom(folder, db, env, app="examples.runbooks.demo_app:app")
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
            "github": ("github", {"token": "ghp_demo", "api_url": github.url}),
            "jira": (
                "jira",
                {"site_url": jira.url, "email": "bot@acme.test", "api_token": "demo"},
            ),
        }
        config = folder / "kubeconfig.json"
        config.write_text(kubeconfig(kube.url, KUBE_TOKEN), encoding="utf-8")
        gate = stack.enter_context(Gate(value=0).serving())
        alertmanager = start_alertmanager(
            alertmanager_bin, folder, f"{server.url}/hooks/alertmanager", HOOK_TOKEN
        )
        stack.callback(alertmanager.stop)
        prometheus = start_prometheus(prometheus_bin, folder, alertmanager, gate)
        stack.callback(prometheus.stop)
        connections["prometheus"][1]["url"] = prometheus.url
        connections["alertmanager"][1]["url"] = alertmanager.url
        connections["kubernetes"] = ("kubernetes", {})
        for name, (connector, values) in connections.items():
            sets = [f"--set={key}={value}" for key, value in values.items()]
            if connector == "kubernetes":
                sets.append(f"--set-file=kubeconfig={config}")
            done = opsloom("connections", "add", name, "-c", connector, *sets, "--db", db, env=env)
            if done.returncode != 0:
                raise SystemExit(f"connection {name}: {done.stderr}")
        for command in (
            ("users", "add", "alice", "-r", "approver"),
            ("groups", "add-member", "sre-leads", "alice"),
        ):
            done = opsloom(*command, "--db", db, env=env)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(command)}: {done.stderr}")
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
                say("   (the demo approves as alice from the CLI in 20 s)\n")
            if pending and asked_at is not None and time.monotonic() - asked_at > 20:
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
        events = [r.json["event_action"] for r in pagerduty.requests if r.path == "/v2/enqueue"]
        say(f"   PagerDuty events: {', '.join(events)}")
        say(f"   Kubernetes restarts: {len(cluster.patches)}; Jira: {output.get('postmortem')}")
        steps = [s["name"] for s in run.get("steps", []) if s["status"] == "completed"]
        done = set(steps) | {k for k in ("escalated", "diagnosis") if output.get(k)}
        say("\nThe reference procedure (docs/howto/runbooks.md):")
        automated = 0
        manual = []
        for number, text in procedure():
            evidence = EVIDENCE.get(number, ())
            did = bool(evidence) and all(e in done for e in evidence)
            automated += did
            if not did:
                manual.append(number)
            say(f"  {'✔ opsloom' if did else '✋ person '}  {number:2}. {text}")
        total = len(procedure())
        say(
            f"\nopsloom did {automated} of {total} steps ({round(100 * automated / total)} %); "
            f"left to people: {', '.join(map(str, manual))}"
        )
        ok = run.get("status") == "completed" and output.get("resolved") is True
        say("stopping everything the demo started…")
    return 0 if ok else 1


def _first_run(api: Any) -> str | None:
    runs = api.get("/runs", params={"workflow": "incident-response", "limit": "5"}).json()
    return runs[-1]["id"] if runs else None


if __name__ == "__main__":
    raise SystemExit(main())
