"""Which webhook source answers which ``/hooks/…`` path, and the count of rejected requests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from opsloom.triggers.sources.alertmanager import AlertmanagerSource
from opsloom.triggers.sources.base import WebhookSource
from opsloom.triggers.sources.config import GENERIC_NAME
from opsloom.triggers.sources.datadog import DatadogSource
from opsloom.triggers.sources.generic import GenericSource
from opsloom.triggers.sources.github import GitHubSource
from opsloom.triggers.sources.grafana import GrafanaSource
from opsloom.triggers.sources.pagerduty import PagerDutySource
from opsloom.triggers.sources.sentry import SentrySource


def builtin_sources() -> dict[str, WebhookSource]:
    """The vendor sources by name (``/hooks/<name>``); generic hooks are looked up by name."""
    sources: list[WebhookSource] = [
        AlertmanagerSource(),
        GrafanaSource(),
        DatadogSource(),
        PagerDutySource(),
        SentrySource(),
        GitHubSource(),
    ]
    return {source.name: source for source in sources}


class SourceRegistry:
    """Resolves a hook path to its source."""

    def __init__(self, sources: Mapping[str, WebhookSource] | None = None) -> None:
        self._sources = dict(builtin_sources() if sources is None else sources)

    @property
    def names(self) -> list[str]:
        """The vendor source names, sorted."""
        return sorted(self._sources)

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
