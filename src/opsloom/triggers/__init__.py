"""Triggers: event intake (CloudEvents), dedup, and matching events to waiting runs."""

from opsloom.triggers.cloudevent import (
    CloudEvent,
    EventReceipt,
    InvalidEventError,
    StoredEvent,
    parse_event,
)
from opsloom.triggers.matching import check_filters, first_match

__all__ = [
    "CloudEvent",
    "EventReceipt",
    "InvalidEventError",
    "StoredEvent",
    "check_filters",
    "first_match",
    "parse_event",
]
