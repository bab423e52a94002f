"""Checking a document against the DSL's JSON Schema, with errors a person can act on.

The schema says "a task is one of twelve kinds" and "a call is one of seven shapes", so a raw
validator answers most mistakes with "is not valid under any of the given schemas". Here every
failed ``oneOf``/``anyOf`` is opened up: each branch is ranked by how well the instance fits it
(its type, its discriminating constants such as ``call: http``, the properties it requires and
the ones it does not know) and the error reported is the one inside the branch the author
evidently meant.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

# jsonschema ships no type information (the types-jsonschema stubs are not a dependency).
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
from ruamel.yaml import YAML

from opsloom.expr.diagnostic import kind_of, pointer

#: The DSL version whose schema is shipped with opsloom.
SCHEMA_VERSION = "1.0.3"
_SCHEMA_FILE = f"schema/workflow-{SCHEMA_VERSION}.yaml"

_BRANCHING = ("oneOf", "anyOf")
_UNKNOWN = ("unevaluatedProperties", "additionalProperties")
_DISCRIMINATING = ("const", "enum", "not", "false")


@functools.cache
def workflow_schema() -> dict[str, Any]:
    """The DSL's JSON Schema, as shipped inside the package (read once)."""
    text = resources.files("opsloom.dsl").joinpath(_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = YAML(typ="safe", pure=True).load(text)
    # CloudEvents makes `source` a URI reference, so an event's source may be relative (the
    # webhook sources' own `/hooks/alertmanager`); the shipped schema wants an absolute URI.
    source = schema["$defs"]["eventProperties"]["properties"]["source"]
    source["oneOf"].append(
        {"title": "RelativeEventSource", "type": "string", "pattern": "^/[^\\s]*$"}
    )
    return schema


@functools.cache
def workflow_validator() -> Draft202012Validator:
    """A validator for the DSL schema, built once (building it resolves every ``$ref``)."""
    schema = workflow_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(data: Any) -> list[tuple[str, str]]:
    """Validate ``data`` and return ``(json_pointer, message)`` for each distinct mistake."""
    errors = list(workflow_validator().iter_errors(data))
    # A failed oneOf leaves its properties unevaluated, so the surrounding object also
    # complains about every one of them; that complaint only repeats the oneOf failure.
    branching_at = {tuple(e.absolute_path) for e in errors if e.validator in _BRANCHING}
    found: list[tuple[str, str]] = []
    for error in errors:
        if error.validator in _UNKNOWN and tuple(error.absolute_path) in branching_at:
            continue
        for leaf in _explain(error):
            if leaf not in found:
                found.append(leaf)
    return found


# --- choosing the branch the author meant ---------------------------------------------------


def _depth(error: ValidationError) -> int:
    """How far below the branching point the deepest failure of ``error`` lies."""
    own = len(error.relative_path)
    if error.context:
        return own + max(_depth(child) for child in error.context)
    return own


def _branches(error: ValidationError) -> dict[int, list[ValidationError]]:
    groups: dict[int, list[ValidationError]] = defaultdict(list)
    for child in error.context or ():
        index = child.relative_schema_path[0] if child.relative_schema_path else 0
        groups[int(index)].append(child)
    return groups


def _misfit(errors: Sequence[ValidationError]) -> tuple[int, int, int, int, int]:
    """How badly an instance fits a branch, given the branch's errors (smaller is better).

    In order: the instance has another type than the branch wants; a discriminating value
    (``call: http``, an enum) differs; required properties are missing or unknown ones are
    present; then shallower failures and more failures rank worse.
    """
    wrong_type = 0
    discriminating = 0
    structure = 0
    for error in errors:
        at_root = len(error.relative_path) == 0
        if error.validator == "type" and at_root:
            wrong_type += 1
        elif error.validator in _DISCRIMINATING and len(error.relative_path) <= 1:
            discriminating += 1
        elif error.validator == "required" and at_root:
            structure += 1
        elif error.validator in _UNKNOWN and at_root:
            structure += len(_unknown_names(error))
        elif error.validator in _BRANCHING and at_root and error.context:
            best = min(_misfit(group) for group in _branches(error).values())
            wrong_type += best[0]
            discriminating += best[1]
            structure += best[2]
    deepest = max((_depth(error) for error in errors), default=0)
    return (wrong_type, discriminating, structure, -deepest, len(errors))


def _explain(error: ValidationError) -> list[tuple[str, str]]:
    """The readable ``(pointer, message)`` pairs that ``error`` comes down to."""
    if error.validator in _BRANCHING and error.context:
        kindless = _kindless_task(error)
        if kindless is not None:
            return [kindless]
        groups = _branches(error)
        ranked = sorted(groups.items(), key=lambda item: (_misfit(item[1]), item[0]))
        _, best_errors = ranked[0]
        if _misfit(best_errors)[0]:
            # The value has a type no form accepts: say which types would do.
            wanted = _root_types([e for errs in groups.values() for e in errs])
            if wanted:
                expected = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
                message = f"expected {expected}, got {kind_of(error.instance, integers=True)}"
                return [(pointer(list(error.absolute_path)), message)]
        tied = [index for index, errs in ranked if _misfit(errs) == _misfit(best_errors)]
        everything_at_root = all(
            _depth(e) == 0 for index in tied for e in groups[index] if e.validator != "required"
        )
        if len(tied) > 1 and everything_at_root:
            return [(pointer(list(error.absolute_path)), _alternatives(error, tied))]
        out: list[tuple[str, str]] = []
        for child in best_errors:
            for leaf in _explain(child):
                if leaf not in out:
                    out.append(leaf)
        return out or [(pointer(list(error.absolute_path)), _message(error))]
    if error.validator in _UNKNOWN:
        base = list(error.absolute_path)
        return [
            (pointer([*base, name]), f"unknown property {name!r}{_known_hint(error)}")
            for name in _unknown_names(error)
        ]
    return [(pointer(list(error.absolute_path)), _message(error))]


_TASK_KINDS = "call, do, emit, for, fork, listen, raise, run, set, switch, try, wait"


def _kindless_task(error: ValidationError) -> tuple[str, str] | None:
    """A task mapping with none of the keys that give a task its kind, said plainly."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if schema.get("title") != "Task" or not isinstance(instance, dict):
        return None
    if any(key in instance for key in _TASK_KINDS.split(", ")):
        return None
    keys = ", ".join(repr(key) for key in instance) or "no keys"
    return (
        pointer(list(error.absolute_path)),
        f"not a task: it has {keys} but needs exactly one of {_TASK_KINDS}",
    )


def _root_types(errors: Iterable[ValidationError]) -> list[str]:
    """The JSON types wanted by ``type`` failures at the branching point, in schema order."""
    found: list[str] = []
    for error in errors:
        if error.relative_path:
            continue
        if error.validator == "type":
            value = error.validator_value
            for name in value if isinstance(value, list) else [value]:
                if str(name) not in found:
                    found.append(str(name))
        elif error.validator in _BRANCHING and error.context:
            for name in _root_types(error.context):
                if name not in found:
                    found.append(name)
    return found


def _unknown_names(error: ValidationError) -> list[str]:
    """The properties an ``unevaluatedProperties``/``additionalProperties`` error is about.

    A property that failed inside an ``allOf`` part is also reported as "unevaluated" by the
    schema around it; only names the schema declares nowhere are really unknown.
    """
    instance = error.instance
    if not isinstance(instance, dict):
        return []
    schema = error.schema if isinstance(error.schema, dict) else {}
    declared = _declared(schema)
    if error.validator == "additionalProperties":
        patterns = schema.get("patternProperties") or {}
        if patterns:
            return [name for name in instance if repr(name) in error.message]
        return [name for name in instance if name not in declared]
    return [name for name in instance if name not in declared and repr(name) in error.message]


def _resolve(ref: str) -> Any:
    if not ref.startswith("#/"):
        return {}
    node: Any = workflow_schema()
    for token in ref[2:].split("/"):
        if not isinstance(node, dict):
            return {}
        node = node.get(token.replace("~1", "/").replace("~0", "~"), {})
    return node


def _declared(schema: Any, seen: set[int] | None = None) -> set[str]:
    """Every property name a schema declares, through ``$ref``, ``allOf``, ``oneOf``…"""
    seen = set() if seen is None else seen
    if not isinstance(schema, dict) or id(schema) in seen:
        return set()
    seen.add(id(schema))
    names = set(_property_names(schema))
    ref = schema.get("$ref")
    if isinstance(ref, str):
        names |= _declared(_resolve(ref), seen)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(keyword) or ():
            names |= _declared(part, seen)
    for keyword in ("if", "then", "else"):
        names |= _declared(schema.get(keyword), seen)
    return names


def _property_names(schema: dict[str, Any]) -> Iterable[str]:
    properties = schema.get("properties")
    if isinstance(properties, dict):
        yield from properties


def _known_hint(error: ValidationError) -> str:
    names = sorted(_declared(error.schema))
    if names and len(names) <= 12:
        return f" (expected one of: {', '.join(names)})"
    return ""


def _alternatives(error: ValidationError, indexes: list[int]) -> str:
    branches = error.schema.get(error.validator, []) if isinstance(error.schema, dict) else []
    names: list[str] = []
    for index in indexes:
        branch = branches[index] if index < len(branches) else {}
        names.append(_branch_name(branch))
    value = _show(error.instance)
    return f"{value} is not valid here; expected one of: {', '.join(names)}"


def _branch_name(branch: Any) -> str:
    if not isinstance(branch, dict):
        return "a valid value"
    title = branch.get("title")
    ref = branch.get("$ref")
    if isinstance(ref, str) and ref.endswith("/runtimeExpression"):
        return "a runtime expression '${ … }'"
    if isinstance(title, str):
        return _BRANCH_NAMES.get(title) or _words(title)
    if isinstance(ref, str):
        return _words(ref.rsplit("/", 1)[-1])
    if "type" in branch:
        return _TYPE_NAMES.get(str(branch["type"]), str(branch["type"]))
    return "a valid value"


_BRANCH_NAMES = {
    "DurationLiteral": "an ISO 8601 duration such as 'PT30S'",
    "DurationInline": "a mapping such as {seconds: 30}",
}


def _words(title: str) -> str:
    """``DurationLiteral`` -> ``duration literal``: schema titles read as words."""
    out: list[str] = []
    previous = ""
    for char in title:
        if char.isupper() and previous.islower():
            out.append(" ")
        out.append(char.lower())
        previous = char
    return "".join(out)


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else kind_of(value, integers=True)
    return text if len(text) <= 60 else text[:57] + "...'"


def _message(error: ValidationError) -> str:
    validator = error.validator
    value = error.validator_value
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    title = schema.get("title")
    if validator == "required":
        missing = [name for name in value if isinstance(instance, dict) and name not in instance]
        names = ", ".join(repr(name) for name in missing) or repr(value)
        return f"missing required property {names}"
    if validator == "type":
        wanted = value if isinstance(value, list) else [value]
        expected = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in wanted)
        return f"expected {expected}, got {kind_of(instance, integers=True)}"
    if validator == "enum":
        return f"{_show(instance)} is not allowed; expected one of: {', '.join(map(str, value))}"
    if validator == "const":
        return f"expected {value!r}, got {_show(instance)}"
    if validator == "pattern":
        what = _words(title) if isinstance(title, str) else "value"
        if isinstance(title, str) and title == "RuntimeExpression":
            return f"{_show(instance)} is not a runtime expression; write it as '${{ … }}'"
        return f"{_show(instance)} is not a valid {what} (must match {value})"
    if validator == "not":
        if isinstance(value, dict) and "enum" in value:
            return f"{_show(instance)} is reserved here"
        return f"{_show(instance)} is not allowed here"
    if validator in ("minProperties", "minItems") and value == 1:
        return "must not be empty"
    if validator in ("minProperties", "minItems"):
        return f"must have at least {value} {'entries' if validator == 'minItems' else 'keys'}"
    if validator == "maxProperties" and value == 1:
        names = ", ".join(map(repr, instance)) if isinstance(instance, dict) else ""
        return f"must have exactly one key, got {names}"
    if validator in ("maxProperties", "maxItems"):
        return f"must have at most {value} {'entries' if validator == 'maxItems' else 'keys'}"
    if validator in ("minimum", "maximum"):
        bound = "below the minimum" if validator == "minimum" else "above the maximum"
        return f"{instance!r} is {bound} {value}"
    if validator == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if validator is None or validator == "false":
        return "is not allowed here"
    if validator == "oneOf" and not error.context:
        forms = ", ".join(_branch_name(branch) for branch in value)
        return f"{_show(instance)} matches more than one form ({forms}); keep only one"
    if validator in _BRANCHING:
        return f"{_show(instance)} matches none of the allowed forms"
    return str(error.message)
