"""The built-in functions of the default catalog: ``http-request``, ``log`` and ``sleep``.

Each built-in is described by a :class:`Builtin` whose ``make(**options)`` builds the catalog
function, so that the catalog can pass options (such as the
HTTP client factory) without any global state.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from opsloom.dsl.auth import AuthResolver
from opsloom.dsl.http import call_http, http_client
from opsloom.engine.context import current_step
from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.dsl.catalog import Catalog, FunctionCall, FunctionSetup

CatalogFn = Callable[["FunctionCall"], Awaitable[Any]]
ClientFactory = Callable[[], httpx.AsyncClient]

VERSION = "1.0.0"

#: DSL-style level names (the specification's catalog says ``information``) to logging levels.
LEVELS: dict[str, int] = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

_NUMBER = r"(\d+(?:\.\d+)?)"
_ISO_DURATION = re.compile(
    rf"^P(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?$"
)
_UNITS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0, "milliseconds": 1e-3}


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in catalog function and how to build it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    make: Callable[..., CatalogFn]
    version: str = VERSION

    def __call__(self, catalog: Catalog, setup: FunctionSetup) -> None:
        """Register this built-in (its ``opsloom.functions`` entry point installs it so)."""
        catalog.register(
            self.name,
            self.version,
            self.make(**setup.options),
            description=self.description,
            input_schema=self.input_schema,
        )


# --- http-request ------------------------------------------------------------------------


async def http_request(
    arguments: dict[str, Any],
    input: Any,
    secrets: Mapping[str, Any],
    client_factory: ClientFactory,
) -> dict[str, Any]:
    """The step of ``http-request``: the call's output, or its DSL error, as recorded data.

    The error is returned rather than raised so that it is recorded once and replayed as the
    same :class:`TaskError` (an exception would be retried by the engine and lose its type).
    """
    async with client_factory() as client:
        auth = AuthResolver({}, secrets, client)
        try:
            return {"output": await call_http(arguments, input=input, auth=auth, client=client)}
        except TaskError as exc:
            return {"error": exc.to_dict()}


def _make_http_request(*, client_factory: ClientFactory = http_client, **_: Any) -> CatalogFn:
    async def run(call: FunctionCall) -> Any:
        outcome = await call.ctx.step(
            http_request, dict(call.arguments), call.input, call.secrets, client_factory
        )
        if "error" in outcome:
            error = TaskError.from_dict(outcome["error"])
            error.instance = error.instance or call.task
            raise error
        return outcome.get("output")

    return run


HTTP_REQUEST = Builtin(
    name="http-request",
    description="Send one HTTP request (the arguments of `call: http`) as a durable step.",
    input_schema={
        "type": "object",
        "required": ["method", "endpoint"],
        "properties": {
            "method": {"type": "string", "minLength": 1},
            "endpoint": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "object", "required": ["uri"], "properties": {"uri": {}}},
                ]
            },
            "headers": {"type": "object"},
            "query": {"type": "object"},
            "body": {},
            "output": {"enum": ["content", "response", "raw"]},
            "redirect": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    make=_make_http_request,
)


# --- log ---------------------------------------------------------------------------------


def write_log(task: str, level: str, message: str) -> None:
    """The step of ``log``: one record on the ``opsloom.dsl`` logger."""
    step = current_step()
    logging.getLogger("opsloom.dsl").log(
        LEVELS[level],
        "%s",
        message,
        extra={"event": "dsl_log", "run_id": step.run_id, "task": task},
    )


def _make_log(**_: Any) -> CatalogFn:
    async def run(call: FunctionCall) -> Any:
        message = call.arguments.get("message")
        text = message if isinstance(message, str) else json.dumps(message, default=str)
        level = str(call.arguments.get("level") or "information").lower()
        await call.ctx.step(write_log, call.task, level, text)
        return call.input

    return run


LOG = Builtin(
    name="log",
    description="Write `message` at `level` to the opsloom.dsl logger; output = the task input.",
    input_schema={
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": {},
            "level": {"enum": sorted(LEVELS) + sorted(k.upper() for k in LEVELS)},
        },
    },
    make=_make_log,
)


# --- sleep -------------------------------------------------------------------------------


def duration_seconds(value: Any) -> float:
    """Seconds of a DSL duration: ISO 8601 (``PT1H30M``) or ``{hours: 1, minutes: 30}``.

    Years and months are refused: their length depends on the calendar.

    Raises:
        TaskError: ``validation`` for anything else.
    """
    if isinstance(value, Mapping):
        unknown = set(value) - set(_UNITS)
        if unknown or not value:
            raise _bad_duration(value)
        total = 0.0
        for unit, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                raise _bad_duration(value)
            total += float(amount) * _UNITS[unit]
        return total
    if isinstance(value, str):
        match = _ISO_DURATION.match(value)
        if match is None or value in ("P", "PT") or value.endswith("T"):
            raise _bad_duration(value)
        weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        return weeks * 604800 + days * 86400 + hours * 3600 + minutes * 60 + seconds
    raise _bad_duration(value)


def _bad_duration(value: Any) -> TaskError:
    return TaskError.standard(
        "validation",
        f"not a duration: {value!r} (use seconds, an ISO 8601 duration such as 'PT5M', or "
        "{days, hours, minutes, seconds, milliseconds})",
        title="Invalid duration",
    )


def _make_sleep(**_: Any) -> CatalogFn:
    async def run(call: FunctionCall) -> Any:
        args = call.arguments
        if "seconds" in args:
            seconds = args["seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise _bad_duration(seconds)
            delay = float(seconds)
        else:
            delay = duration_seconds(args.get("duration"))
        await call.ctx.sleep(delay)
        return call.input

    return run


SLEEP = Builtin(
    name="sleep",
    description="Wait durably for `seconds` or `duration`; output = the task input.",
    input_schema={
        "type": "object",
        "properties": {
            "seconds": {"type": "number", "minimum": 0},
            "duration": {"type": ["string", "object"]},
        },
        "oneOf": [{"required": ["seconds"]}, {"required": ["duration"]}],
        "additionalProperties": False,
    },
    make=_make_sleep,
)

BUILTINS: tuple[Builtin, ...] = (HTTP_REQUEST, LOG, SLEEP)
