"""Start forms from input schemas: which schemas make fields, and the input they give back."""

from __future__ import annotations

import pytest

from opsloom.errors import InputError
from opsloom.web.inputform import fields_of, input_from

SCHEMA = {
    "type": "object",
    "required": ["host", "usage"],
    "properties": {
        "host": {"type": "string", "description": "Host name"},
        "usage": {"type": "number"},
        "retries": {"type": "integer"},
        "dry_run": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["fast", "safe"]},
    },
}


def test_fields__only_objects_of_simple_properties() -> None:
    fields = fields_of(SCHEMA)
    assert fields is not None
    assert [(f.name, f.type, f.required) for f in fields][:2] == [
        ("host", "string", True),
        ("usage", "number", True),
    ]
    assert fields[4].choices == ("fast", "safe")
    assert fields_of({"type": "array"}) is None
    assert fields_of({"type": "object", "properties": {"x": {"type": "object"}}}) is None
    assert fields_of(None) is None


def test_input__typed_by_the_schema_and_missing_fields_named() -> None:
    fields = fields_of(SCHEMA)
    assert fields is not None
    form = {"field.host": "web-1", "field.usage": "93.5", "field.retries": "2"}
    assert input_from(fields, form) == {
        "host": "web-1",
        "usage": 93.5,
        "retries": 2,
        "dry_run": False,
    }
    with pytest.raises(InputError, match="usage is required"):
        input_from(fields, {"field.host": "web-1"})
    with pytest.raises(InputError, match="retries must be an integer"):
        input_from(fields, {**form, "field.retries": "two"})
