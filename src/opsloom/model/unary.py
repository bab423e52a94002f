"""Unary tests: the cells of a decision table's input columns, in a small S-FEEL-like grammar.

A test is applied to one input value and says whether it matches::

    -                       anything
    "production"  42  true  equal to a literal (strings in double quotes, or a bare word:
    production  null        letters, digits and ``_ - . / : @``, starting with a letter)
    < 5   >= 0.8   <= "m"   a comparison with a number or a string (``=`` and ``!=`` too)
    [1..5]  (1..5]  ]1..5[  a range; ``[``/``]`` include the end, ``(``/``)`` or a reversed
                            bracket exclude it; numbers or strings
    "a", "b", > 10          any of several tests
    not("a", "b")           none of several tests
    ${ jq predicate }       jq over the value (``.``), true unless it yields false or null

A YAML number or boolean in a cell is an equality test. Values of different kinds never match
each other: ``1`` does not equal ``true`` and ``< 5`` never matches a string.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from opsloom.model.valueset import ValueSet

#: Comparison operators; ``=`` and ``!=`` are equality and its negation.
OPERATORS = ("<=", ">=", "!=", "<", ">", "=")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<range>\.\.)
  | (?P<op><=|>=|!=|<|>|=)
  | (?P<punct>[,()\[\]])
  | (?P<word>[A-Za-z_](?:[A-Za-z0-9_\-/:@]|\.(?!\.))*)
    """,
    re.VERBOSE,
)
_JQ = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)


