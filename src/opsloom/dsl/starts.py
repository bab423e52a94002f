"""A workflow document's ``schedule`` as a stored schedule and an event trigger.

``schedule.cron``, ``schedule.every`` and ``schedule.after`` become a schedule; ``schedule.on``
(``one``, ``any`` or ``all`` event filters, with ``correlate``) becomes a trigger. Both are
saved under the id ``doc:<namespace>/<name>`` and target the document version being saved.

Ops knobs under ``document.metadata.opsloom``:

- ``dedupKey``: the trigger's dedup key, a jq expression over the event (default
  ``.subject``, an alert's fingerprint); ``null`` for none;
- ``window``: seconds (or a DSL duration) of flap suppression after a key's run ended;
- ``debounce``: seconds (or a DSL duration) a key's events wait for a quiet moment before one
  run starts with the last of them; ``debounceMax`` caps that wait after the first event;
- ``rateLimit``: how many runs of the workflow start per second, for every process on the
  store: ``"10/minute"`` or ``{limit, period, burst, key, overflow}`` (``key``: jq over the
  run input; ``period``: seconds, a span such as ``5m`` or a DSL duration), saved on deploy;
- ``timezone``: the IANA zone ``schedule.cron`` is read in (default UTC; the DSL has none).

Filters of ``schedule.on`` are matched against the event with no workflow input to evaluate
expressions against, so their ``with`` values are taken literally: scalar attributes must be
equal, and a ``data`` object must be contained in the event data (recursively: an alert's
labels may hold more labels than the filter names).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from opsloom.errors import ConfigurationError, InputError
from opsloom.model.ratelimit import RateLimit
from opsloom.model.schedule import Schedule, schedule_record
from opsloom.model.trigger import (
    DEFAULT_KEY,
    Correlation,
    Trigger,
    correlate_from_json,
    default_follow,
)

if TYPE_CHECKING:
    from opsloom.dsl.document import Document
    from opsloom.store.base import Store

_ATTRIBUTE_OK = (str, int, bool)


def document_id(namespace: str, name: str) -> str:
    """The id of a document's schedule and trigger."""
    return f"doc:{namespace}/{name}"


