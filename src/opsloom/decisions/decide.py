"""Using decision tables from runs: a versioned set of tables, a durable ``decide`` step for
workflow code, and the ``decide:1.0.0`` catalog function for workflow documents.

A decision is evaluated inside a step, so its result is recorded: a replay returns the same
decision even if the table was changed or redeployed in between. In a document::

    - route:
        call: decide:1.0.0@default
        with:
          table: alert-routing        # name, and optionally version (default: the highest)
          input: ${ .alert }          # default: the task input

The task's output is the decision object (``table``, ``version``, ``hitPolicy``, ``matched``,
``selected``, ``output``); a table that violates its hit policy fails the task with a
``runtime`` error naming the rules.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloom.decisions.evaluation import evaluate
from opsloom.decisions.loader import load_table_file
from opsloom.errors import ConfigurationError
from opsloom.expr.diagnostic import Problem
from opsloom.model.decision import Decision, DecisionError, DecisionTable, InvalidDecisionTableError

if TYPE_CHECKING:
    from opsloom.dsl.catalog import Catalog, FunctionCall, FunctionSetup
    from opsloom.engine.context import Context
    from opsloom.settings import Settings

#: Version of the ``decide`` catalog function.
DECIDE_VERSION = "1.0.0"

DECIDE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["table"],
    "properties": {
        "table": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "input": {},
    },
    "additionalProperties": False,
}

_CASES = re.compile(r"\.cases\.(ya?ml|json)$")


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    # Numeric parts compare as numbers ("1.10.0" > "1.9.0"), others as text, numbers first.
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-+]", version)
    )


class DecisionTables:
    """Decision tables by name and version.

    Args:
        tables: tables to add right away.
    """

    def __init__(self, tables: Iterable[DecisionTable] = ()) -> None:
        self._tables: dict[tuple[str, str], DecisionTable] = {}
        for table in tables:
            self.add(table)

    def add(self, table: DecisionTable) -> None:
        """Add a table.

        Raises:
            ConfigurationError: a table with the same name and version is already there.
        """
        key = (table.name, table.version)
        if key in self._tables:
            raise ConfigurationError(
                f"decision table {table.reference} is defined twice "
                f"({self._tables[key].source} and {table.source})"
            )
        self._tables[key] = table

    def get(self, name: str, version: str | None = None) -> DecisionTable:
        """The table ``name`` at ``version``, or its highest version when ``version`` is None.

        Raises:
            DecisionError: there is no such table.
        """
        if version is not None:
            found = self._tables.get((name, version))
            if found is not None:
                return found
        else:
            versions = [t for (n, _), t in self._tables.items() if n == name]
            if versions:
                return max(versions, key=lambda t: _version_key(t.version))
        known = ", ".join(f"{n}:{v}" for n, v in sorted(self._tables)) or "none"
        wanted = name if version is None else f"{name}:{version}"
        raise DecisionError(f"no decision table {wanted} (known: {known})", table=name)

    def tables(self) -> list[DecisionTable]:
        """Every table, sorted by name then version."""
        return [self._tables[key] for key in sorted(self._tables)]

    @classmethod
    def load_directory(cls, folder: str | Path) -> DecisionTables:
        """Every table in ``folder`` (``*.yaml``, ``*.yml``, ``*.json``; ``*.cases.*`` skipped).

        Raises:
            InvalidDecisionTableError: some table is invalid; the problems of every file.
            ConfigurationError: two files define the same table version.
        """
        root = Path(folder)
        paths = sorted(
            p
            for pattern in ("*.yaml", "*.yml", "*.json")
            for p in root.glob(pattern)
            if not _CASES.search(p.name)
        )
        tables = cls()
        problems: list[Problem] = []
        for path in paths:
            try:
                tables.add(load_table_file(path))
            except InvalidDecisionTableError as exc:
                problems.extend(exc.problems)
        if problems:
            raise InvalidDecisionTableError(problems)
        return tables


def load_decision_tables(settings: Settings | None) -> DecisionTables | None:
    """The tables of ``OPSLOOM_DECISIONS_DIR``, if one is set."""
    folder = None if settings is None else settings.decisions_dir
    if folder is None:
        return None
    return DecisionTables.load_directory(folder)


def decision_step(table: DecisionTable, input: Any) -> dict[str, Any]:
    """Evaluate ``table`` for ``input`` as recorded data (the body of the ``decide`` step)."""
    return evaluate(table, input).to_dict()


async def decide(ctx: Context, table: DecisionTable, input: Any) -> Decision:
    """Evaluate a decision table as a durable step of the run.

    Raises:
        StepFailedError: the decision failed (the message is the :class:`DecisionError`'s).
    """
    data = await ctx.step(decision_step, table, input)
    return Decision(
        data["table"],
        data["version"],
        table.hit_policy,
        tuple(data["matched"]),
        tuple(data["selected"]),
        data["output"],
    )


def _decide_recorded(table: DecisionTable, input: Any) -> dict[str, Any]:
    # A failed decision is recorded as data, so that a replay raises the same task error
    # instead of retrying a deterministic failure.
    try:
        return {"decision": decision_step(table, input)}
    except DecisionError as exc:
        return {"error": str(exc)}


def decide_function(tables: DecisionTables) -> Callable[[FunctionCall], Awaitable[Any]]:
    """The ``decide`` catalog function over ``tables`` (see the module docstring)."""
    from opsloom.expr.problem import TaskError

    async def decide_call(call: FunctionCall) -> Any:
        arguments = call.arguments
        try:
            table = tables.get(str(arguments["table"]), arguments.get("version"))
        except DecisionError as exc:
            raise TaskError.standard(
                "configuration", str(exc), title="Unknown decision table"
            ) from None
        input = arguments.get("input", call.input)
        result = await call.ctx.step(_decide_recorded, table, input)
        if "error" in result:
            raise TaskError.standard("runtime", str(result["error"]), title="Decision failed")
        return result["decision"]

    return decide_call


def register_decide(catalog: Catalog, tables: DecisionTables) -> None:
    """Register ``decide:1.0.0`` on ``catalog``, deciding with ``tables``."""
    catalog.register(
        "decide",
        DECIDE_VERSION,
        decide_function(tables),
        description="Evaluate a decision table: with {table, version?, input?}.",
        input_schema=DECIDE_SCHEMA,
    )


def install_decide(catalog: Catalog, setup: FunctionSetup) -> None:
    """The ``opsloom.functions`` entry point of ``decide:1.0.0`` (only with decision tables)."""
    if setup.decision_tables is not None:
        register_decide(catalog, setup.decision_tables)
