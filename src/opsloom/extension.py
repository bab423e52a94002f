"""Extension points: what installed packages add to opsloom through entry points.

A package plugs in by declaring entry points in its ``pyproject.toml``; opsloom's own built-ins
are declared the same way, so a team's package is never second class::

    [project.entry-points."opsloom.functions"]
    shout = "my_ops.functions:shout"        # a CatalogFunction, or install(catalog, setup)

    [project.entry-points."opsloom.sources"]
    acme = "my_ops.hooks:AcmeSource"        # a webhook source (class or instance)

    [project.entry-points."opsloom.connectors"]
    acme = "my_ops.connector:connector"     # an object with a name and actions

Loading one entry point is isolated from the others: a package that fails to import, or whose
object has the wrong shape, gives an :class:`ExtensionError` that names the entry point and
its distribution, and everything else still loads. ``opsloom up`` reports such errors and
serves on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from opsloom.errors import ConfigurationError

log = logging.getLogger("opsloom.extension")

FUNCTIONS = "opsloom.functions"
SOURCES = "opsloom.sources"
CONNECTORS = "opsloom.connectors"
#: Every group opsloom reads, in the order the App loads them.
GROUPS = (FUNCTIONS, SOURCES, CONNECTORS)

T = TypeVar("T")


class ExtensionError(ConfigurationError):
    """An entry point could not be loaded or does not provide what its group expects."""

    code = "extension_error"

    def __init__(self, group: str, name: str, value: str, distribution: str | None, why: str):
        origin = f" from {distribution}" if distribution else ""
        super().__init__(f"entry point {name!r} = {value!r} in {group}{origin}: {why}")
        self.group = group
        self.name = name
        self.value = value
        self.distribution = distribution


@dataclass(frozen=True, slots=True)
class Loaded(Generic[T]):
    """One entry point and the object it provides, converted for its group."""

    name: str
    value: str
    distribution: str | None
    obj: T


def _distribution(point: EntryPoint) -> str | None:
    dist = getattr(point, "dist", None)
    return None if dist is None else f"{dist.name} {dist.version}"


def discover(
    group: str,
    convert: Callable[[str, Any], T],
    points: list[EntryPoint] | None = None,
) -> tuple[list[Loaded[T]], list[ExtensionError]]:
    """Load every entry point of ``group``; convert each object, collecting failures.

    Args:
        group: the entry-point group, e.g. :data:`FUNCTIONS`.
        convert: checks the loaded object (given the entry point's name) and returns what the
            group keeps; raises ``TypeError`` or ``ValueError`` when the shape is wrong.
        points: the entry points to load instead of the installed ones (tests).

    Returns:
        The loaded entry points sorted by name, and an error for each one that failed.
    """
    found = sorted(
        entry_points(group=group) if points is None else points, key=lambda p: (p.name, p.value)
    )
    loaded: list[Loaded[T]] = []
    errors: list[ExtensionError] = []
    seen: set[str] = set()
    for point in found:
        dist = _distribution(point)
        if point.name in seen:
            # The same package visible twice on the path (an editable install and a copy).
            continue
        try:
            obj = point.load()
        except Exception as exc:  # a plugin's import may raise anything; it must not stop us
            errors.append(
                ExtensionError(group, point.name, point.value, dist, _why("cannot load", exc))
            )
            continue
        try:
            converted = convert(point.name, obj)
        except (TypeError, ValueError, ConfigurationError) as exc:
            errors.append(ExtensionError(group, point.name, point.value, dist, str(exc)))
            continue
        except Exception as exc:  # e.g. a property of the plugin's object that raises
            errors.append(
                ExtensionError(group, point.name, point.value, dist, _why("cannot use it", exc))
            )
            continue
        seen.add(point.name)
        loaded.append(Loaded(point.name, point.value, dist, converted))
    for error in errors:
        log.error("%s", error)
    return loaded, errors


def _why(what: str, exc: BaseException) -> str:
    return f"{what}: {type(exc).__name__}: {exc}"


# --- connectors -------------------------------------------------------------------------------


@runtime_checkable
class Connector(Protocol):
    """What an ``opsloom.connectors`` entry point provides: a named package of actions.

    ``actions`` maps each action's name to what runs it; the connector SDK decides the shape of
    an action, this seam only keeps connectors by name.
    """

    @property
    def name(self) -> str:
        """The connector's name (``slack``, ``pagerduty``), unique among installed ones."""
        ...

    @property
    def actions(self) -> Mapping[str, Any]:
        """The connector's actions by name."""
        ...


def as_connector(name: str, obj: Any) -> Connector:
    """The connector an entry point provides (a class is instantiated without arguments)."""
    if isinstance(obj, type):
        obj = obj()
    if not isinstance(obj, Connector):
        raise TypeError(f"a connector has a 'name' and 'actions', not {type(obj).__name__}")
    if not isinstance(obj.actions, Mapping):
        raise TypeError(f"connector {obj.name!r}: 'actions' must be a mapping of names")
    return obj


class ConnectorRegistry:
    """Connectors by name: the installed ones, and those registered in code."""

    def __init__(self, connectors: list[Connector] | None = None) -> None:
        self._connectors: dict[str, Connector] = {}
        for connector in connectors or []:
            self.register(connector)

    @classmethod
    def installed(cls) -> tuple[ConnectorRegistry, list[ExtensionError]]:
        """The connectors of the ``opsloom.connectors`` entry points, and the failures."""
        loaded, errors = discover(CONNECTORS, as_connector)
        registry = cls()
        for item in loaded:
            try:
                registry.register(item.obj)
            except ConfigurationError as exc:
                errors.append(
                    ExtensionError(CONNECTORS, item.name, item.value, item.distribution, str(exc))
                )
        return registry, errors

    def register(self, connector: Connector) -> None:
        """Add a connector.

        Raises:
            ConfigurationError: another connector has that name.
        """
        if connector.name in self._connectors:
            raise ConfigurationError(f"connector {connector.name!r} is registered twice")
        self._connectors[connector.name] = connector

    def get(self, name: str) -> Connector | None:
        """The connector of that name, if any."""
        return self._connectors.get(name)

    @property
    def names(self) -> list[str]:
        """Registered connector names, sorted."""
        return sorted(self._connectors)

    def __iter__(self) -> Any:
        return iter(self._connectors[name] for name in self.names)

    def __len__(self) -> int:
        return len(self._connectors)
