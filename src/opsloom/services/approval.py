"""The approvals service of an App, as the HTTP API and the web UI use it."""

from __future__ import annotations

from opsloom.app import App
from opsloom.approvals.service import Approvals
from opsloom.identity.access import Identity
from opsloom.identity.audit import AuditLog


def approvals_of(app: App) -> Approvals:
    """Approvals over ``app``'s store, auditing decisions and waking its worker's runs."""
    return Approvals(
        app.store,
        app.clock,
        Identity(app.store, app.clock),
        AuditLog(app.store, app.clock),
        notify=None if app.worker is None else app.worker.notify,
    )
