"""The app ``make demo`` serves: the incident-response runbook with the demo's short timings.

The connections it names are created by the demo (``examples/runbooks/demo.py``) against the
local fakes; a team's own app calls :func:`~examples.runbooks.incident.install` the same way
with its settings.
"""

from __future__ import annotations

from typing import Any

from examples.runbooks.incident import IncidentSettings, Remediation, install
from opsloom import App
from opsloom.connectors.builtin import kubernetes


def _restart(incident: dict[str, Any]) -> dict[str, Any]:
    labels = incident["labels"]
    return {
        "name": labels.get("deployment", incident["service"]),
        "namespace": labels.get("namespace", "shop"),
    }


app = App()
install(
    app,
    IncidentSettings(
        repository="acme/checkout",
        approvers=("sre-leads",),
        ack_timeout=8.0,
        verify_interval=2.0,
        verify_checks=30,
        remediation=Remediation(
            kubernetes.rollout_restart,
            "kubernetes",
            _restart,
            "rollout restart deployment/checkout",
        ),
    ),
)
