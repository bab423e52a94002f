"""Which webhook source answers which ``/hooks/…`` path, and the count of rejected requests.

The vendor sources are those of the ``opsloom.sources`` entry points (opsloom's own are
declared there too): adding a source is one class and one line in a package's metadata.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from opsloom.extension import SOURCES, ExtensionError, discover
from opsloom.triggers.sources.base import WebhookSource
from opsloom.triggers.sources.config import GENERIC_NAME, HookVariable, hook_variables
from opsloom.triggers.sources.generic import GenericSource

#: Names a source cannot take: ``/hooks/generic/<name>`` belongs to generic hooks, and the
#: settings file keeps these keys for all sources.
RESERVED = frozenset({"generic", "replay_window", "file"})


def as_source(name: str, obj: Any) -> WebhookSource:
    """The webhook source an entry point provides (a class is instantiated without arguments).

    Raises:
        TypeError: the object lacks ``name``, ``config``, ``verify`` or ``normalise``.
        ValueError: its name is not the entry point's name, or not a valid path segment.
    """
    source = obj() if isinstance(obj, type) else obj
    missing = [
        attr for attr in ("name", "config", "verify", "normalise") if not hasattr(source, attr)
    ]
    if missing:
        raise TypeError(
            f"a webhook source needs {', '.join(missing)} ({type(source).__name__} has not)"
        )
    if not (isinstance(source.config, type) and issubclass(source.config, BaseModel)):
        raise TypeError("a webhook source's 'config' must be a pydantic model class")
    try:
        source.config.model_validate({})
    except ValidationError as exc:
        # Nothing configured must mean "closed", never "cannot start".
        raise ValueError(
            f"its config {source.config.__name__} must be valid with no settings at all "
            f"(every field needs a default): {exc.errors()[0]['msg']}"
        ) from None
    if source.name != name:
        raise ValueError(f"the source is named {source.name!r}, not {name!r} like its entry point")
    if not GENERIC_NAME.match(name) or name in RESERVED:
        raise ValueError(
            f"source name {name!r} must be lower-case letters, digits, '-' or '_', "
            f"and none of {', '.join(sorted(RESERVED))}"
        )
    checked: WebhookSource = source
    return checked


@functools.cache
def _installed() -> tuple[tuple[tuple[str, WebhookSource], ...], tuple[ExtensionError, ...]]:
    loaded, errors = discover(SOURCES, as_source)
    return tuple((item.name, item.obj) for item in loaded), tuple(errors)


def installed_sources() -> tuple[dict[str, WebhookSource], list[ExtensionError]]:
    """The installed sources by name, and an error for each entry point that failed.

    Read once per process: entry points do not change while it runs.
    """
    sources, errors = _installed()
    return dict(sources), list(errors)


@dataclass(frozen=True, slots=True)
class SourceReference:
    """What the docs say of one webhook source, taken from the source itself.

    Attributes:
        name: the path segment, ``/hooks/<name>``.
        summary: the first line of the source class's docstring.
        settings: the pydantic model of its settings section.
        variables: its ``OPSLOOM_HOOKS_*`` variables, derived from ``settings``.
    """

    name: str
    summary: str
    settings: type[BaseModel]
    variables: list[HookVariable]


def source_reference(sources: Mapping[str, WebhookSource] | None = None) -> list[SourceReference]:
    """The reference of every source (default: the installed ones), sorted by name."""
    found = installed_sources()[0] if sources is None else sources
    references = []
    for name in sorted(found):
        source = found[name]
        doc = (type(source).__doc__ or "").strip().splitlines()
        references.append(
            SourceReference(
                name,
                doc[0] if doc else "",
                source.config,
                hook_variables({name: source.config}),
            )
        )
    return references


def builtin_sources() -> dict[str, WebhookSource]:
    """The vendor sources by name (``/hooks/<name>``): the installed ``opsloom.sources``."""
    return installed_sources()[0]


class SourceRegistry:
    """Resolves a hook path to its source."""

    def __init__(self, sources: Mapping[str, WebhookSource] | None = None) -> None:
        self._sources = dict(builtin_sources() if sources is None else sources)

    @property
    def names(self) -> list[str]:
        """The vendor source names, sorted."""
        return sorted(self._sources)

    @property
    def configs(self) -> dict[str, type[BaseModel]]:
        """Each source's settings model, by name (what :class:`HooksConfig` sections follow)."""
        return {name: source.config for name, source in self._sources.items()}

    def source(self, name: str) -> WebhookSource | None:
        """The source at ``/hooks/<name>`` (``None`` when there is none)."""
        return self._sources.get(name)

    def generic(self, hook: str) -> WebhookSource | None:
        """The source at ``/hooks/generic/<hook>`` (``None`` for a name that cannot be one)."""
        return GenericSource(hook) if GENERIC_NAME.match(hook) else None


class RejectionCounter:
    """Rejected webhook requests counted by (source, reason), for metrics.

    Only counts are kept: a rejected request's content is never stored.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, source: str, reason: str) -> None:
        """Count one rejection."""
        self._counts[(source, reason)] += 1

    def count(self, source: str, reason: str | None = None) -> int:
        """Rejections of a source, for one reason or all of them."""
        if reason is not None:
            return self._counts[(source, reason)]
        return sum(n for (src, _), n in self._counts.items() if src == source)

    def snapshot(self) -> dict[tuple[str, str], int]:
        """Every (source, reason) count so far."""
        return dict(self._counts)
