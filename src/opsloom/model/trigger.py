"""Triggers: which stored events start runs of which workflow, and which go to open runs.

A trigger names a target workflow (and version), a mode and event filters (the same filter
objects as subscriptions, see :mod:`opsloom.model.matching`):

- ``one``: one filter; every matching event may start a run;
- ``any``: several filters; an event matching any of them may start a run;
- ``all``: several filters; a run starts once every filter has an event, the events being
  grouped by their **correlation** (the DSL's ``correlate``: named keys, each ``from`` a jq
  expression over the event, with an optional ``expect``ed value).

Alert lifecycle. Each event gets a **dedup key** (a jq expression over the event, default
``.subject``: an alert's fingerprint). While a run that the trigger started for key K is open,
further events with key K start nothing: they are handed to that run's **inbox** (signal
``events:inbox``), where a ``listen``, ``ctx.wait_for_event`` or ``ctx.wait_for("events:inbox")``
finds them. A key that is ``null`` (or an expression that produces nothing) means no dedup:
every event starts its own run. In ``all`` mode the key is the correlation of the event when
the trigger correlates, else the dedup expression.

**Follow** filters name events that only ever reach an open run of their key and never start
one; by default a trigger of firing alerts follows the resolved alerts with the same literal
attributes, so the resolution reaches the run its firing began (not in ``all`` mode).

The inbox and subscriptions. An event a subscription of the run already received in the same
transaction is not put in the inbox too. When the run subscribes (a ``listen``, a
``wait_for_event``), its unconsumed inbox events that match the new subscription move to it,
oldest first, ahead of live deliveries; when it unsubscribes, the moved ones it did not take go
back to the inbox (their delivery payload carries ``inbox``: the trigger filter index). So
nothing is lost between the start of a run and its first wait.

Window (flap suppression): an event whose key had a run that ended less than ``window``
seconds ago is stored but starts nothing. The default 0 starts a new run at once.

Debounce: with ``debounce`` seconds, an event of a key that has no open run does not start one
at once: the key waits until no event of it came for ``debounce`` seconds (at most
``debounce_max`` seconds after its first event, when given), then one run starts with the last
event (its input as if that event alone had come). The pending event is kept in the store, so a
restart loses nothing; the scheduler starts the run when it is due. An alert storm of one
fingerprint becomes one run. Not in ``all`` mode (its events already wait for each other).

Rate limit: ``rate_limit`` (a :class:`~opsloom.model.ratelimit.RateLimit`, its key a jq
expression over the event) limits the runs this trigger starts, on top of the workflow's own
limit: past it they queue, or with ``overflow: drop`` the event is stored and starts nothing.

Run ids are derived from the trigger, the key and the event's source and id, and a run is
opened for a key by a guarded insert (one open run per trigger and key, enforced by a unique
index), so two processes taking in events of one key at once start one run.

Run input: the event in its structured JSON form (``one``/``any``), or ``{"events": [...]}``
in filter order (``all``); an ``input`` jq expression, when given, is applied to that value.

Everything here is pure: the store runs the intake inside the transaction that stores the event
(``store/dialects/*_triggers.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opsloom.codec import encode
from opsloom.errors import InputError, OpsloomError, SerializationError
from opsloom.model.matching import WHERE, _program, check_filters, first_output, matches
from opsloom.model.ratelimit import RateLimit
from opsloom.model.run import NewRun

log = logging.getLogger("opsloom.triggers")

Mode = Literal["one", "any", "all"]
MODES: tuple[Mode, ...] = ("one", "any", "all")
#: The dedup key of an alert: its fingerprint, which webhook sources put in ``subject``.
DEFAULT_KEY = ".subject"
#: Events handed to a run that its trigger started arrive under this signal name.
INBOX = "events:inbox"
#: The alert events webhook sources store (``opsloom.triggers.sources``).
FIRING_ALERT = "io.opsloom.alert.firing.v1"
RESOLVED_ALERT = "io.opsloom.alert.resolved.v1"


class TriggerNotFoundError(OpsloomError):
    """No trigger has this id."""

    code = "trigger_not_found"


@dataclass(frozen=True, slots=True)
class Correlation:
    """One named correlation key of a filter: where its value comes from and what it must be."""

    name: str
    source: str  # jq over the event
    expect: Any = None


@dataclass(frozen=True, slots=True)
class Trigger:
    """A rule that starts runs of a workflow from events (see the module docstring).

    Attributes:
        id: ``code:<workflow>`` for code-first triggers, ``doc:<ns>/<name>`` for documents.
        workflow: the target workflow name; ``version`` its version (resolved when saved).
        mode: ``one``, ``any`` or ``all``.
        filters: checked filter objects, each with a ``type``.
        correlate: per filter, its correlation keys (``all`` mode; empty lists otherwise).
        follow: filters of events that only reach an open run of their key (the inbox payload
            names them ``len(filters) + i``) and never start one: an alert's resolution.
        key: the dedup key jq expression, ``None`` for no dedup.
        window: seconds after a run of a key ended during which its events start nothing.
        input: a jq expression that builds the run input from the default one.
        priority, concurrency_key, concurrency_limit, timeout: of the runs it starts.
        concurrency_by: a jq expression over the run input whose value narrows
            ``concurrency_key`` per run (``.service``: the limit holds per service).
        debounce: seconds a key's events wait for a quieter moment before one run starts,
            with the last; ``debounce_max`` caps the wait after the key's first event.
        rate_limit: a limit on the runs this trigger starts (its key over the event).
    """

    id: str
    workflow: str
    version: str
    mode: Mode = "one"
    filters: list[dict[str, Any]] = field(default_factory=list)
    correlate: list[list[Correlation]] = field(default_factory=list)
    follow: list[dict[str, Any]] = field(default_factory=list)
    key: str | None = DEFAULT_KEY
    window: float = 0.0
    input: str | None = None
    priority: int = 0
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    timeout: float | None = None
    concurrency_by: str | None = None
    debounce: float = 0.0
    debounce_max: float | None = None
    rate_limit: RateLimit | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"trigger {self.id}: mode must be one, any or all, not {self.mode!r}")
        if not self.id or len(self.id) > 150:
            raise InputError("a trigger id must be 1 to 150 characters")
        filters = check_filters(self.filters)
        object.__setattr__(self, "filters", filters)
        if self.mode == "one" and len(filters) != 1:
            raise InputError(f"trigger {self.id}: mode 'one' takes exactly one filter")
        if self.follow:
            object.__setattr__(self, "follow", check_filters(self.follow))
        correlate = list(self.correlate) or [[] for _ in filters]
        if len(correlate) != len(filters):
            raise InputError(f"trigger {self.id}: one correlate entry per filter")
        object.__setattr__(self, "correlate", correlate)
        if self.concurrency_by is not None and self.concurrency_key is None:
            raise InputError(f"trigger {self.id}: concurrency_by needs a concurrency key")
        expressions = [self.key, self.input, self.concurrency_by]
        for expression in expressions + [c.source for cs in correlate for c in cs]:
            if expression is not None:
                _compile(self.id, expression)
        if not self.window >= 0:
            raise InputError(f"trigger {self.id}: window must be 0 or more seconds")
        if not 0 <= self.debounce < float("inf"):
            raise InputError(f"trigger {self.id}: debounce must be 0 or more seconds")
        if self.debounce_max is not None and not self.debounce <= self.debounce_max < float("inf"):
            raise InputError(
                f"trigger {self.id}: debounce_max must be at least the debounce "
                f"({self.debounce:g} s), not {self.debounce_max!r}"
            )
        if self.debounce_max is not None and not self.debounce:
            raise InputError(f"trigger {self.id}: debounce_max needs a debounce")
        if self.debounce and self.mode == "all":
            raise InputError(
                f"trigger {self.id}: debounce is for modes one and any (in 'all' mode the "
                "events already wait for each other)"
            )

    @property
    def correlates(self) -> bool:
        return self.mode == "all" and any(self.correlate)

    def definition(self) -> dict[str, Any]:
        """What defines the trigger (stored, and compared to notice a change)."""
        return {
            "workflow": self.workflow,
            "version": self.version,
            "mode": self.mode,
            "filters": self.filters,
            "correlate": correlate_json(self.correlate),
            "follow": self.follow,
            "key": self.key,
            "window": self.window,
            "input": self.input,
            "priority": self.priority,
            "concurrency_key": self.concurrency_key,
            "concurrency_limit": self.concurrency_limit,
            "concurrency_by": self.concurrency_by,
            "timeout": self.timeout,
            "debounce": self.debounce,
            "debounce_max": self.debounce_max,
            "rate_limit": None if self.rate_limit is None else self.rate_limit.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shown by ``opsloom triggers list --json``."""
        return {"id": self.id, **self.definition()}

    # --- intake decisions (pure) ----------------------------------------------------------

    def follows(self, position: int) -> bool:
        """Whether the filter at ``position`` is a ``follow`` filter."""
        return position >= len(self.filters)

    def correlation_of(self, position: int, event: Mapping[str, Any]) -> str | None:
        """The correlation key (JSON text) of an event for filter ``position``.

        ``None`` when an ``expect``ed value differs or an expression fails: the event then
        does not count for this trigger.
        """
        values: dict[str, Any] = {}
        for rule in self.correlate[position] if position < len(self.correlate) else []:
            found = _first(rule.source, event)
            if isinstance(found, _Failed):
                return None
            if rule.expect is not None:
                if found != rule.expect:
                    return None
                continue
            values[rule.name] = found
        return json.dumps(values, sort_keys=True, separators=(",", ":"))

    def key_of(self, position: int, event: Mapping[str, Any]) -> str | _Failed | None:
        """The dedup key of an event (text), ``None`` for no dedup, or a ``_Failed`` (with a
        reason when the key expression failed)."""
        if self.correlates and not self.follows(position):
            correlation = self.correlation_of(position, event)
            return _FAILED if correlation is None else correlation
        if self.key is None:
            return None
        found = _first(self.key, event)
        if isinstance(found, _Failed):
            return _Failed(f"dedup key {found.reason}")
        if found is None:
            return None
        return key_text(found)

    def run_input(self, value: Any) -> tuple[bytes, str | None] | _Failed:
        """The encoded input of a run started with default input ``value`` and the run's
        concurrency key, or why not (a ``_Failed`` with the reason)."""
        if self.input is not None:
            value = _first(self.input, value)
            if isinstance(value, _Failed):
                return _Failed(f"input {value.reason}")
        key = self.concurrency_key
        if self.concurrency_by is not None:
            part = _first(self.concurrency_by, value)
            if isinstance(part, _Failed) or part is None:
                log.warning(
                    "trigger %s: concurrency_by %r gave no key for the run input",
                    self.id,
                    self.concurrency_by,
                    extra={"event": "trigger_expression_error", "trigger": self.id},
                )
                why = part.reason if isinstance(part, _Failed) else "gave no value"
                return _Failed(f"input concurrency_by {self.concurrency_by}: {why}")
            key = f"{key}:{key_text(part)}"
        try:
            return encode(value, what=f"the input built by trigger {self.id}"), key
        except SerializationError as exc:
            return _Failed(f"input {exc}")

    def run_id(self, key: str | None, source: str, event_id: str) -> str:
        """The run started by one event: the same for every retry of its intake."""
        digest = hashlib.sha256(
            "\0".join((self.id, key or "", source, event_id)).encode()
        ).hexdigest()[:24]
        return f"{self.id}#{digest}"

    def new_run(
        self,
        run_id: str,
        blob: bytes,
        now: float,
        traceparent: str | None = None,
        concurrency_key: str | None = None,
    ) -> NewRun:
        """The run to create (its job is queued with it), continuing the event's trace;
        ``concurrency_key`` as :meth:`run_input` made it."""
        return NewRun(
            id=run_id,
            workflow=self.workflow,
            version=self.version,
            input=blob,
            priority=self.priority,
            concurrency_key=concurrency_key,
            concurrency_limit=self.concurrency_limit,
            deadline=None if self.timeout is None else now + self.timeout,
            traceparent=traceparent,
            started_by=f"trigger:{self.id}",
        )


