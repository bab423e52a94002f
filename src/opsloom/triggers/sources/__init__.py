"""Webhook sources: verify and normalise each sender's webhooks into CloudEvents.

``/hooks/<source>`` for Alertmanager, Grafana, Datadog, PagerDuty, Sentry and GitHub, and
``/hooks/generic/<name>`` for any Standard Webhooks sender. Each source checks authenticity
the way its sender signs or authenticates, then turns the payload into CloudEvents (one per
alert for alert sources) that the App stores.
"""

from opsloom.triggers.sources.base import (
    Headers,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    WebhookSource,
)
from opsloom.triggers.sources.config import HooksConfig, load_hooks_config
from opsloom.triggers.sources.registry import RejectionCounter, SourceRegistry, builtin_sources

__all__ = [
    "Headers",
    "HooksConfig",
    "RejectionCounter",
    "SourceRegistry",
    "WebhookAuthError",
    "WebhookPayloadError",
    "WebhookRequest",
    "WebhookSource",
    "builtin_sources",
    "load_hooks_config",
]
