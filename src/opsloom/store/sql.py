"""Every operation of :class:`~opsloom.store.base.Store`, written once over the transaction seam.

A dialect (``dialects/sqlite.py``, ``dialects/postgres.py``) subclasses :class:`SqlStore` and
adds what only it knows: connections, its writer, the claim query and wake-ups.
"""

from __future__ import annotations

from opsloom.store.approval import ApprovalOps
from opsloom.store.audit import AuditOps
from opsloom.store.connection import ConnectionOps
from opsloom.store.document import DocumentOps
from opsloom.store.event import EventOps
from opsloom.store.identity import IdentityOps
from opsloom.store.pause import PauseOps
from opsloom.store.reset import ResetOps
from opsloom.store.rollup import RollupQueries
from opsloom.store.run import RunOps
from opsloom.store.schedule import ScheduleOps
from opsloom.store.stats import StatsQueries
from opsloom.store.trigger import TriggerOps


class SqlStore(
    RunOps,
    PauseOps,
    ResetOps,
    EventOps,
    TriggerOps,
    ScheduleOps,
    DocumentOps,
    ApprovalOps,
    IdentityOps,
    AuditOps,
    ConnectionOps,
    StatsQueries,
    RollupQueries,
):
    """The operations of every aggregate; reads and writes are the dialect's."""
