"""The app ``opsloom demo`` serves: the incident-response runbook with the demo's short timings.

The connections it names are created by the demo (:mod:`opsloom.demo.run`) against the local
stand-ins; a team's own app installs the runbook the same way with its settings.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from opsloom import App
from opsloom.connectors.builtin import kubernetes

#: Where the runbook library is: inside an installed wheel, or ``examples/`` of a checkout.
LIBRARIES = ("opsloom.examples.runbooks", "examples.runbooks")


def runbook(name: str) -> ModuleType:
    """The library's module ``name`` (``incident``), wherever the library is installed."""
    for package in LIBRARIES:
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name is None or not package.startswith(exc.name):
                raise  # the runbook is there but something it imports is not
    raise ModuleNotFoundError(
        f"the runbook library is not installed: neither {' nor '.join(LIBRARIES)} has {name!r}"
    )


def _restart(incident: dict[str, Any]) -> dict[str, Any]:
    labels = incident["labels"]
    return {
        "name": labels.get("deployment", incident["service"]),
        "namespace": labels.get("namespace", "shop"),
    }


def make_app() -> App:
    """The demo's app: the incident runbook, ready to page, approve, restart and verify."""
    incident = runbook("incident")
    app = App()
    incident.install(
        app,
        incident.IncidentSettings(
            repository="acme/checkout",
            approvers=("sre-leads",),
            ack_timeout=8.0,
            verify_interval=2.0,
            verify_checks=30,
            remediation=incident.Remediation(
                kubernetes.rollout_restart,
                "kubernetes",
                _restart,
                "rollout restart deployment/checkout",
            ),
        ),
    )
    return app


app = make_app()
