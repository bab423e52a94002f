"""Matching events to subscriptions: pure functions, no I/O.

A *filter* is a JSON object of CloudEvents context attributes with literal values (``type``,
``source``, ``subject``, any extension name) plus an optional ``where``: a jq expression run
against the event's structured JSON form that must produce ``true``. ``type`` is required: the
store finds a subscription's filters by event type, so an event is only compared with the
filters written for its type.

Literal values are compared as the CloudEvents canonical strings (``true``/``false`` for
booleans, decimal digits for integers): an extension that arrived as the HTTP header
``ce-priority: 1`` matches the filter ``{"priority": 1}``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jq

from opsloom.errors import InputError

log = logging.getLogger("opsloom.triggers")

WHERE = "where"
_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_MAX_FILTERS = 100


@functools.lru_cache(maxsize=1024)
def jq_program(expression: str) -> Any:
    """A compiled jq program (``ValueError`` if it is not jq); compiling costs far more than
    running, so each is kept."""
    return jq.compile(expression)


_program = jq_program

#: ``.``, ``.name``, ``.a.b.c``: paths Python can follow without jq's JSON round trip, which
#: costs tens of microseconds per call (the value is written as JSON text and parsed twice).
_SIMPLE_PATH = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


@functools.lru_cache(maxsize=1024)
def _simple_path(expression: str) -> tuple[str, ...] | None:
    text = expression.strip()
    if not _SIMPLE_PATH.match(text):
        return None
    return tuple(name for name in text[1:].split(".") if name)


def _holds_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_holds_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_float(item) for item in value)
    return False


def first_output(expression: str, value: Any) -> Any:
    """The first output of the jq ``expression`` over the JSON ``value`` (``None`` for none).

    A plain path (``.subject``, ``.data.labels.service``) is followed in Python, with jq's
    meaning (a missing member or a member of ``null`` is ``null``); what jq would refuse (a
    member of a string or an array), a value holding a float, and every other expression go
    to jq itself.

    Raises:
        ValueError: the expression is not jq, or jq fails on ``value``.
    """
    program = _program(expression)
    path = _simple_path(expression)
    if path is not None:
        found = value
        for name in path:
            if found is None:
                return None
            if not isinstance(found, Mapping):
                break  # jq's own error says what cannot be indexed
            found = found.get(name)
        else:
            # jq writes numbers its own way (1.0 comes back as 1): those go through jq.
            if not _holds_float(found):
                return found
    outputs = program.input_value(value).all()
    return outputs[0] if outputs else None


def check_filters(filters: Any) -> list[dict[str, Any]]:
    """Validate a list of filters and return it as plain JSON objects.

    Raises:
        InputError: naming the filter (by index) and the member that is wrong.
    """
    if not isinstance(filters, list | tuple) or not filters:
        raise InputError("a subscription needs a non-empty list of filters")
    if len(filters) > _MAX_FILTERS:
        raise InputError(f"a subscription holds at most {_MAX_FILTERS} filters")
    return [_check_filter(index, flt) for index, flt in enumerate(filters)]


def _check_filter(index: int, flt: Any) -> dict[str, Any]:
    where = f"filter #{index}"
    if not isinstance(flt, Mapping):
        raise InputError(f"{where} must be an object of attribute values")
    out: dict[str, Any] = {}
    for name, value in flt.items():
        if name == WHERE:
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{where}: 'where' must be a jq expression (a string)")
            try:
                _program(value)
            except ValueError as exc:
                raise InputError(f"{where}: 'where' is not a valid jq expression: {exc}") from None
        elif name in ("data", "data_base64"):
            raise InputError(f"{where}: match the event data with a 'where' jq expression")
        elif not isinstance(name, str) or not _NAME.match(name):
            raise InputError(
                f"{where}: {name!r} is not a CloudEvents attribute name "
                "(1 to 20 lower-case ASCII letters or digits)"
            )
        elif not isinstance(value, str | int | bool):
            raise InputError(
                f"{where}: the value of {name!r} must be a literal string, integer or boolean"
            )
        out[name] = value
    if not isinstance(out.get("type"), str) or not out["type"]:
        raise InputError(f"{where}: 'type' (the event type, a string) is required")
    return out


def canonical(value: Any) -> str | None:
    """The canonical string form of an attribute value (``None`` for an absent one)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches(flt: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether one filter matches an event given in its structured JSON form."""
    for name, expected in flt.items():
        if name == WHERE:
            continue
        if canonical(event.get(name)) != canonical(expected):
            return False
    expression = flt.get(WHERE)
    if expression is None:
        return True
    try:
        outputs = _program(expression).input_value(dict(event)).all()
    except ValueError as exc:
        # A filter that cannot be evaluated on this event does not match it; the run keeps
        # waiting for one it can evaluate.
        log.warning(
            "jq filter failed on an event: %s",
            exc,
            extra={
                "event": "filter_error",
                "where": expression,
                "event_id": event.get("id"),
                "source": event.get("source"),
            },
        )
        return False
    return bool(outputs) and outputs[0] is True


def first_match(filters: Sequence[Mapping[str, Any]], event: Mapping[str, Any]) -> int | None:
    """The index of the first filter that matches ``event``, or ``None``."""
    for index, flt in enumerate(filters):
        if matches(flt, event):
            return index
    return None


def deliveries(
    candidates: Sequence[tuple[str, str, int, Mapping[str, Any]]], event: Mapping[str, Any]
) -> list[tuple[str, str, int]]:
    """Which subscriptions receive ``event``, and through which of their filters.

    Args:
        candidates: ``(subscription_id, run_id, position, filter)`` rows for the event's type,
            in any order; ``position`` is the filter's index in its subscription.
        event: the event in its structured JSON form.

    Returns:
        ``(subscription_id, run_id, position)`` of the first matching filter of each
        subscription that matches, ordered by subscription id.
    """
    chosen: dict[str, tuple[str, int]] = {}
    for sub_id, run_id, position, flt in sorted(candidates, key=lambda row: (row[0], row[2])):
        if sub_id in chosen:
            continue
        if matches(flt, event):
            chosen[sub_id] = (run_id, position)
    return [(sub_id, run_id, position) for sub_id, (run_id, position) in chosen.items()]


#: Signals that carry events to a run are named after the subscription: ``events:<id>``.
SIGNAL_PREFIX = "events:"


def signal_name(subscription_id: str) -> str:
    """The signal name under which a subscription's events reach its run."""
    return SIGNAL_PREFIX + subscription_id
