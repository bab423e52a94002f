"""The connectors an app knows: registered explicitly or found through entry points.

Every connector, built-in or a team's own, comes through the same door: an entry point in the
``opsloom.connectors`` group whose object is a :class:`~opsloom.connectors.sdk.Connector` (or
a list of them)::

    [project.entry-points."opsloom.connectors"]
    acme = "acme_ops.connector:connector"

:meth:`ConnectorRegistry.discover` loads them (through :func:`opsloom.extension.discover`, like
the other entry-point groups); :meth:`ConnectorRegistry.register` adds one from code (tests, an
app's own module). This is the one registry of connectors: the app's
(:attr:`opsloom.App.connectors`) is the one its connector runtime calls actions through. There
is no global registry: each app holds its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from opsloom.connectors.sdk import Action, Connector
from opsloom.errors import ConfigurationError, ConnectorNotFoundError
from opsloom.extension import CONNECTORS, ExtensionError, discover

log = logging.getLogger("opsloom.connectors")

GROUP = CONNECTORS


def as_connectors(name: str, obj: Any) -> list[Connector[Any]]:
    """The SDK connectors an entry point provides (one, or a list of them).

    Raises:
        TypeError: something else, such as a bare object with a ``name`` and ``actions``: its
            actions could not be called, so it is refused with a pointer to the SDK.
    """
    items = list(obj) if isinstance(obj, list | tuple) else [obj]
    for item in items:
        if not isinstance(item, Connector):
            raise TypeError(
                f"{item!r} is not a Connector of opsloom.connectors.sdk "
                "(see opsloom.plugin: Connector, ActionContext, ConnectionSettings)"
            )
    return items


class ConnectorRegistry:
    """Connectors by name, and their actions by ``connector.action``."""

    def __init__(self, connectors: list[Connector[Any]] | None = None) -> None:
        self._connectors: dict[str, Connector[Any]] = {}
        #: Entry points (and imported documents) that were skipped, and why.
        self.errors: list[ConfigurationError] = []
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

        try:
            for connector in imported_connectors(imported):
                registry.register(connector)
        except ConfigurationError as exc:
            registry._skip(exc)
        return registry

    @classmethod
    def installed(cls) -> tuple[ConnectorRegistry, list[ConfigurationError]]:
        """The connectors of the ``opsloom.connectors`` entry points, and the failures."""
        registry = cls()
        registry.discover()
        return registry, list(registry.errors)

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

    def discover(self, points: list[EntryPoint] | None = None) -> None:
        """Register the connectors of every installed ``opsloom.connectors`` entry point
        (or of ``points``).

        An entry point that cannot be loaded, holds something that is not a connector of this
        SDK, or reuses a taken name is skipped with an error naming it and its distribution,
        kept in :attr:`errors`: one broken package must not stop the server or the commands
        that never use it.
        """
        loaded, errors = discover(GROUP, as_connectors, points)
        self.errors.extend(errors)
        for item in loaded:
            for connector in item.obj:
                try:
                    self.register(connector)
                except ConfigurationError as exc:
                    why = ExtensionError(GROUP, item.name, item.value, item.distribution, str(exc))
                    self._skip(why)

    def _skip(self, problem: ConfigurationError) -> None:
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

    def get(self, name: str) -> Connector[Any] | None:
        """The connector of that name, if any."""
        return self._connectors.get(name)

    @property
    def names(self) -> list[str]:
        """Registered connector names, sorted."""
        return sorted(self._connectors)

    def __iter__(self) -> Iterator[Connector[Any]]:
        return iter(self.connectors())

    def __len__(self) -> int:
        return len(self._connectors)

    def connectors(self) -> list[Connector[Any]]:
        """Every connector, by name."""
        return [self._connectors[name] for name in sorted(self._connectors)]

    def actions(self) -> list[Action[Any, Any]]:
        """Every action of every connector."""
        return [a for c in self.connectors() for a in c.actions.values()]