def _options(data: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = (data.get("document") or {}).get("metadata") or {}
    options = metadata.get("opsloom") if isinstance(metadata, Mapping) else None
    return options if isinstance(options, Mapping) else {}


def _seconds(value: Any, what: str) -> float:
    from opsloom.dsl.builtin import duration_seconds
    from opsloom.expr.problem import TaskError

    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return duration_seconds(value)
    except TaskError as exc:
        raise InputError(f"{what}: {exc}") from None


def document_schedule(data: Mapping[str, Any]) -> Schedule | None:
    """The schedule of ``schedule.cron|every|after``, or None."""
    schedule = data.get("schedule")
    if not isinstance(schedule, Mapping):
        return None
    timezone = str(_options(data).get("timezone") or "UTC")
    if schedule.get("cron") is not None:
        return Schedule(cron=str(schedule["cron"]), timezone=timezone)
    if schedule.get("every") is not None:
        return Schedule(every=_seconds(schedule["every"], "schedule.every"), timezone=timezone)
    if schedule.get("after") is not None:
        return Schedule(after=_seconds(schedule["after"], "schedule.after"), timezone=timezone)
    return None


def document_trigger(
    data: Mapping[str, Any], workflow: str, version: str, trigger_id: str, priority: int = 0
) -> Trigger | None:
    """The trigger of ``schedule.on``, or None.

    Raises:
        InputError: a filter or option that cannot be turned into a trigger.
    """
    schedule = data.get("schedule")
    strategy = schedule.get("on") if isinstance(schedule, Mapping) else None
    if not isinstance(strategy, Mapping):
        return None
    if "one" in strategy:
        mode, raw = "one", [strategy["one"]]
    elif "all" in strategy:
        mode, raw = "all", list(strategy["all"] or [])
    elif "any" in strategy:
        mode, raw = "any", list(strategy["any"] or [])
    else:
        raise InputError("schedule.on needs one, any or all")
    filters: list[dict[str, Any]] = []
    correlate: list[list[Correlation]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InputError(f"schedule.on filter #{index} must be an object")
        filters.append(_filter(item.get("with") or {}, index))
        correlate.extend(correlate_from_json([item.get("correlate") or {}]))
    options = _options(data)
    key: str | None = DEFAULT_KEY
    if "dedupKey" in options:
        key = None if options["dedupKey"] is None else str(options["dedupKey"])
    window = 0.0
    if options.get("window") is not None:
        window = _seconds(options["window"], "document.metadata.opsloom.window")
    debounce = 0.0
    if options.get("debounce") is not None:
        debounce = _seconds(options["debounce"], "document.metadata.opsloom.debounce")
    debounce_max = None
    if options.get("debounceMax") is not None:
        debounce_max = _seconds(options["debounceMax"], "document.metadata.opsloom.debounceMax")
    return Trigger(
        id=trigger_id,
        workflow=workflow,
        version=version,
        mode=mode,  # type: ignore[arg-type]  # one of the three above
        filters=filters,
        correlate=correlate if mode == "all" else [],
        follow=default_follow(mode, filters),
        key=key,
        window=window,
        priority=priority,
        debounce=debounce,
        debounce_max=debounce_max,
    )


def document_rate_limit(data: Mapping[str, Any]) -> RateLimit | None:
    """The workflow's rate limit of ``document.metadata.opsloom.rateLimit``, or None.

    Raises:
        InputError: a limit that cannot be read (names where).
    """
    raw = _options(data).get("rateLimit")
    if raw is None:
        return None
    where = "document.metadata.opsloom.rateLimit"
    if isinstance(raw, Mapping) and raw.get("period") is not None:
        period = raw["period"]
        if not isinstance(period, int | float | str) or (
            isinstance(period, str) and (period.upper().startswith("P"))
        ):
            raw = {**raw, "period": _seconds(period, f"{where}.period")}
    return RateLimit.parse(raw, where)


def _filter(attributes: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A DSL event filter's ``with`` as an engine filter (literals + a ``where`` predicate)."""
    flt: dict[str, Any] = {}
    predicates: list[str] = []
    for name, expected in attributes.items():
        if isinstance(expected, str) and expected.strip().startswith("${"):
            what = "a literal event type" if name == "type" else "literal values"
            raise InputError(
                f"schedule.on filter #{index} needs {what}: there is no input to evaluate "
                f"{name!r} against before the run starts"
            )
        if name == "data" and isinstance(expected, Mapping):
            predicates.extend(_subset(".data", expected))
        elif isinstance(expected, _ATTRIBUTE_OK) and str(name).isalnum():
            flt[str(name).lower()] = expected
        else:
            predicates.append(f"(.[{json.dumps(name)}] == {json.dumps(expected)})")
    if not isinstance(flt.get("type"), str):
        raise InputError(f"schedule.on filter #{index} needs a literal event type")
    if predicates:
        flt["where"] = " and ".join(predicates)
    return flt


def _subset(path: str, expected: Mapping[str, Any]) -> list[str]:
    """jq predicates that hold when the object at ``path`` contains ``expected``, recursively:
    the event's labels may hold more than a document names."""
    if not expected:
        return [f'(({path} | type) == "object")']
    out: list[str] = []
    for member, value in expected.items():
        inner = f"{path}[{json.dumps(member)}]"
        if isinstance(value, Mapping):
            out.extend(_subset(inner, value))
        else:
            out.append(f"({inner} == {json.dumps(value)})")
    return out


@dataclass(frozen=True, slots=True)
class DocumentStarts:
    """How a document version starts by itself: its schedule and its trigger (either may be
    None), ready to save."""

    namespace: str
    name: str
    version: str
    schedule: Schedule | None
    trigger: Trigger | None
    rate_limit: RateLimit | None = None

    @classmethod
    def of(
        cls,
        document: Document,
        namespace: str,
        version: str,
        priority: int,
        timeout: float | None,
    ) -> DocumentStarts:
        """Read a document's ``schedule``.

        Raises:
            InputError: a schedule or filter that cannot be used (names what).
        """
        try:
            schedule = document_schedule(document.data)
        except ConfigurationError as exc:
            raise InputError(f"schedule: {exc}") from None
        ident = document_id(namespace, document.name)
        workflow = f"{namespace}/{document.name}"
        trigger = document_trigger(document.data, workflow, version, ident, priority)
        if trigger is not None and timeout is not None:
            trigger = replace(trigger, timeout=timeout)
        limit = document_rate_limit(document.data)
        return cls(namespace, document.name, version, schedule, trigger, limit)

    async def save(self, store: Store, now: float) -> bool:
        """Save both, unless a newer version of the document is deployed; whether saved."""
        latest = await store.get_document(self.namespace, self.name)
        if latest is not None and latest.version != self.version:
            return False
        ident = document_id(self.namespace, self.name)
        workflow = f"{self.namespace}/{self.name}"
        if self.schedule is not None:
            record = schedule_record(ident, workflow, self.version, self.schedule, now)
            await store.save_schedule(record, now)
        else:
            old = await store.get_schedule(ident)
            if old is not None and not old.paused:
                await store.pause_schedule(ident, True, old.next_at, now)
        if self.rate_limit is not None:
            await store.declare_rate_limit(workflow, self.rate_limit)
        if self.trigger is not None:
            await store.save_trigger(self.trigger, now)
        elif await store.get_trigger(ident) is not None:
            await store.delete_trigger(ident)
        return True