def lifecycle_follow(filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The default ``follow`` filters: an alert's resolution reaches the run its firing began.

    For each filter of firing alerts (without a filter of resolved ones), the resolved alerts
    with the same literal attributes.
    """
    if any(flt.get("type") == RESOLVED_ALERT for flt in filters):
        return []
    return [
        {
            **{n: v for n, v in flt.items() if n not in ("type", WHERE)},
            "type": RESOLVED_ALERT,
        }
        for flt in filters
        if flt.get("type") == FIRING_ALERT
    ]


def default_follow(mode: str, filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``follow`` filters a trigger gets unless told otherwise (alert lifecycle, not ``all``)."""
    return [] if mode == "all" else lifecycle_follow(filters)


class _Failed:
    """Marks an expression that could not be evaluated on an event (``reason``: why, when the
    event should be kept as a dead letter)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str = "") -> None:
        self.reason = reason


_FAILED = _Failed()


def key_text(value: Any) -> str:
    """A key as text: a string as it is, anything else as sorted JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def jq_key(expression: str, value: Any) -> str:
    """The first value of a jq expression over ``value``, as key text.

    Raises:
        ValueError: the expression is not jq, fails on ``value``, or gives no value (or null).
    """
    found = first_output(expression, value)
    if found is None:
        raise ValueError(f"{expression!r} gives no value for this input")
    return key_text(found)


def _compile(trigger_id: str, expression: str) -> None:
    try:
        _program(expression)
    except ValueError as exc:
        raise InputError(
            f"trigger {trigger_id}: {expression!r} is not a valid jq expression: {exc}"
        ) from None


def _first(expression: str, value: Any) -> Any:
    """The first output of a jq expression (``None`` when it produces none), or a ``_Failed``
    saying why it could not be evaluated."""
    try:
        return first_output(expression, value)
    except ValueError as exc:
        log.warning(
            "trigger expression failed on an event: %s",
            exc,
            extra={"event": "trigger_expression_error", "expression": expression},
        )
        return _Failed(f"{expression}: {exc}")


def choose(
    candidates: Sequence[tuple[str, int, Mapping[str, Any]]], event: Mapping[str, Any]
) -> list[tuple[str, int]]:
    """``(trigger_id, position)`` of the first filter of each trigger that matches ``event``.

    Args:
        candidates: ``(trigger_id, position, filter)`` rows for the event's type.
        event: the event in its structured JSON form.
    """
    chosen: dict[str, int] = {}
    for trigger_id, position, flt in sorted(candidates, key=lambda row: (row[0], row[1])):
        if trigger_id not in chosen and matches(flt, event):
            chosen[trigger_id] = position
    return sorted(chosen.items())


def correlate_json(correlate: Sequence[Sequence[Correlation]]) -> list[dict[str, Any]]:
    """Correlation rules as stored: one ``{name: {"from": …, "expect": …}}`` per filter."""
    return [
        {
            c.name: {"from": c.source, **({} if c.expect is None else {"expect": c.expect})}
            for c in rules
        }
        for rules in correlate
    ]


def correlate_from_json(raw: Any) -> list[list[Correlation]]:
    """Correlation rules from their stored (or DSL) form."""
    out: list[list[Correlation]] = []
    for rules in raw or []:
        if not isinstance(rules, Mapping):
            raise InputError("correlate must be an object of named keys")
        entry: list[Correlation] = []
        for name, rule in rules.items():
            if not isinstance(rule, Mapping) or not isinstance(rule.get("from"), str):
                raise InputError(f"correlate key {name!r} needs 'from', a jq expression")
            entry.append(Correlation(str(name), _bare(rule["from"]), rule.get("expect")))
        out.append(entry)
    return out


def _bare(expression: str) -> str:
    """A jq expression without the DSL's ``${ … }`` wrapping."""
    text = expression.strip()
    return text[2:-1].strip() if text.startswith("${") and text.endswith("}") else text
