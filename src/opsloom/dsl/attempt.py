"""``try``: catch filters, ``when``/``exceptWhen``, and retry policies with durable delays."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from opsloom.dsl.duration import seconds_of
from opsloom.dsl.scope import RunState, sleep_within
from opsloom.dsl.task import TaskCall
from opsloom.expr.problem import TaskError, type_matches

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter


def error_matches(filter_with: dict[str, Any] | None, error: dict[str, Any]) -> bool:
    """Whether an error object passes ``catch.errors.with`` (every given field agrees)."""
    for key, expected in (filter_with or {}).items():
        actual = error.get(key)
        if key == "type":
            if actual is None or not type_matches(str(expected), str(actual)):
                return False
        elif key == "status":
            if actual is None or int(expected) != int(actual):
                return False
        elif expected != actual:
            return False
    return True


async def run_try(call: TaskCall) -> Any:
    """Run ``try`` tasks; on a caught error retry (durably) or run ``catch.do``."""
    interp, task, pointer, value = call.interp, call.task, call.pointer, call.value
    state, scope = call.state, call.scope
    catch = task.get("catch") or {}
    var = catch.get("as") or "error"
    retry = catch.get("retry")
    if isinstance(retry, str):
        retry = interp.component("retries", retry)
    attempt = 1
    first_at: float | None = None
    while True:
        try:
            return await interp.run_list(task["try"], f"{pointer}/try", value, state, scope)
        except TaskError as error:
            caught = error.to_dict()
            if not error_matches((catch.get("errors") or {}).get("with"), caught):
                raise
            if not await _applies(interp, catch, caught, call.names(**{var: caught})):
                raise
            if retry:
                if first_at is None and _limit(retry, "duration") is not None:
                    first_at = state.ctx.now().timestamp()
                delay = await _retry_delay(call, retry, attempt, caught)
                if delay is not None and _within(retry, first_at, delay, state):
                    await sleep_within(state, scope, delay)
                    attempt += 1
                    continue
                raise
            handler = catch.get("do")
            if not handler:
                return value
            inner = scope.with_names(**{var: caught})
            return await interp.run_list(handler, f"{pointer}/catch/do", value, state, inner)


async def _applies(
    interp: Interpreter, spec: dict[str, Any], error: dict[str, Any], names: dict[str, Any]
) -> bool:
    """Whether ``spec.when`` holds and ``spec.exceptWhen`` does not, for the caught error."""
    when = spec.get("when")
    if when is not None and not await interp.evaluator.condition(when, error, names):
        return False
    except_when = spec.get("exceptWhen")
    return except_when is None or not await interp.evaluator.condition(except_when, error, names)


def _limit(retry: dict[str, Any], what: str) -> Any:
    limit = retry.get("limit") or {}
    if what == "count":
        return (limit.get("attempt") or {}).get("count")
    return limit.get("duration")


def _within(retry: dict[str, Any], first_at: float | None, delay: float, state: RunState) -> bool:
    total = _limit(retry, "duration")
    if total is None or first_at is None:
        return True
    return state.ctx.now().timestamp() + delay - first_at <= seconds_of(total)


async def _retry_delay(
    call: TaskCall, retry: dict[str, Any], attempt: int, error: dict[str, Any]
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when no retry is left."""
    count = _limit(retry, "count")
    # ``count`` is the number of attempts, the first one included.
    if count is not None and attempt >= int(count):
        return None
    interp, state = call.interp, call.state
    names = call.names(error=error)
    if not await _applies(interp, retry, error, names):
        return None
    raw_delay = retry.get("delay") or 0
    if isinstance(raw_delay, str) and raw_delay.strip().startswith("${"):
        raw_delay = await interp.evaluator.evaluate(raw_delay, call.value, names)
    base = seconds_of(raw_delay)
    backoff = retry.get("backoff") or {}
    if "exponential" in backoff:
        delay = base * 2 ** (attempt - 1)
    elif "linear" in backoff:
        delay = base * attempt
    else:
        delay = base
    jitter = retry.get("jitter")
    if jitter:
        low = seconds_of(jitter.get("from") or 0)
        high = seconds_of(jitter.get("to") or 0)
        # Fixed by (run, attempt) so a replay computes the same delay without a record.
        fraction = zlib.crc32(f"{state.workflow['id']}:{attempt}".encode()) / 2**32
        delay += low + (high - low) * fraction
    return float(delay)
