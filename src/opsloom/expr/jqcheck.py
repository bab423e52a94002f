"""Compiling jq expressions of a document ahead of time, to report mistakes by position.

Runtime expressions are ``${ … }`` strings, or bare jq in the fields that are always
expressions (``if``, ``when``, ``for.in`` …). Each is compiled with the variables the runtime
will define, so ``$itme`` is caught as well as a syntax error.
"""

from __future__ import annotations

import functools
import re

import jq

#: Variables the runtime defines for every expression.
RUNTIME_VARIABLES = frozenset(
    {"context", "input", "output", "secrets", "task", "workflow", "runtime", "authorization"}
)

_EXPRESSION = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)


def expression_body(value: str) -> str | None:
    """The jq text inside ``${ … }``, or None when ``value`` is not a runtime expression."""
    match = _EXPRESSION.match(value)
    return match.group(1) if match else None


@functools.lru_cache(maxsize=4096)
def jq_problem(source: str, variables: frozenset[str]) -> str | None:
    """Why ``source`` does not compile as jq with ``variables`` defined, or None if it does."""
    if not source.strip():
        return "the expression is empty"
    try:
        jq.compile(source, args=dict.fromkeys(variables))
    except ValueError as exc:
        return _jq_message(str(exc))
    except Exception as exc:  # the binding may raise other errors for odd input
        return f"jq cannot compile it: {exc}"
    return None


def _jq_message(raw: str) -> str:
    """jq's first error line, with its location said relative to the expression."""
    lines = [line for line in raw.splitlines() if line.strip()]
    first = lines[0] if lines else raw
    first = first.removeprefix("jq: error: ").removeprefix("jq: error:").strip()
    first = re.sub(
        r" at <top-level>, line (\d+), column (\d+):?$",
        r" (at line \1, column \2 of the expression)",
        first,
    )
    first = re.sub(r" at <top-level>, line (\d+):?$", r" (at line \1 of the expression)", first)
    return first
