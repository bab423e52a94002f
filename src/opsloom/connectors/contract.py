"""Vendor contracts: check a request against a vendor's published spec or documentation.

- :class:`OpenApiContract`: OpenAPI 3.x through ``openapi-core`` (path, parameters, security,
  body);
- :class:`JsonSchemaContract`: OpenAPI 3.1 with ``jsonschema`` alone, for documents whose
  OpenAPI-only keywords ``openapi-core`` cannot read;
- :class:`SwaggerContract`: Swagger 2.0 (path, method, parameters, body) with ``jsonschema``;
- :class:`DocumentedContract`: vendors without a published spec, from their documentation.

Specs are read as published and never changed. ``openapi-core`` is a development dependency,
imported only when an OpenAPI contract is made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from opsloom.connectors.testing import FakeRequest


class Contract:
    """Checks a request against a vendor spec; returns problems (empty: it conforms)."""

    def check(self, request: FakeRequest) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError


def load_spec(path: Path) -> dict[str, Any]:
    """A JSON or YAML spec file as data (never changed on disk)."""
    text = path.read_text("utf-8")
    if path.suffix == ".json":
        data: dict[str, Any] = json.loads(text)
        return data
    from ruamel.yaml import YAML

    loaded: dict[str, Any] = YAML(typ="safe").load(text)
    return loaded


class OpenApiContract(Contract):
    """An OpenAPI 3.x spec, checked with ``openapi-core``.

    Args:
        spec: the spec as data.
        server: the spec's server URL the fake stands in for (default: its first one); a
            request path is taken relative to it.
        formats: checks of string formats the vendor defines (Discord's ``snowflake``).
    """

    def __init__(
        self,
        spec: dict[str, Any],
        server: str | None = None,
        formats: Mapping[str, Callable[[Any], bool]] | None = None,
    ) -> None:
        from openapi_core import Config, OpenAPI

        self.server = (server or spec["servers"][0]["url"]).rstrip("/")
        # The vendor's document is taken as published: checking the document itself takes
        # minutes for large ones (GitHub's) and is not what these fakes are for.
        config = Config(
            spec_validator_cls=None,
            extra_format_validators=dict(formats or {}),
            extra_format_unmarshallers={name: str for name in formats or {}},
        )
        self.api = OpenAPI.from_dict(spec, config=config)

    def check(self, request: FakeRequest) -> list[str]:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        base = urlsplit(self.server)
        if base.path and request.path.startswith(base.path + "/"):
            full = f"{base.scheme}://{base.netloc}{request.path}"  # the fake serves the prefix
        else:
            full = self.server + request.path
        parts = urlsplit(full)

        class _Request:
            host_url = f"{parts.scheme}://{parts.netloc}"
            path = parts.path
            full_url_pattern = full
            method = request.method.lower()
            parameters = RequestParameters(
                query=ImmutableMultiDict(
                    [(k, v) for k, values in request.query.items() for v in values]
                ),
                header=Headers(list(request.headers.items())),
            )
            content_type = request.headers.get("content-type", "")
            body = request.body or None

        result = self.api.unmarshal_request(_Request())
        return [_describe(error) for error in result.errors]


class JsonSchemaContract(Contract):
    """An OpenAPI 3.1 spec checked with ``jsonschema`` alone: operation, required query
    parameters and the JSON body against the operation's schema.

    For documents whose OpenAPI-only keywords trip ``openapi-core`` (OpenAI's discriminator
    mappings by short name); JSON Schema validation ignores ``discriminator`` and checks the
    ``oneOf`` branches instead.
    """

    def __init__(self, spec: dict[str, Any], server: str | None = None) -> None:
        self.spec = spec
        self.prefix = urlsplit(server or spec["servers"][0]["url"]).path.rstrip("/")
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", p) + "$"), p)
            for p in spec.get("paths", {})
        ]

    def check(self, request: FakeRequest) -> list[str]:
        path = request.path.removeprefix(self.prefix)
        for pattern, template in self._paths:
            op = self.spec["paths"][template].get(request.method.lower())
            if op is not None and pattern.match(path):
                break
        else:
            return [f"{request.method} {request.path} is not an operation of the spec"]
        problems = [
            f"required query parameter {p['name']!r} is missing"
            for p in op.get("parameters", [])
            if p.get("in") == "query" and p.get("required") and p["name"] not in request.query
        ]
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media is not None:
            try:
                body = request.json
            except ValueError:
                return [*problems, "the body is not JSON"]
            schema = {**media.get("schema", {}), "components": self.spec.get("components", {})}
            validator = jsonschema.Draft202012Validator(schema)
            problems += [
                f"body at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                for e in validator.iter_errors(body)
            ][:5]
        return problems


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    for inner in getattr(error, "schema_errors", ()) or ():
        path = "/".join(str(p) for p in getattr(inner, "absolute_path", ()))
        text += f"; at /{path}: {getattr(inner, 'message', inner)}"
    cause = error.__cause__
    if cause is not None and cause is not error:
        text += f" ({_describe(cause)})"
    return text


class SwaggerContract(Contract):
    """A Swagger 2.0 spec: operation, parameters (path, query, header, formData) and body.

    Args:
        spec: the spec as data.
        header_aliases: spec header names satisfied by another header the vendor documents
            (the Slack spec names a ``token`` header where Slack's docs send
            ``Authorization: Bearer``).
    """

    def __init__(
        self, spec: dict[str, Any], header_aliases: Mapping[str, str] | None = None
    ) -> None:
        self.spec = spec
        self.base = str(spec.get("basePath", "")).rstrip("/")
        self.aliases = {k.lower(): v.lower() for k, v in (header_aliases or {}).items()}
        self._paths = [
            (re.compile("^" + re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", p) + "$"), p)
            for p in spec.get("paths", {})
        ]

    def operation(self, method: str, path: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The operation a request is for, and its path parameters."""
        if self.base and path.startswith(self.base):
            path = path[len(self.base) :]
        for pattern, template in self._paths:
            found = pattern.match(path)
            if found:
                item = self.spec["paths"][template]
                op = item.get(method.lower())
                if op is None:
                    continue
                params = [*item.get("parameters", []), *op.get("parameters", [])]
                return {**op, "parameters": params}, found.groupdict()
        return None

    def check(self, request: FakeRequest) -> list[str]:
        found = self.operation(request.method, request.path)
        if found is None:
            return [f"{request.method} {request.path} is not an operation of the spec"]
        op, path_params = found
        problems: list[str] = []
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        consumes = op.get("consumes", self.spec.get("consumes", []))
        form = request.form if content_type == "application/x-www-form-urlencoded" else {}
        if content_type == "application/json" and request.body:
            form = {}
        for raw in op["parameters"]:
            param = self._resolve(raw)
            name, where = param["name"], param["in"]
            value: Any
            if where == "body":
                if param.get("required") and not request.body:
                    problems.append("the request has no body")
                elif request.body:
                    problems += self._schema(param.get("schema", {}), request.json, "body")
                continue
            if where == "path":
                value = path_params.get(name)
            elif where == "query":
                values = request.query.get(name)
                value = values[-1] if values else None
            elif where == "header":
                value = request.headers.get(name.lower())
                alias = self.aliases.get(name.lower())
                if value is None and alias is not None:
                    value = request.headers.get(alias)
            else:  # formData
                value = form.get(name)
                if value is None and content_type == "application/json" and request.body:
                    body = request.json
                    value = body.get(name) if isinstance(body, dict) else None
            if value is None:
                if param.get("required"):
                    problems.append(f"required {where} parameter {name!r} is missing")
                continue
            problems += self._scalar(param, value, f"{where} parameter {name!r}")
        if request.body and consumes and content_type not in consumes:
            problems.append(f"content type {content_type!r} is not one of {consumes}")
        return problems

    def _resolve(self, param: dict[str, Any]) -> dict[str, Any]:
        ref = param.get("$ref")
        if ref is None:
            return param
        name = ref.rsplit("/", 1)[-1]
        resolved: dict[str, Any] = self.spec["parameters"][name]
        return resolved

    def _scalar(self, param: dict[str, Any], value: Any, what: str) -> list[str]:
        kind = param.get("type")
        if isinstance(value, str) and kind in ("integer", "number", "boolean"):
            converted: Any = value
            try:
                if kind == "integer":
                    converted = int(value)
                elif kind == "number":
                    converted = float(value)
                elif value not in ("true", "false", "1", "0"):
                    return [f"{what} is not a boolean: {value!r}"]
                else:
                    return []
            except ValueError:
                return [f"{what} is not {kind}: {value!r}"]
            value = converted
        if kind == "array" and isinstance(value, str):
            value = value.split(",")
        schema = {k: v for k, v in param.items() if k not in ("name", "in", "required")}
        schema.pop("description", None)
        schema.pop("collectionFormat", None)
        return self._schema(schema, value, what)

    def _schema(self, schema: dict[str, Any], value: Any, what: str) -> list[str]:
        document = {**schema, "definitions": self.spec.get("definitions", {})}
        validator = jsonschema.Draft4Validator(document)
        return [
            f"{what} at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(value)
        ][:5]


@dataclass(frozen=True, slots=True)
class Rule:
    """What a vendor's documentation says one operation takes.

    Attributes:
        method / path: the operation (``{name}`` parts match one path segment).
        body: JSON Schema of the JSON body (``None``: no body is checked).
        headers: header names that must be present, with a regular expression each value
            must match.
    """

    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class DocumentedContract(Contract):
    """For vendors without a published spec: the operations their documentation describes."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = [
            (r, re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", r.path) + "$")) for r in rules
        ]

    def check(self, request: FakeRequest) -> list[str]:
        for rule, pattern in self.rules:
            if rule.method == request.method and pattern.match(request.path):
                break
        else:
            return [f"{request.method} {request.path} is not a documented operation"]
        problems = []
        for name, expected in rule.headers.items():
            value = request.headers.get(name.lower())
            if value is None or not re.match(expected, value):
                problems.append(f"header {name} is {value!r}, expected /{expected}/")
        if rule.body is not None:
            try:
                body = request.json
            except ValueError:
                return [*problems, "the body is not JSON"]
            validator = jsonschema.Draft202012Validator(rule.body)
            problems += [
                f"body at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                for e in validator.iter_errors(body)
            ]
        return problems


def spec_example(spec: dict[str, Any], path: str, method: str, status: str = "200") -> Any:
    """The JSON example a spec gives for an operation's answer (Swagger 2 or OpenAPI 3)."""
    answer = spec["paths"][path][method.lower()]["responses"][status]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    if "examples" in answer and "application/json" in answer["examples"]:
        return answer["examples"]["application/json"]
    media = answer.get("content", {}).get("application/json", {})
    if "example" in media:
        return media["example"]
    for example in media.get("examples", {}).values():
        if "$ref" in example:
            example = spec["components"]["examples"][example["$ref"].rsplit("/", 1)[-1]]
        if "value" in example:
            return example["value"]
    raise KeyError(f"the spec gives no JSON example for {method} {path} {status}")
