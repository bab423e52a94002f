"""What a package that extends opsloom imports: one stable place for plugin authors.

A catalog function (entry point group ``opsloom.functions``)::

    from opsloom.plugin import FunctionCall, catalog_function

    async def shout(call: FunctionCall) -> str:
        return str(call.arguments["text"]).upper()

    function = catalog_function("shout", "1.0.0", shout, input_schema={"type": "object"})

A webhook source (group ``opsloom.sources``): a class with a ``name``, a pydantic ``config``
model (its fields become ``OPSLOOM_HOOKS_<NAME>_<FIELD>`` variables), ``verify`` (raise
:class:`WebhookAuthError`) and ``normalise`` (return CloudEvents, e.g. from
:func:`make_event`). A connector (group ``opsloom.connectors``): an object with a ``name``
and a mapping of ``actions`` (:class:`Connector`).
"""

from __future__ import annotations

from opsloom.dsl.catalog import (
    Catalog,
    CatalogFunction,
    FunctionCall,
    FunctionSetup,
    catalog_function,
)
from opsloom.extension import Connector, ConnectorRegistry, ExtensionError
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
    "Catalog",
    "CatalogFunction",
    "CloudEvent",
    "Connector",
    "ConnectorRegistry",
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
