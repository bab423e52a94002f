"""The runtime's function catalog: what ``call: name:version@default`` runs.

A catalog function is an ``async def fn(call: FunctionCall) -> Any``. It runs in *workflow*
context, like workflow code: it may wait durably (``call.ctx.sleep``, ``call.ctx.wait_for``) and
anything with side effects must run inside ``call.ctx.step(...)`` so that a replay returns the
recorded result instead of doing it again. Connectors and human tasks plug in here by
registering their actions on the App's catalog; there is no global registry.

Functions come from the ``opsloom.functions`` entry points (see :mod:`opsloom.extension`),
built-ins included: an entry point provides a :class:`CatalogFunction` (made with
:func:`catalog_function`), or an ``install(catalog, setup)`` callable that registers functions
built from the :class:`FunctionSetup` (the decision tables, the HTTP client factory).

Built-ins (version ``1.0.0``, see :func:`default_catalog`):

- ``http-request``: the arguments of ``call: http``; one durable step.
- ``log``: writes ``message`` at ``level`` to the ``opsloom.dsl`` logger inside a step and
  returns the task input unchanged, so a log task can sit anywhere without changing the data.
- ``sleep``: a durable timer of ``seconds``, or ``duration`` (ISO 8601 like ``PT5M``, or the
  DSL's ``{days, hours, minutes, seconds, milliseconds}``); returns the task input unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from opsloom.dsl.builtin import BUILTINS
from opsloom.engine.context import Context
from opsloom.errors import ConfigurationError
from opsloom.expr.evaluator import is_expression
from opsloom.expr.problem import TaskError
from opsloom.extension import FUNCTIONS, ExtensionError, discover


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
        problem = self.problem(arguments)
        if problem is not None:
            raise TaskError.standard("validation", problem, title="Invalid function arguments")

    def problem(self, arguments: Any, *, unevaluated: bool = False) -> str | None:
        """What is wrong with ``arguments`` for ``input_schema`` (None: nothing)."""
        found = self.problems_at(arguments, unevaluated=unevaluated)
        if not found:
            return None
        where, message = found[0]
        pointer = "/" + "/".join(str(p) for p in where)
        return f"arguments of {self.reference} are invalid at {pointer}: {message}"

    def problems_at(
        self, arguments: Any, *, unevaluated: bool = False
    ) -> list[tuple[tuple[str | int, ...], str]]:
        """Where in ``arguments`` (a path) and what is wrong for ``input_schema``, in order.

        ``unevaluated``: the arguments are as written in a document, before its runtime
        expressions are evaluated; a value that is (or lies inside) a ``${ … }`` expression
        could be anything at run time, so what is wrong there is not reported.
        """
        if self.input_schema is None:
            return []
        validator = jsonschema.Draft202012Validator(self.input_schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if unevaluated:
            errors = [e for e in errors if not _under_expression(arguments, e.absolute_path)]
        return [(tuple(error.absolute_path), error.message) for error in errors]


def _under_expression(arguments: Any, path: Any) -> bool:
    """Whether the value at ``path`` in ``arguments``, or one around it, is a ``${ … }``."""
    value = arguments
    if is_expression(value):
        return True
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return False
        if is_expression(value):
            return True
    return False


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

    def add(self, function: CatalogFunction) -> None:
        """Add a function made with :func:`catalog_function` (same checks as :meth:`register`)."""
        self.register(
            function.name,
            function.version,
            function.fn,
            description=function.description,
            input_schema=function.input_schema,
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

    def arguments_problems(
        self, name: str, version: str, arguments: Any
    ) -> list[tuple[tuple[str | int, ...], str]]:
        """Where in arguments written in a document for ``name:version`` and what is wrong
        (checked against its input schema, runtime expressions left to run time); empty when
        nothing is, or there is no such function."""
        found = self._functions.get((name, version))
        if found is None:
            return []
        return [
            (where, f"bad argument for {name}:{version}: {message}")
            for where, message in found.problems_at(arguments, unevaluated=True)
        ]

    def functions(self) -> list[CatalogFunction]:
        """Every function, sorted by name then version."""
        return [self._functions[key] for key in sorted(self._functions)]


def catalog_function(
    name: str,
    version: str,
    fn: CatalogFunctionFn,
    *,
    description: str = "",
    input_schema: dict[str, Any] | None = None,
) -> CatalogFunction:
    """A catalog function to provide from an ``opsloom.functions`` entry point.

    >>> async def shout(call: FunctionCall) -> str:
    ...     return str(call.arguments["text"]).upper()
    >>> function = catalog_function("shout", "1.0.0", shout)
    """
    return CatalogFunction(name, version, fn, description, input_schema)


@dataclass(frozen=True, slots=True)
class FunctionSetup:
    """What ``install(catalog, setup)`` entry points build their functions from.

    Attributes:
        decision_tables: the tables ``decide`` evaluates and approval policies name (a
            :class:`~opsloom.decisions.decide.DecisionTables`; none: functions that need them
            are not installed). Typed loosely: the DSL sits below the decisions package.
        options: keyword options of the built-ins; ``client_factory`` (a callable returning
            an ``httpx.AsyncClient``) replaces :func:`opsloom.dsl.http.http_client`.
    """

    decision_tables: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)


FunctionInstaller = Callable[[Catalog, FunctionSetup], None]


def as_installer(name: str, obj: Any) -> FunctionInstaller:
    """What an ``opsloom.functions`` entry point provides, as an ``install(catalog, setup)``.

    Raises:
        TypeError: it is neither a :class:`CatalogFunction` nor a callable.
    """
    if isinstance(obj, CatalogFunction):
        function = obj
        return lambda catalog, setup: catalog.add(function)
    if callable(obj) and not isinstance(obj, type):
        installer: FunctionInstaller = obj
        return installer
    raise TypeError(
        "an opsloom.functions entry point provides a CatalogFunction (catalog_function(...)) "
        f"or an install(catalog, setup) callable, not {type(obj).__name__}"
    )


def load_catalog(setup: FunctionSetup | None = None) -> tuple[Catalog, list[ExtensionError]]:
    """A new catalog with every installed ``opsloom.functions`` entry point's functions.

    Returns:
        The catalog and an error for each entry point that could not be loaded or installed
        (naming it); the other functions are there.
    """
    setup = setup or FunctionSetup()
    catalog = Catalog()
    loaded, errors = discover(FUNCTIONS, as_installer)
    for item in loaded:
        try:
            item.obj(catalog, setup)
        except Exception as exc:  # a plugin's install may raise anything; the rest still loads
            errors.append(
                ExtensionError(
                    FUNCTIONS,
                    item.name,
                    item.value,
                    item.distribution,
                    f"install failed: {type(exc).__name__}: {exc}",
                )
            )
    return catalog, errors


def default_catalog(**options: Any) -> Catalog:
    """A new catalog with the DSL's own built-in functions only (``http-request``, ``log``,
    ``sleep``); :func:`load_catalog` adds every installed one (human tasks, plugins).

    Args:
        **options: passed to the built-ins' factory; ``client_factory`` (a callable returning
            an ``httpx.AsyncClient``) replaces :func:`opsloom.dsl.http.http_client` for
            ``http-request``, which tests use to reach local fakes.
    """
    catalog = Catalog()
    setup = FunctionSetup(options=options)
    for builtin in BUILTINS:
        builtin(catalog, setup)
    return catalog
