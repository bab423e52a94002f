"""Which jq expressions are provably cheap enough to evaluate in the worker's own process.

The jq binding holds the GIL while it runs, so an expression evaluated in process has no
deadline at all. Only expressions whose cost is bounded by the size of their input (times a
small constant) may run there; everything else goes to the killable helper process.

An expression is cheap when, after its string literals are removed:

- every word is a keyword or builtin of :data:`CHEAP_WORDS` (no ``reduce``, ``foreach``,
  ``as`` bindings, ``def``, ``range``, regular expressions …);
- it has no ``;`` (multi-argument builtins), no ``*`` (string repetition, deep merges), no
  ``..`` and no string interpolation;
- it has at most one generator (``[]`` iteration, ``map``, a comma outside an object or array
  constructor): two generators can combine into a product (``.[] + .[]``) whose size is the
  input's size squared, and more into any power of it.
"""

from __future__ import annotations

import re

#: Keywords and builtins whose cost is at most about linear in their input (one value out).
CHEAP_WORDS = frozenset(
    {
        "if", "then", "elif", "else", "end", "and", "or", "not", "null", "true", "false",
        "length", "utf8bytelength", "keys", "keys_unsorted", "has", "in", "select", "empty",
        "error", "tostring", "tonumber", "type", "ascii_downcase", "ascii_upcase", "tojson",
        "fromjson", "startswith", "endswith", "ltrimstr", "rtrimstr", "join", "add", "any",
        "all", "first", "last", "to_entries", "from_entries", "with_entries", "sort", "sort_by",
        "group_by", "unique", "unique_by", "min", "max", "min_by", "max_by", "reverse",
        "floor", "ceil", "round", "sqrt", "fabs", "abs", "values", "nulls", "booleans",
        "numbers", "strings", "arrays", "objects", "iterables", "scalars", "del", "getpath",
        "todate", "fromdate", "todateiso8601", "fromdateiso8601", "now", "flatten", "map",
        "map_values", "infinite", "nan", "isinfinite", "isnan", "isnormal", "env", "split",
        "try", "catch",
    }
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_WORD = re.compile(r"(?<![$.@\w])([A-Za-z_][A-Za-z0-9_]*)")
_KEY = re.compile(r"(?<=[{,])\s*[A-Za-z_][A-Za-z0-9_]*\s*:")
_ITERATION = re.compile(r"\[\s*\]")
_GENERATOR_WORDS = re.compile(r"(?<![$.@\w])(map|map_values)\b")


def provably_cheap(body: str) -> bool:
    """Whether the jq expression ``body`` (without ``${}``) is cheap by the rules above."""
    if "\\(" in body:
        return False  # string interpolation: code inside a literal
    code = _STRING.sub('""', body)
    if any(token in code for token in (";", "*", "..", "#")):
        return False
    code = _KEY.sub("", code)  # object keys written bare: {name: .x}
    if any(word not in CHEAP_WORDS for word in _WORD.findall(code)):
        return False
    generators = len(_ITERATION.findall(code)) + len(_GENERATOR_WORDS.findall(code))
    generators += _free_commas(code)
    return generators <= 1


def _free_commas(code: str) -> int:
    """Commas that make generators: those not directly inside ``{…}`` or ``[…]``."""
    stack: list[str] = []
    count = 0
    for char in code:
        if char in "([{":
            stack.append(char)
        elif char in ")]}":
            if stack:
                stack.pop()
        elif char == "," and (not stack or stack[-1] == "("):
            count += 1
    return count
