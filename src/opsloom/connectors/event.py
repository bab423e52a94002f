"""Breaker transitions as CloudEvents, and breaker states as the store keeps them.

A breaker that opens or closes is announced as ``io.opsloom.connector.breaker.opened.v1`` or
``…closed.v1`` (source ``opsloom/connections/<name>``, subject the connection), so a workflow
can react: notify, or fail over to another connection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsloom.connectors.breaker import BreakerSnapshot, BreakerState, Transition
from opsloom.store.connection import BreakerRecord

OPENED = "io.opsloom.connector.breaker.opened.v1"
CLOSED = "io.opsloom.connector.breaker.closed.v1"

__all__ = ["CLOSED", "OPENED", "breaker_event"]


def breaker_event(change: Transition, snap: BreakerSnapshot) -> dict[str, Any]:
    """The CloudEvent announcing a breaker that opened or closed."""
    kind = "opened" if change.after is BreakerState.OPEN else "closed"
    return {
        "specversion": "1.0",
        "id": f"{change.connection}:{kind}:{int(change.at * 1000)}",
        "source": f"opsloom/connections/{change.connection}",
        "type": OPENED if change.after is BreakerState.OPEN else CLOSED,
        "subject": change.connection,
        "time": iso(change.at),
        "datacontenttype": "application/json",
        "data": {
            "connection": change.connection,
            "state": str(change.after),
            "previous": str(change.before),
            "reason": change.reason,
            "reopen_at": iso(snap.reopen_at),
        },
    }


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def snapshot_of(rec: BreakerRecord) -> BreakerSnapshot:
    return BreakerSnapshot(
        rec.connection,
        BreakerState(rec.state),
        rec.opened_at,
        rec.reopen_at,
        rec.failures,
        rec.changed_at,
    )


def record_of(snap: BreakerSnapshot) -> BreakerRecord:
    return BreakerRecord(
        snap.connection,
        str(snap.state),
        snap.opened_at,
        snap.reopen_at,
        snap.failures,
        snap.changed_at,
    )
