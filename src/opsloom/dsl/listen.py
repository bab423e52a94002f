"""``listen``: wait durably for events (one, any, all), with correlation, ``until`` and ``foreach``.

A listen subscribes the run to event filters built from the task: literal attributes stay
literal, anything else (``data``, expressions, correlation keys) becomes a ``where`` jq
predicate that the event intake checks before delivery. Matching events then arrive as signals
and are taken one by one with ``wait_for``, so the run holds no worker slot while it waits and a
crash loses no event.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opsloom.dsl.scope import timeout_error
from opsloom.dsl.task import TaskCall
from opsloom.errors import InputError, WaitTimeoutError
from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter

_ATTRIBUTE_OK = (str, int, bool)


async def run_listen(call: TaskCall) -> Any:
    """Consume events as ``listen.to`` says; the list of consumed events (or foreach outputs)."""
    interp, task, pointer, value = call.interp, call.task, call.pointer, call.value
    state, scope = call.state, call.scope
    spec = task["listen"]
    to = spec.get("to") or {}
    names = call.names()
    mode, raw_filters = _mode(to)
    filters, correlations = [], []
    for raw in raw_filters:
        flt, correlate = await _translate(interp, raw, value, names, pointer)
        filters.append(flt)
        correlations.append(correlate)
    ctx = state.ctx
    try:
        subscription = await ctx.subscribe(filters)
    except InputError as exc:
        raise TaskError.standard("configuration", str(exc), instance=pointer) from None
    read = spec.get("read") or "data"
    consumed: list[dict[str, Any]] = []
    pending = set(range(len(filters)))
    keys: dict[str, Any] = {}
    until = to.get("until") if mode == "any" else None
    while True:
        timeout = None
        if scope.deadline is not None:
            timeout = max(0.0, scope.deadline - ctx.now().timestamp())
        try:
            delivery = await ctx.wait_for(f"events:{subscription}", timeout)
        except WaitTimeoutError:
            await ctx.unsubscribe(subscription)
            raise timeout_error(scope) from None
        event = delivery["event"]
        index = int(delivery.get("filter", 0))
        if not await _correlated(interp, correlations[index], event, keys, names):
            continue
        consumed.append(event)
        pending.discard(index)
        if mode == "one" or (mode == "all" and not pending):
            break
        if mode == "any":
            if until is None:
                break
            if isinstance(until, str | bool):
                shaped = [_shape(e, read) for e in consumed]
                if await interp.evaluator.condition(until, shaped, names):
                    break
            else:
                raise TaskError.standard(
                    "configuration",
                    "listen.until must be a runtime expression here",
                    instance=pointer,
                )
    await ctx.unsubscribe(subscription)
    events = [_shape(e, read) for e in consumed]
    foreach = task.get("foreach")
    if not foreach:
        return events
    item = foreach.get("item") or "item"
    at = foreach.get("at") or "index"
    outputs = []
    for i, shaped in enumerate(events):
        inner = scope.with_names(**{item: shaped, at: i})
        out = shaped
        if foreach.get("do"):
            out = await interp.run_list(
                foreach["do"], f"{pointer}/foreach/do", shaped, state, inner
            )
        outputs.append(out)
    return outputs


def _mode(to: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    if "one" in to:
        return "one", [to["one"]]
    if "all" in to:
        return "all", list(to["all"] or [])
    if "any" in to:
        filters = list(to["any"] or [])
        if not filters:
            raise TaskError.standard(
                "configuration",
                "listen.to.any needs at least one event filter with a type on this runtime",
            )
        return "any", filters
    raise TaskError.standard("validation", "listen.to needs one, any or all")


async def _translate(
    interp: Interpreter, raw: dict[str, Any], value: Any, names: dict[str, Any], pointer: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A DSL event filter as an engine filter (literals + ``where``) and its correlation keys."""
    attributes = await interp.render(raw.get("with") or {}, value, names)
    flt: dict[str, Any] = {}
    predicates: list[str] = []
    for name, expected in attributes.items():
        if name != "data" and isinstance(expected, _ATTRIBUTE_OK) and name.isalnum():
            flt[name.lower()] = expected
        elif name == "data" and isinstance(expected, dict):
            # Every given data member must be equal in the event (a subset match).
            for key, member in expected.items():
                predicates.append(f"(.data[{json.dumps(key)}] == {json.dumps(member)})")
        else:
            predicates.append(f"(.[{json.dumps(name)}] == {json.dumps(expected)})")
    if "type" not in flt:
        raise TaskError.standard(
            "configuration", "a listen filter needs a literal event type", instance=pointer
        )
    correlate: dict[str, Any] = {}
    for key, rule in (raw.get("correlate") or {}).items():
        source = str(rule["from"])
        if rule.get("expect") is not None:
            expect = rule["expect"]
            if isinstance(expect, str):
                expect = await interp.evaluator.evaluate(expect, value, names)
            body = source[2:-1].strip() if source.strip().startswith("${") else source
            predicates.append(f"(({body}) == {json.dumps(expect)})")
        else:
            correlate[key] = source
    if predicates:
        flt["where"] = " and ".join(predicates)
    return flt, correlate


async def _correlated(
    interp: Interpreter,
    correlate: dict[str, Any],
    event: dict[str, Any],
    keys: dict[str, Any],
    names: dict[str, Any],
) -> bool:
    """Keys without ``expect`` take the value of the first event; later ones must agree."""
    for key, source in correlate.items():
        found = await interp.evaluator.evaluate(source, event, names)
        if key not in keys:
            keys[key] = found
        elif keys[key] != found:
            return False
    return True


def _shape(event: dict[str, Any], read: str) -> Any:
    if read == "data":
        return event.get("data")
    return event
