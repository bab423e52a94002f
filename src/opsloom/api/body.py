"""Reading JSON request bodies whatever their declared content type.

``curl -d '{"approved": true}'`` sends JSON labelled as a form; operators type that, so bodies
are parsed as JSON from their bytes and a body that is not JSON is a 422 problem.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from opsloom.api.schema import StartRunBody
from opsloom.codec import JsonTextError, read_json


def _invalid_body(message: str, kind: str = "json_invalid") -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": message}])


async def json_body(request: Request) -> Any:
    """The request body as a JSON value; an empty body is ``None``."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return read_json(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise _invalid_body(f"the body is not valid JSON: {exc.msg} ({where})") from None
    except JsonTextError as exc:
        raise _invalid_body(f"the body is not accepted as JSON: {exc}") from None


M = TypeVar("M", bound=BaseModel)


def model_body(model: type[M], example: str = "{...}") -> Callable[[Request], Awaitable[M]]:
    """A dependency giving the body validated as ``model``.

    As a dependency (not a body parameter) it is read after the router's authentication:
    FastAPI reads body parameters before any dependency runs.
    """

    async def read(request: Request) -> M:
        value = await json_body(request)
        if value is None:
            raise _invalid_body(f"a JSON body like {example} is required", "missing")
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
            raise RequestValidationError(errors) from None

    return read


#: The body of ``POST /api/v1/runs``, validated.
start_run_body = model_body(StartRunBody, '{"workflow": "name", "input": ...}')


def body_doc(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its body with these functions."""
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}
