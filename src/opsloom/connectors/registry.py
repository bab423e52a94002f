"""The connectors an app knows: registered explicitly or found through entry points.

Every connector, built-in or a team's own, comes through the same door: an entry point in the
``opsloom.connectors`` group whose object is a :class:`~opsloom.connectors.sdk.Connector` (or
a list of them)::

    [project.entry-points."opsloom.connectors"]
    acme = "acme_ops.connector:connector"

:meth:`ConnectorRegistry.discover` loads them; :meth:`ConnectorRegistry.register` adds one
from code (tests, an app's own module). There is no global registry: each app holds its own.
"""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from opsloom.connectors.sdk import Action, Connector
from opsloom.errors import ConfigurationError, ConnectorNotFoundError

log = logging.getLogger("opsloom.connectors")

GROUP = "opsloom.connectors"


class ConnectorRegistry:
    """Connectors by name, and their actions by ``connector.action``."""

    def __init__(self, connectors: list[Connector[Any]] | None = None) -> None:
        self._connectors: dict[str, Connector[Any]] = {}
        #: Entry points that were skipped, and why.
        self.errors: list[str] = []
        for connector in connectors or []:
            self.register(connector)

    @classmethod
    def discovered(cls, imported: Path | None = None) -> ConnectorRegistry:
        """A registry holding every connector of the ``opsloom.connectors`` entry points and
        those imported from OpenAPI documents into ``imported`` (``OPSLOOM_CONNECTORS_DIR``
        when not given)."""
        registry = cls()
        registry.discover()
        if imported is None:
            from opsloom.settings import load_settings

            imported = load_settings().connectors_dir
        from opsloom.connectors.openapi import imported_connectors

        for connector in imported_connectors(imported):
            registry.register(connector)
        return registry

    def register(self, connector: Connector[Any]) -> None:
        """Add a connector; the same object twice is a no-op, another of that name an error."""
        if not isinstance(connector, Connector):
            raise ConfigurationError(f"{connector!r} is not a Connector")
        known = self._connectors.get(connector.name)
        if known is connector:
            return
        if known is not None:
            raise ConfigurationError(f"two connectors are named {connector.name!r}")
        self._connectors[connector.name] = connector

    def discover(self) -> None:
        """Register the connectors of every installed ``opsloom.connectors`` entry point.

        An entry point that cannot be loaded, or holds something that is not a connector of
        this SDK, is skipped with a warning naming it and kept in :attr:`errors`: one broken
        package must not stop the server or the commands that never use it.
        """
        for entry in metadata.entry_points(group=GROUP):
            where = f"entry point {entry.name!r} ({entry.value})"
            try:
                loaded = entry.load()
            except Exception as exc:
                self._skip(f"cannot load connector {where}: {type(exc).__name__}: {exc}")
                continue
            items = loaded if isinstance(loaded, list | tuple) else [loaded]
            for item in items:
                if not isinstance(item, Connector):
                    self._skip(f"connector {where} is not a Connector: {item!r}")
                    continue
                self.register(item)

    def _skip(self, problem: str) -> None:
        self.errors.append(problem)
        log.warning("%s; skipped", problem)

    def connector(self, name: str) -> Connector[Any]:
        """A connector by name; ``ConnectorNotFoundError`` naming the known ones."""
        found = self._connectors.get(name)
        if found is None:
            known = ", ".join(sorted(self._connectors)) or "none"
            raise ConnectorNotFoundError(f"no connector {name!r} (known: {known})")
        return found

    def action(self, ref: str) -> Action[Any, Any]:
        """An action by ``connector.action`` (``slack.post_message``) or catalog name
        (``slack-post-message``)."""
        for connector in self._connectors.values():
            for action in connector.actions.values():
                if ref in (action.id, action.function):
                    return action
        connector_name = ref.split(".", 1)[0].split("-", 1)[0]
        known = self._connectors.get(connector_name)
        names = (
            ", ".join(a.id for a in known.actions.values())
            if known is not None
            else ", ".join(sorted(self._connectors))
        )
        raise ConnectorNotFoundError(f"no connector action {ref!r} (known: {names or 'none'})")

    def connectors(self) -> list[Connector[Any]]:
        """Every connector, by name."""
        return [self._connectors[name] for name in sorted(self._connectors)]

    def actions(self) -> list[Action[Any, Any]]:
        """Every action of every connector."""
        return [a for c in self.connectors() for a in c.actions.values()]
