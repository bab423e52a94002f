"""Connectors: typed actions on the tools operations teams use, through named connections.

See :mod:`opsloom.connectors.sdk` to write one, :mod:`opsloom.connectors.runtime` for what a
call goes through, and ``opsloom connectors list`` for those installed.
"""

from opsloom.connectors.breaker import BreakerPolicy, BreakerState
from opsloom.connectors.ratelimit import RateLimit
from opsloom.connectors.registry import ConnectorRegistry
from opsloom.connectors.runtime import ConnectorRuntime
from opsloom.connectors.sdk import (
    Action,
    ActionContext,
    ConnectionSettings,
    Connector,
    Endpoint,
)

__all__ = [
    "Action",
    "ActionContext",
    "BreakerPolicy",
    "BreakerState",
    "ConnectionSettings",
    "Connector",
    "ConnectorRegistry",
    "ConnectorRuntime",
    "Endpoint",
    "RateLimit",
]
