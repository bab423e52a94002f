"""Start forms built from a document's input schema: one field per property of simple type.

A schema whose input is an object of strings, numbers, integers and booleans (optionally with
``enum``) becomes labelled fields; anything else keeps the JSON text area. The submitted
fields are turned back into the input by the same schema, so a number arrives as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsloom.errors import InputError

SIMPLE = ("string", "number", "integer", "boolean")
PREFIX = "field."


@dataclass(frozen=True, slots=True)
class InputField:
    """One field of a start form."""

    name: str
    type: str
    required: bool
    description: str = ""
    choices: tuple[str, ...] = ()

    @property
    def form_name(self) -> str:
        return PREFIX + self.name


def input_schema(document: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema of a document's input (``input.schema.document``), if it has one."""
    schema = ((document.get("input") or {}).get("schema") or {}).get("document")
    return schema if isinstance(schema, dict) else None


def fields_of(schema: dict[str, Any] | None) -> list[InputField] | None:
    """The form fields of ``schema``, or None when it is not an object of simple properties."""
    if not schema or schema.get("type") != "object":
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    required = set(schema.get("required") or [])
    fields = []
    for name, spec in properties.items():
        if not isinstance(spec, dict) or spec.get("type") not in SIMPLE:
            return None
        choices = tuple(str(c) for c in spec.get("enum") or ())
        description = str(spec.get("description") or spec.get("title") or "")
        fields.append(InputField(name, spec["type"], name in required, description, choices))
    return fields


def _value(field: InputField, text: str) -> Any:
    if field.type == "boolean":
        return text in ("true", "on", "1")
    if field.type == "string":
        return text
    try:
        return int(text) if field.type == "integer" else float(text)
    except ValueError:
        kind = "an integer" if field.type == "integer" else "a number"
        raise InputError(f"{field.name} must be {kind}, not {text!r}") from None


def input_from(fields: list[InputField], form: dict[str, str]) -> dict[str, Any]:
    """The run input from the submitted fields; ``InputError`` names a missing or bad one."""
    value: dict[str, Any] = {}
    for field in fields:
        text = form.get(field.form_name, "").strip()
        if not text and field.type != "boolean":
            if field.required:
                raise InputError(f"{field.name} is required")
            continue
        value[field.name] = _value(field, text)
    return value
