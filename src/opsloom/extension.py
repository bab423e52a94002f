"""Extension points: what installed packages add to opsloom through entry points.

A package plugs in by declaring entry points in its ``pyproject.toml``; opsloom's own built-ins
are declared the same way, so a team's package is never second class::

    [project.entry-points."opsloom.functions"]
    shout = "my_ops.functions:shout"        # a CatalogFunction, or install(catalog, setup)

    [project.entry-points."opsloom.sources"]
    acme = "my_ops.hooks:AcmeSource"        # a webhook source (class or instance)

    [project.entry-points."opsloom.connectors"]
    acme = "my_ops.connector:connector"     # a Connector (opsloom.connectors.sdk)

Loading one entry point is isolated from the others: a package that fails to import, or whose
object has the wrong shape, gives an :class:`ExtensionError` that names the entry point and
its distribution, and everything else still loads. ``opsloom up`` reports such errors and
serves on. Each group's registry sits with what it registers (the catalog in ``dsl.catalog``,
webhook sources in ``triggers.sources``, connectors in ``connectors.registry``); this module
only loads entry points.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

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
