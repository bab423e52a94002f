"""Values between Python and the JSON opsloom stores, like Temporal's default data converter.

Arguments and results are stored as JSON. Dataclasses, pydantic models, enums and datetimes
become JSON on the way in; on the way out they are rebuilt from the type hints of the function
that receives them (a workflow's ``run``, a signal handler, an activity's return type), as
``temporalio`` does.

Most values are plain JSON already (numbers, strings, lists and dicts of them) and most hints
name types JSON keeps (``int``, ``str``, ``list[str]``…): both cases are told apart once and
cost no conversion (:func:`converts` is cached per hint).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

#: Types whose values are JSON as they are.
SCALARS = frozenset({type(None), bool, int, float, str})


def to_json(value: Any) -> Any:
    """``value`` as plain JSON types."""
    if type(value) in SCALARS or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a pydantic model
        return dump(mode="json")
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(item) for item in value]
    return value


def from_json(value: Any, hint: Any) -> Any:
    """``value`` (JSON) as the type ``hint`` names, where it names one that JSON loses."""
    if value is None or not converts(hint):
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return from_json(value, options[0]) if len(options) == 1 else value
    if origin in (list, Sequence, tuple, set, frozenset) and isinstance(value, list):
        args = typing.get_args(hint)
        item = args[0] if args else None
        items = [from_json(entry, item) for entry in value]
        return tuple(items) if origin is tuple else (set(items) if origin is set else items)
    if origin is dict and isinstance(value, dict):
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else None
        return {key: from_json(entry, item) for key, entry in value.items()}
    if not isinstance(hint, type):
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = typing.get_type_hints(hint)
        known = {f.name for f in dataclasses.fields(hint)}
        return hint(
            **{key: from_json(item, hints.get(key)) for key, item in value.items() if key in known}
        )
    validate = getattr(hint, "model_validate", None)
    if callable(validate):
        return validate(value)
    if issubclass(hint, Enum):
        return hint(value)
    if issubclass(hint, datetime) and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def converts(hint: Any) -> bool:
    """Whether :func:`from_json` may change a value for ``hint`` (False: it returns it as is)."""
    if hint is None or hint is Any:
        return False
    try:
        return _converts(hint)
    except TypeError:  # an unhashable hint: convert to be sure
        return True


@functools.lru_cache(maxsize=1024)
def _converts(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        return len(options) == 1 and converts(options[0])
    if origin in (tuple, set):  # a JSON list becomes a tuple or a set
        return True
    if origin in (list, Sequence, frozenset):
        return bool(args) and converts(args[0])
    if origin is dict:
        return len(args) == 2 and converts(args[1])
    if not isinstance(hint, type):
        return False
    return (
        dataclasses.is_dataclass(hint)
        or callable(getattr(hint, "model_validate", None))
        or issubclass(hint, Enum | datetime)
    )


@functools.lru_cache(maxsize=1024)
def parameter_hints(fn: Callable[..., Any], *, method: bool) -> tuple[Any, ...]:
    """The type hints of ``fn``'s positional parameters (``self`` left out of a method)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: no conversion
        hints = {}
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if method:
        params = params[1:]
    return tuple(hints.get(p.name) for p in params)


@functools.lru_cache(maxsize=1024)
def return_hint(fn: Callable[..., Any] | None) -> Any:
    """The declared return type of ``fn`` (None when not declared or not resolvable)."""
    if fn is None:
        return None
    try:
        return typing.get_type_hints(fn).get("return")
    except Exception:
        return None


def args_from_json(values: Sequence[Any], hints: Sequence[Any]) -> list[Any]:
    """Positional arguments rebuilt from JSON by their parameters' hints."""
    if not hints or not any(converts(hint) for hint in hints):
        return list(values)
    return [
        from_json(value, hints[index] if index < len(hints) else None)
        for index, value in enumerate(values)
    ]


def call_args(arg: Any, args: Sequence[Any], *, unset: Any) -> list[Any]:
    """Temporal's ``(arg, args=[...])`` pair as one list of JSON arguments."""
    if arg is not unset and args:
        raise TypeError("give either a single arg or args=[...], not both")
    values = list(args) if arg is unset else [arg]
    return [value if value.__class__ in SCALARS else to_json(value) for value in values]
