"""Runtime expressions: jq, compiled once and cached, without access to the process environment.

A document writes expressions as ``${ … }`` strings, and some fields (``if``, ``when``,
``input.from`` …) are expressions even without the ``${}`` wrapper. Variables (``$context``,
``$input``, ``$workflow`` …) reach jq through its input rather than as compile-time arguments,
so one compiled program serves every evaluation: the wrapped program reads ``[value, vars]``.

The jq binding runs C code holding the GIL, so an endless expression cannot be interrupted in
this process. Only expressions that are provably cheap (see :mod:`opsloom.expr.cost`: known
linear builtins, at most one generator) run in process, in microseconds; every other one, and
any that names a builtin that can loop or grow without bound (``range``, ``recurse``, ``until``,
user ``def``, regular expressions …), is evaluated in a killable helper process with a deadline
(see :mod:`opsloom.expr.sandbox`).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jq

from opsloom.expr.cost import provably_cheap
from opsloom.expr.problem import TaskError

#: Variables every expression may use; ``for`` and ``catch`` add their own names.
VARIABLES = ("context", "input", "output", "secrets", "task", "workflow", "runtime")
# jq's own variables, never taken from the document's scope.
_RESERVED = frozenset({"ENV", "__loc__", "__prog_args"})

# ``env``/``$ENV`` would expose the worker's environment (tokens, passwords): both are shadowed.
_PRELUDE = "def env: {}; {} as $ENV | "
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# Builtins that can run without bound on a small input, user functions (recursion), and the
# regular expression family (catastrophic backtracking).
_RISKY = re.compile(
    r"(?<![$.\w])(range|recurse|recurse_down|while|until|repeat|limit|def|combinations|walk|paths|"
    r"leaf_paths|test|match|capture|scan|splits|sub|gsub|ascii|implode|input|inputs|"
    r"tostream|fromstream|truncate_stream|pow|exp10|ldexp)\b|\.\."
)
_WRAPPED = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)

DEFAULT_TIMEOUT = 2.0


class ExpressionError(TaskError):
    """A runtime expression failed to compile or evaluate (standard type ``expression``)."""

    def __init__(self, detail: str, *, instance: str | None = None) -> None:
        super().__init__(
            "https://serverlessworkflow.io/spec/1.0.0/errors/expression",
            400,
            title="Expression error",
            detail=detail,
            instance=instance,
        )


class ExpressionTimeoutError(TaskError):
    """An expression ran past its deadline (standard type ``timeout``)."""

    def __init__(self, text: str, seconds: float) -> None:
        super().__init__(
            "https://serverlessworkflow.io/spec/1.0.0/errors/timeout",
            408,
            title="Expression timeout",
            detail=f"expression took longer than {seconds:g} s: {text[:200]}",
        )


def is_expression(value: Any) -> bool:
    """Whether ``value`` is a ``${ … }`` string."""
    return isinstance(value, str) and _WRAPPED.match(value) is not None


def strip(text: str) -> str:
    """The jq text of an expression, with or without its ``${ }`` wrapper."""
    match = _WRAPPED.match(text)
    return (match.group(1) if match else text).strip()


@dataclass(frozen=True, slots=True)
class Compiled:
    """One compiled expression and what it needs."""

    text: str
    program: Any  # jq._Program (the binding has no type information)
    variables: tuple[str, ...]
    risky: bool


class Evaluator:
    """Compiles, caches and evaluates jq expressions.

    Args:
        cache_size: how many compiled programs to keep (LRU).
        timeout: the deadline of one evaluation in the helper process, in seconds.
    """

    def __init__(self, cache_size: int = 2048, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.cache_size = cache_size
        self.timeout = timeout
        self._cache: OrderedDict[str, Compiled] = OrderedDict()
        self._sandbox: Any = None  # opsloom.expr.sandbox.Sandbox, created on first risky use

    def compile(self, text: str) -> Compiled:
        """Compile ``text`` (with or without ``${}``), from the cache when possible."""
        found = self._cache.get(text)
        if found is not None:
            self._cache.move_to_end(text)
            return found
        body = strip(text)
        # Only the variables an expression mentions are passed in; unknown ones are null, and a
        # name the expression binds itself (``. as $x``) shadows the passed one.
        names = tuple(sorted({n for n in _VARIABLE.findall(body) if n not in _RESERVED}))
        program_text = _program_text(body, names)
        try:
            program = jq.compile(program_text)
        except ValueError as exc:
            raise ExpressionError(f"invalid expression {body!r}: {_jq_message(exc)}") from None
        risky = _RISKY.search(body) is not None or not provably_cheap(body)
        compiled = Compiled(program_text, program, names, risky)
        self._cache[text] = compiled
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return compiled

    async def evaluate(
        self, text: str, value: Any, variables: Mapping[str, Any] | None = None
    ) -> Any:
        """Evaluate one expression over ``value``; the first result (``None`` if there is none)."""
        compiled = self.compile(text)
        args = _pick(compiled, variables)
        if compiled.risky:
            return await self._sandboxed(compiled, value, args)
        return run_program(compiled.program, value, args)

    async def _sandboxed(self, compiled: Compiled, value: Any, args: dict[str, Any]) -> Any:
        from opsloom.expr.sandbox import Sandbox

        if self._sandbox is None:
            self._sandbox = Sandbox()
        sandbox: Sandbox = self._sandbox
        return await sandbox.evaluate(compiled.text, value, args, self.timeout)

    async def close(self) -> None:
        """Stop the helper processes, if any were started."""
        if self._sandbox is not None:
            await self._sandbox.close()
            self._sandbox = None

    async def render(
        self, template: Any, value: Any, variables: Mapping[str, Any] | None = None
    ) -> Any:
        """Evaluate every ``${ }`` string found in ``template`` (objects and arrays, deeply)."""
        if isinstance(template, str):
            if is_expression(template):
                return await self.evaluate(template, value, variables)
            return template
        if isinstance(template, dict):
            return {
                key: await self.render(item, value, variables) for key, item in template.items()
            }
        if isinstance(template, list):
            return [await self.render(item, value, variables) for item in template]
        return template

    async def condition(
        self, text: Any, value: Any, variables: Mapping[str, Any] | None = None
    ) -> bool:
        """Evaluate a boolean field (``if``, ``when``): jq truthiness of its result."""
        if isinstance(text, bool):
            return text
        result = await self.evaluate(str(text), value, variables)
        return result is not None and result is not False


def _program_text(body: str, names: tuple[str, ...]) -> str:
    if not names:
        return f"{_PRELUDE}.[0] | ({body})"
    binding = ", ".join(f"${n}" for n in names)
    return f"{_PRELUDE}.[1] as {{{binding}}} | .[0] | ({body})"


def _pick(compiled: Compiled, variables: Mapping[str, Any] | None) -> dict[str, Any]:
    if not compiled.variables:
        return {}
    source = variables or {}
    return {name: source.get(name) for name in compiled.variables}


def run_program(program: Any, value: Any, args: dict[str, Any]) -> Any:
    """Run a compiled wrapped program in this process; the first result or ``None``."""
    try:
        results = program.input_text(json.dumps([value, args]))
        for result in results:
            return result
    except ValueError as exc:
        raise ExpressionError(_jq_message(exc)) from None
    except StopIteration:
        return None
    return None


def _jq_message(exc: Exception) -> str:
    return str(exc).replace("jq: error: ", "").strip() or type(exc).__name__
