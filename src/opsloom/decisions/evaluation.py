"""Evaluating a decision table: which rules match an input, and what the hit policy makes of them.

See :mod:`opsloom.model.decision` for the hit policies and the table's types.
"""

from __future__ import annotations

import json
from typing import Any

from opsloom.expr.evaluator import ExpressionError
from opsloom.model.decision import (
    Aggregation,
    Decision,
    DecisionError,
    DecisionTable,
    HitPolicy,
    InputColumn,
    Rule,
    equal,
)


def evaluate(table: DecisionTable, input: Any) -> Decision:
    """Decide ``input`` (a JSON document) with ``table``.

    Raises:
        DecisionError: the input is not JSON, a jq expression failed, or the matching rules
            violate the hit policy (``UNIQUE`` with several matches, ``ANY`` with different
            outputs, an output value outside its column's ``values``, a non-number to
            aggregate); the error names the table, the rules involved and the input.
    """
    try:
        json.dumps(input, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DecisionError(
            f"decision table {table.reference}: the input is not a JSON document: {exc}",
            table=table.name,
        ) from None
    values = [_input_value(table, column, input) for column in table.inputs]
    matched: list[Rule] = []
    for rule in table.rules:
        if _matches(table, rule, values, input):
            matched.append(rule)
            if table.hit_policy is HitPolicy.FIRST:
                break
    outputs = [_outputs(table, rule, input) for rule in matched]
    ids = tuple(rule.id for rule in matched)
    selected, output = _apply_policy(table, matched, outputs, input)
    return Decision(table.name, table.version, table.hit_policy, ids, selected, output)


def _apply_policy(
    table: DecisionTable, matched: list[Rule], outputs: list[dict[str, Any]], input: Any
) -> tuple[tuple[str, ...], Any]:
    ids = tuple(rule.id for rule in matched)
    policy = table.hit_policy
    if policy is HitPolicy.COLLECT:
        if table.aggregation is None:
            return ids, outputs
        return ids, _aggregate(table, matched, outputs, input)
    if not matched:
        return (), None
    if policy is HitPolicy.UNIQUE and len(matched) > 1:
        raise _violation(table, ids, input, "matched several rules; UNIQUE allows at most one")
    if policy is HitPolicy.ANY:
        for rule, output in zip(matched[1:], outputs[1:], strict=True):
            if not equal(output, outputs[0]):
                raise _violation(
                    table,
                    (matched[0].id, rule.id),
                    input,
                    f"matched rules with different outputs ({_show(outputs[0])} and "
                    f"{_show(output)}); ANY allows several matches only when they agree",
                )
        return ids, outputs[0]
    if policy is HitPolicy.PRIORITY:
        ranked = [(_priority(table, output), index) for index, output in enumerate(outputs)]
        best = min(ranked)[1]
        return (matched[best].id,), outputs[best]
    return (matched[0].id,), outputs[0]


def _priority(table: DecisionTable, output: dict[str, Any]) -> tuple[int, ...]:
    ranks: list[int] = []
    for column in table.outputs:
        if column.values is not None:
            rank = column.rank(output[column.name])
            ranks.append(len(column.values) if rank is None else rank)
    return tuple(ranks)


def _aggregate(
    table: DecisionTable, matched: list[Rule], outputs: list[dict[str, Any]], input: Any
) -> Any:
    column = table.outputs[0].name
    numbers: list[int | float] = []
    for rule, output in zip(matched, outputs, strict=True):
        value = output[column]
        if table.aggregation is not Aggregation.COUNT and (
            not isinstance(value, (int, float)) or isinstance(value, bool)
        ):
            raise _violation(
                table,
                (rule.id,),
                input,
                f"gave {column} = {_show(value)}, which {table.aggregation} cannot aggregate "
                "(it needs numbers)",
            )
        numbers.append(value)
    if table.aggregation is Aggregation.COUNT:
        return len(numbers)
    if not numbers:
        return None
    if table.aggregation is Aggregation.SUM:
        return sum(numbers)
    if table.aggregation is Aggregation.MIN:
        return min(numbers)
    return max(numbers)


def _input_value(table: DecisionTable, column: InputColumn, input: Any) -> Any:
    try:
        return column.expression.run(input, input)
    except ExpressionError as exc:
        raise DecisionError(
            f"decision table {table.reference}: input {column.name!r} "
            f"({column.expression.text}) failed: {exc.detail}; input: {_show(input)}",
            table=table.name,
            input=input,
        ) from None


def _matches(table: DecisionTable, rule: Rule, values: list[Any], input: Any) -> bool:
    for column, cell, value in zip(table.inputs, rule.cells, values, strict=True):
        if cell.expression is None:
            if not cell.test.matches(value):
                return False
            continue
        try:
            result = cell.expression.run(value, input)
        except ExpressionError as exc:
            raise DecisionError(
                f"decision table {table.reference}: the test {cell.test.text!r} of rule "
                f"{rule.id!r} on input {column.name!r} = {_show(value)} failed: {exc.detail}; "
                f"input: {_show(input)}",
                table=table.name,
                rules=(rule.id,),
                input=input,
            ) from None
        if result is None or result is False:
            return False
    return True


def _outputs(table: DecisionTable, rule: Rule, input: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for column, cell in zip(table.outputs, rule.outputs, strict=True):
        value = cell.value
        if cell.expression is not None:
            try:
                value = cell.expression.run(input, input)
            except ExpressionError as exc:
                raise DecisionError(
                    f"decision table {table.reference}: output {column.name!r} of rule "
                    f"{rule.id!r} ({cell.expression.text}) failed: {exc.detail}; "
                    f"input: {_show(input)}",
                    table=table.name,
                    rules=(rule.id,),
                    input=input,
                ) from None
            if column.values is not None and column.rank(value) is None:
                raise _violation(
                    table,
                    (rule.id,),
                    input,
                    f"gave {column.name} = {_show(value)}, which is not one of its values "
                    f"{_show(list(column.values))}",
                )
        result[column.name] = value
    return result


def _violation(
    table: DecisionTable, rules: tuple[str, ...], input: Any, what: str
) -> DecisionError:
    names = ", ".join(repr(r) for r in rules)
    noun = "rule" if len(rules) == 1 else "rules"
    return DecisionError(
        f"decision table {table.reference} ({table.hit_policy}): {what}: {noun} {names}; "
        f"input: {_show(input)}",
        table=table.name,
        rules=rules,
        input=input,
    )


def _show(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