class UnaryTestSyntaxError(ValueError):
    """A test does not follow the grammar; ``offset`` is where (0-based, in the cell text)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Positive:
    """One simple test: ``op`` is ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` or ``range``."""

    op: str
    value: Any = None
    high: Any = None
    low_closed: bool = True
    high_closed: bool = True

    def matches(self, candidate: Any) -> bool:
        """Whether ``candidate`` passes this test."""
        if self.op == "=":
            return same(candidate, self.value)
        if self.op == "!=":
            return not same(candidate, self.value)
        if not comparable(candidate, self.value):
            return False
        if self.op == "<":
            return bool(candidate < self.value)
        if self.op == "<=":
            return bool(candidate <= self.value)
        if self.op == ">":
            return bool(candidate > self.value)
        if self.op == ">=":
            return bool(candidate >= self.value)
        low_ok = candidate >= self.value if self.low_closed else candidate > self.value
        high_ok = candidate <= self.high if self.high_closed else candidate < self.high
        return bool(low_ok and high_ok)

    def value_set(self) -> ValueSet:
        """The values this test accepts."""
        if self.op == "=":
            return ValueSet.point(self.value)
        if self.op == "!=":
            return ValueSet.point(self.value).complement()
        if self.op == "<":
            return ValueSet.interval(None, False, self.value, False)
        if self.op == "<=":
            return ValueSet.interval(None, False, self.value, True)
        if self.op == ">":
            return ValueSet.interval(self.value, False, None, False)
        if self.op == ">=":
            return ValueSet.interval(self.value, True, None, False)
        return ValueSet.interval(self.value, self.low_closed, self.high, self.high_closed)


@dataclass(frozen=True, slots=True)
class UnaryTest:
    """A parsed cell.

    Attributes:
        text: the cell as written (for messages).
        kind: ``"any"``, ``"list"`` (``items``, negated or not) or ``"jq"`` (``expression``).
        items: the simple tests of a list, any of which matches.
        negated: ``not(...)``: matches when none of ``items`` does.
        expression: the jq text of a ``${ }`` test, without the wrapper.
    """

    text: str
    kind: str
    items: tuple[Positive, ...] = ()
    negated: bool = False
    expression: str = ""

    def matches(self, candidate: Any) -> bool:
        """Whether ``candidate`` passes; jq tests are evaluated by the caller, not here."""
        if self.kind == "any":
            return True
        if self.kind == "jq":
            raise ValueError("a jq test is evaluated by the decision table, not by itself")
        hit = any(item.matches(candidate) for item in self.items)
        return hit != self.negated

    def value_set(self) -> ValueSet | None:
        """The values this test accepts; ``None`` when unknown (a jq test)."""
        if self.kind == "any":
            return ValueSet.everything()
        if self.kind == "jq":
            return None
        union = ValueSet()
        for item in self.items:
            union = union.union(item.value_set())
        return union.complement() if self.negated else union


def same(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (``1 == 1.0``), booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def comparable(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` can be ordered: two numbers or two strings."""
    if _is_number(a) and _is_number(b):
        return not (isinstance(a, float) and math.isnan(a))
    return isinstance(a, str) and isinstance(b, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def from_cell(cell: Any) -> UnaryTest:
    """The test written in a table cell (a YAML string, number or boolean).

    Raises:
        UnaryTestSyntaxError: the cell is not a test.
    """
    if isinstance(cell, bool) or _is_number(cell):
        if isinstance(cell, float) and math.isnan(cell):
            raise UnaryTestSyntaxError("NaN is not a value a test can compare with", 0)
        return UnaryTest(json.dumps(cell), "list", (Positive("=", cell),))
    if cell is None:
        raise UnaryTestSyntaxError(
            'the test is empty; write "-" to match anything, or null to match null', 0
        )
    if not isinstance(cell, str):
        raise UnaryTestSyntaxError(
            "a test is a string, a number or a boolean, not a list or a mapping", 0
        )
    return parse(cell)


def parse(text: str) -> UnaryTest:
    """Parse the text of a unary test.

    Raises:
        UnaryTestSyntaxError: the text does not follow the grammar.
    """
    stripped = text.strip()
    if stripped == "-":
        return UnaryTest(text, "any")
    wrapped = _JQ.match(text)
    if wrapped:
        body = wrapped.group(1).strip()
        if not body:
            raise UnaryTestSyntaxError("the jq test is empty", text.index("${"))
        return UnaryTest(text, "jq", expression=body)
    if "${" in text:
        raise UnaryTestSyntaxError(
            "a jq test must be the whole cell: ${ predicate }", text.index("${")
        )
    return _Parser(text).cell()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                raise UnaryTestSyntaxError(f"unexpected character {text[position]!r}", position)
            kind = match.lastgroup or ""
            if kind != "space":
                self.tokens.append((kind, match.group(), position))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int]:
        if self.index < len(self.tokens):
            return self.tokens[self.index]
        return ("end", "", len(self.text))

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        self.index += 1
        return token

    def expect(self, value: str, what: str) -> None:
        kind, text, offset = self.take()
        if text != value or kind == "string":
            raise UnaryTestSyntaxError(f"expected {what}, found {_describe(kind, text)}", offset)

    def cell(self) -> UnaryTest:
        kind, text, offset = self.peek()
        if kind == "end":
            raise UnaryTestSyntaxError(
                'the test is empty; write "-" to match anything', max(0, offset - 1)
            )
        negated = False
        if kind == "word" and text == "not":
            self.take()
            self.expect("(", "'(' after 'not'")
            negated = True
        items = [self.positive()]
        while self.peek()[1] == "," and self.peek()[0] == "punct":
            self.take()
            items.append(self.positive())
        if negated:
            self.expect(")", "')' closing 'not('")
        kind, text, offset = self.peek()
        if kind != "end":
            raise UnaryTestSyntaxError(
                f"unexpected {_describe(kind, text)}; separate several tests with ','", offset
            )
        return UnaryTest(self.text, "list", tuple(items), negated)

    def positive(self) -> Positive:
        kind, text, _ = self.peek()
        if kind == "op":
            self.take()
            value, at = self.literal()
            if text in ("=", "!="):
                return Positive(text, value)
            if not isinstance(value, (int, float, str)) or isinstance(value, bool):
                raise UnaryTestSyntaxError(
                    f"'{text}' compares with a number or a string, not {json.dumps(value)}", at
                )
            return Positive(text, value)
        if kind == "punct" and text in "[(]":
            return self.interval()
        value, _ = self.literal()
        return Positive("=", value)

    def interval(self) -> Positive:
        _, opener, offset = self.take()
        low, low_at = self.literal()
        self.expect("..", "'..' between the ends of the range")
        high, _ = self.literal()
        kind, closer, close_at = self.take()
        if kind != "punct" or closer not in "])[":
            raise UnaryTestSyntaxError(
                f"expected ']', ')' or '[' closing the range, found {_describe(kind, closer)}",
                close_at,
            )
        for end in (low, high):
            if not isinstance(end, (int, float, str)) or isinstance(end, bool):
                raise UnaryTestSyntaxError(
                    f"the ends of a range are numbers or strings, not {json.dumps(end)}", low_at
                )
        if not comparable(low, high):
            raise UnaryTestSyntaxError("both ends of a range must be numbers or strings", low_at)
        low_closed = opener == "["
        high_closed = closer == "]"
        if low > high or (low == high and not (low_closed and high_closed)):
            raise UnaryTestSyntaxError("the range is empty: nothing can match it", offset)
        return Positive("range", low, high, low_closed, high_closed)

    def literal(self) -> tuple[Any, int]:
        kind, text, offset = self.take()
        if kind == "string":
            try:
                return json.loads(text), offset
            except json.JSONDecodeError:
                raise UnaryTestSyntaxError(f"invalid string {text}", offset) from None
        if kind == "number":
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return number, offset
        if kind == "word":
            if text in ("true", "false"):
                return text == "true", offset
            if text == "null":
                return None, offset
            if text == "not":
                raise UnaryTestSyntaxError("'not(...)' must be the whole test", offset)
            return text, offset
        raise UnaryTestSyntaxError(f"expected a value, found {_describe(kind, text)}", offset)


def _describe(kind: str, text: str) -> str:
    if kind == "end":
        return "the end of the test"
    return repr(text)
