"""Hit-policy violations that can be seen in a table without any input.

Two rules *overlap* when some input can match both: for every input column, the sets of values
their tests accept intersect (see :mod:`opsloom.model.valueset`). Under ``UNIQUE`` any overlap
is a violation; under ``ANY`` an overlap is one when the rules' literal outputs differ. A column
tested with jq has no known set, so a pair of rules involving one is left to evaluation, which
fails loudly if both rules do match.
"""

from __future__ import annotations

from collections.abc import Sequence

from opsloom.model.decision import HitPolicy, Rule, equal
from opsloom.model.valueset import ValueSet


def conflicts(rules: Sequence[Rule], policy: HitPolicy) -> list[tuple[int, int]]:
    """Pairs ``(later, earlier)`` of rule indexes that violate ``policy`` for some input.

    Each later rule is reported once, with the first earlier rule it conflicts with.
    """
    if policy not in (HitPolicy.UNIQUE, HitPolicy.ANY):
        return []
    sets = [[cell.test.value_set() for cell in rule.cells] for rule in rules]
    found: list[tuple[int, int]] = []
    for later, rule in enumerate(rules):
        for earlier in range(later):
            if not overlap(sets[earlier], sets[later]):
                continue
            if policy is HitPolicy.UNIQUE or _differ(rules[earlier], rule):
                found.append((later, earlier))
                break
    return found


def overlap(a: Sequence[ValueSet | None], b: Sequence[ValueSet | None]) -> bool:
    """Whether one input can match both rows of sets; an unknown (jq) column counts as no."""
    return all(x is not None and y is not None and x.overlaps(y) for x, y in zip(a, b, strict=True))


def _differ(a: Rule, b: Rule) -> bool:
    """Whether two rules' literal outputs differ (jq outputs are compared at evaluation)."""
    for x, y in zip(a.outputs, b.outputs, strict=True):
        if x.expression is not None or y.expression is not None:
            return False
        if not equal(x.value, y.value):
            return True
    return False
