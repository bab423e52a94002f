"""Connector actions as catalog functions, so documents call them like any other function.

Each action becomes ``<connector>-<action>:<version>@default`` (``slack-post-message:1.0.0``);
its ``with`` holds ``connection`` and the action's input::

    - notify:
        call: slack-post-message:1.0.0@default
        with:
          connection: ops-slack
          channel: "#incidents"
          text: ${ "disk full on " + .host }

The call is one durable step named after the action (``slack.post_message``), retried by the
engine under the action's retry policy: a rate limit or an open circuit breaker waits the
delay it names, without holding a worker slot.
"""

from __future__ import annotations

from typing import Any

from opsloom.connectors.runtime import ConnectorRuntime
from opsloom.connectors.sdk import Action
from opsloom.dsl.catalog import Catalog, CatalogFunctionFn, FunctionCall


def action_schema(action: Action[Any, Any]) -> dict[str, Any]:
    """The JSON Schema of an action's ``with``: ``connection`` plus the action's input."""
    schema = action.input.model_json_schema()
    properties = {"connection": {"type": "string", "minLength": 1}, **schema.get("properties", {})}
    required = ["connection", *schema.get("required", [])]
    out: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if "$defs" in schema:
        out["$defs"] = schema["$defs"]
    return out


def catalog_function(action: Action[Any, Any]) -> CatalogFunctionFn:
    """The catalog function that runs ``action`` as one step (through the app's runtime)."""

    async def run(call: FunctionCall) -> Any:
        fields = dict(call.arguments)
        connection = str(fields.pop("connection"))
        return await call.ctx.step(action, connection=connection, **fields)

    return run


def register_actions(catalog: Catalog, runtime: ConnectorRuntime) -> None:
    """Register every action of the runtime's connectors in ``catalog``."""
    for action in runtime.registry.actions():
        catalog.register(
            action.function,
            action.connector.version,
            catalog_function(action),
            description=action.summary,
            input_schema=action_schema(action),
        )
