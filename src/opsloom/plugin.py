"""What a package that extends opsloom imports: one stable place for plugin authors.

A catalog function (entry point group ``opsloom.functions``)::

    from opsloom.plugin import FunctionCall, catalog_function

    async def shout(call: FunctionCall) -> str:
        return str(call.arguments["text"]).upper()

    function = catalog_function("shout", "1.0.0", shout, input_schema={"type": "object"})

A webhook source (group ``opsloom.sources``): a class with a ``name``, a pydantic ``config``
model (its fields become ``OPSLOOM_HOOKS_<NAME>_<FIELD>`` variables), ``verify`` (raise
:class:`WebhookAuthError`) and ``normalise`` (return CloudEvents, e.g. from
:func:`make_event`). A connector (group ``opsloom.connectors``): a :class:`Connector` with
typed actions, the same SDK the built-in connectors use::

    from opsloom.plugin import ActionContext, ConnectionSettings, Connector

    class AcmeSettings(ConnectionSettings):
        token: SecretStr

    connector = Connector("acme", AcmeSettings, title="Acme")

    @connector.action
    async def ping(ctx: ActionContext[AcmeSettings], data: Ping) -> Pong: ...
"""

from __future__ import annotations

from opsloom.connectors.registry import ConnectorRegistry
from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.dsl.catalog import (
    Catalog,
    CatalogFunction,
    FunctionCall,
    FunctionSetup,
    catalog_function,
)
from opsloom.extension import ExtensionError
from opsloom.model.cloudevent import CloudEvent
from opsloom.triggers.sources.base import (
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    WebhookSource,
    json_object,
)
from opsloom.triggers.sources.config import HooksConfig
from opsloom.triggers.sources.event import make_event

__all__ = [
    "ActionContext",
    "Catalog",
    "CatalogFunction",
    "CloudEvent",
    "ConnectionSettings",
    "Connector",
    "ConnectorRegistry",
    "Endpoint",
    "ExtensionError",
    "FunctionCall",
    "FunctionSetup",
    "HooksConfig",
    "WebhookAuthError",
    "WebhookPayloadError",
    "WebhookRequest",
    "WebhookSource",
    "catalog_function",
    "json_object",
    "make_event",
]
