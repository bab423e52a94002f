"""Real Prometheus and Alertmanager notifying a running ``opsloom up``.

Prometheus evaluates ``peers/rules.yml`` over a gauge the test serves (see ``peers.Gate``),
Alertmanager sends its webhook notifications to ``/hooks/alertmanager`` with a Bearer
credential, and a deployed document (``disk-full.yaml``) is started by the firing alert and
listens for its resolution. Nothing in between is simulated: the payloads, fingerprints,
repeat notifications and the resolved notification are the peers' own.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from peers import (
    Gate,
    Peer,
    clean_env,
    metric,
    opsloom,
    require_binaries,
    start_alertmanager,
    start_opsloom,
    start_prometheus,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

DOCUMENT = Path(__file__).resolve().parent / "disk-full.yaml"
WORKFLOW = "e2e/disk-full"
FIRING = "io.opsloom.alert.firing.v1"
RESOLVED = "io.opsloom.alert.resolved.v1"
HOOK_TOKEN = "e2e-alertmanager-credential"
API_TOKEN = "e2e-api-token"
#: The labels Alertmanager sends for the alert of peers/rules.yml (rule labels, the alert's
#: name and Prometheus's external labels).
LABELS = {
    "alertname": "OpsloomE2EDiskFull",
    "severity": "critical",
    "service": "checkout",
    "env": "e2e",
}
TERMINAL = {"completed", "failed", "cancelled", "timed_out"}


class Observer:
    """Reads what opsloom stored and what Alertmanager counted, for assertions."""

    def __init__(self, opsloom_peer: Peer, alertmanager: Peer, *others: Peer) -> None:
        self.api = httpx.Client(
            base_url=f"{opsloom_peer.url}/api/v1",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        self.alertmanager = alertmanager
        self.peers = (opsloom_peer, alertmanager, *others)

    def events(self, type: str, subject: str | None = None) -> list[dict[str, Any]]:
        params = {"type": type, "limit": "100"} | ({"subject": subject} if subject else {})
        response = self.api.get("/events", params=params)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def runs(self) -> list[dict[str, Any]]:
        response = self.api.get("/runs", params={"workflow": WORKFLOW, "limit": "100"})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def notifications(self) -> tuple[float, float]:
        """Webhook notifications Alertmanager sent, and how many of them failed."""
        text = httpx.get(f"{self.alertmanager.url}/metrics", timeout=5).text
        return (
            metric(text, "alertmanager_notifications_total", integration="webhook"),
            metric(text, "alertmanager_notifications_failed_total", integration="webhook"),
        )

    def explain(self) -> str:
        """The peers' last output lines and what opsloom holds, for a failure message."""
        parts = [peer.tail() for peer in self.peers]
        try:
            parts.append(f"runs: {self.runs()}")
            parts.append(f"firing: {self.events(FIRING)}\nresolved: {self.events(RESOLVED)}")
            parts.append(f"alertmanager notifications (sent, failed): {self.notifications()}")
        except httpx.HTTPError as exc:
            parts.append(f"(could not read state: {exc})")
        return "\n".join(parts)


def test_alertmanager__firing_starts_one_run_repeats_do_not_and_resolved_completes_it(
    tmp_path: Path,
) -> None:
    prometheus_bin, alertmanager_bin = require_binaries()
    db = f"sqlite:///{tmp_path / 'opsloom.db'}"
    env = clean_env(OPSLOOM_HOOKS_ALERTMANAGER_TOKEN=HOOK_TOKEN, OPSLOOM_API_TOKEN=API_TOKEN)
    deployed = opsloom("deploy", str(DOCUMENT), "--db", db, env=env)
    assert deployed.returncode == 0, deployed.stderr

    with ExitStack() as stack:
        server = start_opsloom(tmp_path, db, env)
        stack.callback(server.stop)
        alertmanager = start_alertmanager(
            alertmanager_bin, tmp_path, f"{server.url}/hooks/alertmanager", HOOK_TOKEN
        )
        stack.callback(alertmanager.stop)
        gate = stack.enter_context(Gate(value=1).serving())
        prometheus = start_prometheus(prometheus_bin, tmp_path, alertmanager, gate)
        stack.callback(prometheus.stop)
        seen = Observer(server, alertmanager, prometheus)
        stack.callback(seen.api.close)

        # The firing alert is stored as one event, and that event starts one run.
        firing = wait_until(
            lambda: seen.events(FIRING) or None, "the firing alert", 60, seen.explain
        )
        assert len(firing) == 1, seen.explain()
        event = firing[0]["event"]
        assert event["source"] == "/hooks/alertmanager"
        assert LABELS.items() <= event["data"]["labels"].items()
        fingerprint = event["subject"]
        started = wait_until(lambda: seen.runs() or None, "a run of the document", 20, seen.explain)
        run = started[0]
        assert (run["event_source"], run["event_id"]) == (event["source"], event["id"])
        assert run["input"]["subject"] == fingerprint
        assert LABELS.items() <= run["input"]["data"]["labels"].items()

        # Alertmanager repeats the notification for the still-firing alert (repeat_interval
        # 2 s): the repeats are acknowledged, stored as nothing new and start no run.
        wait_until(
            lambda: seen.notifications()[0] >= 3, "two repeat notifications", 30, seen.explain
        )
        assert seen.notifications()[1] == 0, seen.explain()
        assert len(seen.events(FIRING)) == 1, seen.explain()
        runs = seen.runs()
        assert [r["id"] for r in runs] == [run["id"]], seen.explain()
        assert runs[0]["status"] not in TERMINAL, seen.explain()

        # The alert resolves: its resolved event reaches the same run, which completes.
        gate.set(0)
        done = wait_until(
            lambda: next((r for r in seen.runs() if r["status"] in TERMINAL), None),
            "the run to end after the alert resolved",
            45,
            seen.explain,
        )
        assert done["id"] == run["id"], seen.explain()
        assert done["status"] == "completed", seen.explain()
        resolved = seen.events(RESOLVED, subject=fingerprint)
        assert len(resolved) == 1, seen.explain()
        assert resolved[0]["event"]["data"]["status"] == "resolved"
        assert resolved[0]["event"]["data"]["endsAt"] is not None
        assert done["output"]["fingerprint"] == fingerprint
        assert LABELS.items() <= done["output"]["labels"].items()
        assert done["output"]["resolved"] == "resolved"
        assert len(seen.runs()) == 1, seen.explain()
        assert seen.notifications()[1] == 0, seen.explain()

        assert prometheus.stop() == 0
        assert alertmanager.stop() == 0
        assert server.stop() == 0, server.tail()
    assert "Traceback" not in server.log.read_text(encoding="utf-8", errors="replace")
