"""The runtime's function catalog: what ``call: name:version@default`` runs.

A catalog function is an ``async def fn(call: FunctionCall) -> Any``. It runs in *workflow*
context, like workflow code: it may wait durably (``call.ctx.sleep``, ``call.ctx.wait_for``) and
anything with side effects must run inside ``call.ctx.step(...)`` so that a replay returns the
recorded result instead of doing it again. Connectors and human tasks plug in here by
registering their actions on the App's catalog; there is no global registry.

Built-ins (version ``1.0.0``, see :func:`default_catalog`):

- ``http-request``: the arguments of ``call: http``; one durable step.
- ``log``: writes ``message`` at ``level`` to the ``opsloom.dsl`` logger inside a step and
  returns the task input unchanged, so a log task can sit anywhere without changing the data.
- ``sleep``: a durable timer of ``seconds``, or ``duration`` (ISO 8601 like ``PT5M``, or the
  DSL's ``{days, hours, minutes, seconds, milliseconds}``); returns the task input unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from opsloom.dsl.builtin import BUILTINS
from opsloom.engine.context import Context
from opsloom.errors import ConfigurationError
from opsloom.expr.problem import TaskError


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """What a catalog function receives.

    Attributes:
        arguments: the task's ``with``, expressions already evaluated.
        ctx: the run's workflow context (durable steps, timers, waits).
        task: JSON pointer of the calling task, e.g. ``/do/0/notify``.
        secrets: the run's secrets by name.
        input: the task's transformed input.
    """

    arguments: dict[str, Any]
    ctx: Context
    task: str
    secrets: Mapping[str, Any]
    input: Any


CatalogFunctionFn = Callable[[FunctionCall], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class CatalogFunction:
    """A registered function: ``name:version`` and what runs it."""

    name: str
    version: str
    fn: CatalogFunctionFn
    description: str = ""
    input_schema: dict[str, Any] | None = None

    @property
    def reference(self) -> str:
        """``name:version@default``, as documents call it."""
        return f"{self.name}:{self.version}@default"

    async def __call__(self, call: FunctionCall) -> Any:
        """Validate the arguments against ``input_schema`` (if any), then run the function.

        Raises:
            TaskError: ``validation`` when the arguments do not match the schema; whatever
                the function raises otherwise.
        """
        if self.input_schema is not None:
            self.check(call.arguments)
        return await self.fn(call)

    def check(self, arguments: Any) -> None:
        """Raise a ``validation`` TaskError when ``arguments`` do not match ``input_schema``."""
        if self.input_schema is None:
            return
        validator = jsonschema.Draft202012Validator(self.input_schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/" + "/".join(str(p) for p in first.absolute_path)
            raise TaskError.standard(
                "validation",
                f"arguments of {self.reference} are invalid at {where}: {first.message}",
                title="Invalid function arguments",
            )


class Catalog:
    """Catalog functions by name and version."""

    def __init__(self) -> None:
        self._functions: dict[tuple[str, str], CatalogFunction] = {}

    def register(
        self,
        name: str,
        version: str,
        fn: CatalogFunctionFn,
        *,
        description: str = "",
        input_schema: dict[str, Any] | None = None,
    ) -> None:
        """Add a function.

        Raises:
            ConfigurationError: the name/version is already registered, or the schema is not a
                valid JSON Schema.
        """
        if not name or ":" in name or "@" in name:
            raise ConfigurationError(f"invalid catalog function name {name!r}")
        if not version or "@" in version:
            raise ConfigurationError(f"invalid catalog function version {version!r}")
        if (name, version) in self._functions:
            raise ConfigurationError(f"catalog function {name}:{version} is registered twice")
        if input_schema is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(input_schema)
            except jsonschema.SchemaError as exc:
                raise ConfigurationError(
                    f"input schema of {name}:{version} is invalid: {exc.message}"
                ) from None
        self._functions[(name, version)] = CatalogFunction(
            name, version, fn, description, input_schema
        )

    def function(self, name: str, version: str) -> CatalogFunction:
        """The function ``name:version``.

        Raises:
            TaskError: ``configuration`` naming the known functions when there is none.
        """
        found = self._functions.get((name, version))
        if found is None:
            known = ", ".join(f"{n}:{v}" for n, v in sorted(self._functions)) or "none"
            raise TaskError.standard(
                "configuration",
                f"no catalog function {name}:{version} in the default catalog (known: {known})",
                title="Unknown function",
            )
        return found

    def has(self, name: str, version: str) -> bool:
        """Whether ``name:version`` is registered."""
        return (name, version) in self._functions

    def functions(self) -> list[CatalogFunction]:
        """Every function, sorted by name then version."""
        return [self._functions[key] for key in sorted(self._functions)]


def default_catalog(**options: Any) -> Catalog:
    """A new catalog with the built-in functions registered.

    Human tasks (``approval:1.0.0``, ``decide:1.0.0``) are not built in: the application
    registers them (see :func:`opsloom.app.default_catalog`).

    Args:
        **options: passed to the built-ins' factory; ``client_factory`` (a callable returning
            an ``httpx.AsyncClient``) replaces :func:`opsloom.dsl.http.http_client` for
            ``http-request``, which tests use to reach local fakes.
    """
    catalog = Catalog()
    for builtin in BUILTINS:
        catalog.register(
            builtin.name,
            builtin.version,
            builtin.make(**options),
            description=builtin.description,
            input_schema=builtin.input_schema,
        )
    return catalog
