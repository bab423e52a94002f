"""Sets of JSON values described by unary tests, precise enough to tell whether two tests overlap.

A decision table with the UNIQUE or ANY hit policy is wrong when two of its rules can match the
same input. Deciding that statically means intersecting, column by column, the sets of values
each rule's test accepts. Those sets are unions of intervals over numbers (real numbers, so
``< 3`` and ``> 2`` overlap even when inputs happen to be integers) and over strings (ordered by
code point), plus the three constants ``true``, ``false`` and ``null``, plus "everything else"
(objects and arrays, which no literal test names but ``-`` and ``not(...)`` accept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A bound is (rank, value): rank -1 is minus infinity, 1 is plus infinity, 0 a finite value.
Bound = tuple[int, Any]
# An interval: lower bound, lower closed?, upper bound, upper closed?
Interval = tuple[Bound, bool, Bound, bool]

NEG_INF: Bound = (-1, None)
POS_INF: Bound = (1, None)
_EVERYTHING: Interval = (NEG_INF, False, POS_INF, False)
CONSTANTS = frozenset({"true", "false", "null"})


def _cmp(a: Bound, b: Bound) -> int:
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    if a[0] != 0 or a[1] == b[1]:
        return 0
    return -1 if a[1] < b[1] else 1


def _nonempty(interval: Interval) -> bool:
    lo, lo_closed, hi, hi_closed = interval
    order = _cmp(lo, hi)
    if order < 0:
        return True
    return order == 0 and lo[0] == 0 and lo_closed and hi_closed


def _intersect(a: Interval, b: Interval) -> Interval:
    lo_order = _cmp(a[0], b[0])
    if lo_order > 0:
        lo, lo_closed = a[0], a[1]
    elif lo_order < 0:
        lo, lo_closed = b[0], b[1]
    else:
        lo, lo_closed = a[0], a[1] and b[1]
    hi_order = _cmp(a[2], b[2])
    if hi_order < 0:
        hi, hi_closed = a[2], a[3]
    elif hi_order > 0:
        hi, hi_closed = b[2], b[3]
    else:
        hi, hi_closed = a[2], a[3] and b[3]
    return (lo, lo_closed, hi, hi_closed)


def _merge(intervals: tuple[Interval, ...]) -> list[Interval]:
    """Sorted, disjoint, non-adjacent intervals covering the same values."""
    items = sorted(
        (i for i in intervals if _nonempty(i)),
        key=lambda i: (i[0][0], i[0][1] if i[0][0] == 0 else 0, not i[1]),
    )
    merged: list[Interval] = []
    for item in items:
        if merged:
            last = merged[-1]
            order = _cmp(item[0], last[2])
            touching = order < 0 or (order == 0 and (item[1] or last[3]))
            if touching:
                end_order = _cmp(item[2], last[2])
                if end_order > 0:
                    merged[-1] = (last[0], last[1], item[2], item[3])
                elif end_order == 0:
                    merged[-1] = (last[0], last[1], last[2], last[3] or item[3])
                continue
        merged.append(item)
    return merged


def _complement(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    gaps: list[Interval] = []
    lo, lo_closed = NEG_INF, False
    for start, start_closed, end, end_closed in _merge(intervals):
        gap = (lo, lo_closed, start, not start_closed)
        if _nonempty(gap):
            gaps.append(gap)
        lo, lo_closed = end, not end_closed
    tail = (lo, lo_closed, POS_INF, False)
    if _nonempty(tail):
        gaps.append(tail)
    return tuple(gaps)


def _overlap(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> bool:
    return any(_nonempty(_intersect(x, y)) for x in a for y in b)


@dataclass(frozen=True, slots=True)
class ValueSet:
    """A set of JSON values.

    Attributes:
        numbers: intervals of numbers.
        strings: intervals of strings.
        constants: which of ``"true"``, ``"false"``, ``"null"`` belong to the set.
        others: whether objects and arrays belong to the set.
    """

    numbers: tuple[Interval, ...] = ()
    strings: tuple[Interval, ...] = ()
    constants: frozenset[str] = frozenset()
    others: bool = False

    @staticmethod
    def everything() -> ValueSet:
        """Every JSON value (the ``-`` test)."""
        return ValueSet((_EVERYTHING,), (_EVERYTHING,), CONSTANTS, True)

    @staticmethod
    def point(value: Any) -> ValueSet:
        """The set holding ``value`` alone (a number, string, boolean or null)."""
        if value is None:
            return ValueSet(constants=frozenset({"null"}))
        if isinstance(value, bool):
            return ValueSet(constants=frozenset({"true" if value else "false"}))
        bound: Bound = (0, value)
        interval = (bound, True, bound, True)
        if isinstance(value, str):
            return ValueSet(strings=(interval,))
        return ValueSet(numbers=(interval,))

    @staticmethod
    def interval(lo: Any, lo_closed: bool, hi: Any, hi_closed: bool) -> ValueSet:
        """Numbers or strings between ``lo`` and ``hi``; ``None`` stands for an open end."""
        interval: Interval = (
            NEG_INF if lo is None else (0, lo),
            lo is not None and lo_closed,
            POS_INF if hi is None else (0, hi),
            hi is not None and hi_closed,
        )
        sample = lo if lo is not None else hi
        if isinstance(sample, str):
            return ValueSet(strings=(interval,))
        return ValueSet(numbers=(interval,))

    def union(self, other: ValueSet) -> ValueSet:
        """Values in either set."""
        return ValueSet(
            self.numbers + other.numbers,
            self.strings + other.strings,
            self.constants | other.constants,
            self.others or other.others,
        )

    def complement(self) -> ValueSet:
        """Every JSON value not in this set."""
        return ValueSet(
            _complement(self.numbers),
            _complement(self.strings),
            CONSTANTS - self.constants,
            not self.others,
        )

    def overlaps(self, other: ValueSet) -> bool:
        """Whether some JSON value belongs to both sets."""
        return (
            bool(self.constants & other.constants)
            or (self.others and other.others)
            or _overlap(self.numbers, other.numbers)
            or _overlap(self.strings, other.strings)
        )

    def is_empty(self) -> bool:
        """Whether no JSON value belongs to the set."""
        return not self.overlaps(ValueSet.everything())
