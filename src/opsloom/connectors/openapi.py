"""Any API with an OpenAPI 3 or Swagger 2 document is a connector.

:func:`connector_from_spec` turns each operation into a typed action: the input model holds
the operation's path, query and header parameters (typed from their schemas) and ``body``
(checked against the request body's schema before anything is sent); the output is the status
and the JSON (or text) answer. The connection settings come from the document's security
schemes (bearer token, Basic credentials, an API key header or query parameter) plus
``base_url`` (default: the document's first server). The actions get the same connections,
retries, breakers, rate limits and redaction as a hand-written connector.

``opsloom connectors import NAME --openapi SPEC`` copies the document into the imported
connectors folder (``OPSLOOM_CONNECTORS_DIR``); :func:`imported_connectors` loads that folder,
so every process (API, workers) knows the same connectors.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from pydantic import BaseModel, Field, SecretStr, create_model

from opsloom.connectors.sdk import (
    Action,
    ActionContext,
    ConnectionSettings,
    Connector,
    Endpoint,
)
from opsloom.errors import ConfigurationError, ConnectorPermanentError

_METHODS = ("get", "post", "put", "patch", "delete")
_TYPES: dict[str, type] = {"integer": int, "number": float, "boolean": bool, "string": str}


class Answer(BaseModel):
    """What an imported operation returns: the HTTP status and the answer's body."""

    status: int
    body: Any = None


def snake(text: str) -> str:
    """``createIssue`` / ``create-issue`` / ``Create Issue`` → ``create_issue``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"[^a-zA-Z0-9]+", "_", text).strip("_").lower()


class _Spec:
    """A document read as OpenAPI 3 or Swagger 2, with ``$ref`` lookups."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.swagger = str(data.get("swagger", "")).startswith("2")
        if not self.swagger and not str(data.get("openapi", "")).startswith("3"):
            raise ConfigurationError("not an OpenAPI 3 or Swagger 2 document (no openapi/swagger)")

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 20:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise ConfigurationError(f"external reference {ref!r} is not supported")
            node = self.data
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
        return node

    def server(self) -> str:
        if self.swagger:
            scheme = (self.data.get("schemes") or ["https"])[0]
            host = self.data.get("host", "localhost")
            return f"{scheme}://{host}{self.data.get('basePath', '')}".rstrip("/")
        servers = self.data.get("servers") or [{"url": "http://localhost"}]
        url = str(servers[0]["url"])
        for name, variable in (servers[0].get("variables") or {}).items():
            url = url.replace("{" + name + "}", str(variable.get("default", "")))
        return url.rstrip("/")

    def schemes(self) -> dict[str, dict[str, Any]]:
        if self.swagger:
            found = self.data.get("securityDefinitions") or {}
        else:
            found = (self.data.get("components") or {}).get("securitySchemes") or {}
        return {name: self.resolve(scheme) for name, scheme in found.items()}

    def body_schema(
        self, op: dict[str, Any], params: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], str] | None:
        """The request body's schema and how it is sent (``json`` or ``form``)."""
        if self.swagger:
            for param in params:
                if param.get("in") == "body":
                    return dict(param.get("schema") or {}), "json"
            form = [p for p in params if p.get("in") == "formData"]
            if not form:
                return None
            properties = {
                p["name"]: {k: v for k, v in p.items() if k in ("type", "enum")} for p in form
            }
            required = [p["name"] for p in form if p.get("required")]
            return {"type": "object", "properties": properties, "required": required}, "form"
        body = self.resolve(op.get("requestBody") or {})
        content = body.get("content") or {}
        for media_type, kind in (
            ("application/json", "json"),
            ("application/x-www-form-urlencoded", "form"),
        ):
            if media_type in content:
                return dict(content[media_type].get("schema") or {}), kind
        return None

    def validator(self, schema: dict[str, Any]) -> Any:
        root = {**schema, "definitions": self.data.get("definitions", {})}
        root["components"] = self.data.get("components", {})
        if self.swagger:
            return jsonschema.Draft4Validator(root)
        return jsonschema.Draft202012Validator(root)


def _settings_model(name: str, spec: _Spec) -> type[ConnectionSettings]:
    fields: dict[str, Any] = {"base_url": (str, Field(default=spec.server()))}
    for scheme in spec.schemes().values():
        kind, where = scheme.get("type"), scheme.get("scheme", "")
        if (kind == "http" and where == "bearer") or kind == "oauth2":
            fields["token"] = (SecretStr | None, None)
        elif (kind == "http" and where == "basic") or kind == "basic":
            fields["username"] = (str | None, None)
            fields["password"] = (SecretStr | None, None)
        elif kind == "apiKey":
            fields["api_key"] = (SecretStr | None, None)
    model: type[ConnectionSettings] = create_model(
        f"{name.title()}Settings", __base__=ConnectionSettings, **fields
    )
    return model


def _endpoint_of(spec: _Spec) -> Any:
    schemes = list(spec.schemes().values())

    def endpoint(settings: Any) -> Endpoint:
        headers: dict[str, str] = {}
        redact: list[str] = []
        for scheme in schemes:
            kind, where = scheme.get("type"), scheme.get("scheme", "")
            token = getattr(settings, "token", None)
            if ((kind == "http" and where == "bearer") or kind == "oauth2") and token:
                headers["Authorization"] = f"Bearer {token.get_secret_value()}"
            password = getattr(settings, "password", None)
            if ((kind == "http" and where == "basic") or kind == "basic") and password:
                pair = f"{settings.username or ''}:{password.get_secret_value()}"
                credential = base64.b64encode(pair.encode()).decode()
                headers["Authorization"] = f"Basic {credential}"
                redact.append(credential)
            key = getattr(settings, "api_key", None)
            if kind == "apiKey" and key and scheme.get("in") == "header":
                headers[str(scheme["name"])] = key.get_secret_value()
        return Endpoint(settings.base_url, headers, redact=tuple(redact))

    return endpoint


def _param_type(spec: _Spec, param: dict[str, Any]) -> Any:
    schema = param if spec.swagger else spec.resolve(param.get("schema") or {})
    kind = schema.get("type")
    if kind == "array":
        item = _TYPES.get(str((spec.resolve(schema.get("items") or {})).get("type")), str)
        return list[item]  # type: ignore[valid-type]
    return _TYPES.get(str(kind), str)


def _action(
    connector: Connector[Any], spec: _Spec, path: str, method: str, op: dict[str, Any]
) -> None:
    raw = [*spec.data["paths"][path].get("parameters", []), *op.get("parameters", [])]
    params = [spec.resolve(p) for p in raw]
    fields: dict[str, Any] = {}
    places: dict[str, tuple[str, str]] = {}
    for param in params:
        where = param.get("in")
        if where not in ("path", "query", "header"):
            continue
        field_name = snake(str(param["name"])) or "value"
        if field_name in ("body", "connection"):
            field_name += "_"
        kind = _param_type(spec, param)
        required = bool(param.get("required")) or where == "path"
        description = str(param.get("description", ""))[:300]
        default = ... if required else None
        fields[field_name] = (
            kind if required else kind | None,
            Field(default, description=description),
        )
        places[field_name] = (str(where), str(param["name"]))
    found = spec.body_schema(op, params)
    validator = None
    body_kind = "json"
    if found is not None:
        body_schema, body_kind = found
        what = "JSON" if body_kind == "json" else "form fields"
        fields["body"] = (Any, Field(None, description=f"The request body ({what})."))
        validator = spec.validator(body_schema)
    name = snake(str(op.get("operationId") or f"{method}_{path}"))
    input_model: type[BaseModel] = create_model(f"{name.title().replace('_', '')}Input", **fields)
    doc = str(op.get("summary") or op.get("description") or f"{method.upper()} {path}").strip()

    async def run(ctx: ActionContext[Any], data: BaseModel) -> Answer:
        url = path
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for field_name, (where, original) in places.items():
            value = getattr(data, field_name)
            if value is None:
                continue
            if where == "path":
                url = url.replace("{" + original + "}", str(value))
            elif where == "query":
                query[original] = value
            else:
                headers[original] = str(value)
        body = getattr(data, "body", None)
        if validator is not None and body is not None:
            errors = list(validator.iter_errors(body))
            if errors:
                where = "/".join(str(p) for p in errors[0].absolute_path)
                raise ConnectorPermanentError(
                    f"body of {name} is invalid at /{where}: {errors[0].message}"
                )
        content: bytes | None = None
        form: dict[str, Any] | None = None
        if body is not None and body_kind == "form":
            if not isinstance(body, dict):
                raise ConnectorPermanentError(f"body of {name} must be an object of form fields")
            form = {k: _form_value(v) for k, v in body.items()}
        elif body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        response = await ctx.client.request(
            method.upper(),
            ctx.settings.base_url.rstrip("/") + url,
            params=query or None,
            headers=headers or None,
            content=content,
            data=form,
        )
        try:
            answer: Any = response.json() if response.content else None
        except ValueError:
            answer = response.text
        return Answer(status=response.status_code, body=answer)

    run.__doc__ = doc
    run.__name__ = name
    if name in connector.actions:
        raise ConfigurationError(f"two operations are both named {name!r}")
    connector.actions[name] = Action(connector, name, run, input_model, Answer)


def _form_value(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def connector_from_spec(
    name: str, data: dict[str, Any], operations: list[str] | None = None
) -> Connector[Any]:
    """A connector with one action per operation of an OpenAPI 3 / Swagger 2 document.

    Args:
        name: the connector's name.
        data: the document.
        operations: operationIds (or their snake_case names) to keep; all by default.

    Raises:
        ConfigurationError: the document is not OpenAPI 3 / Swagger 2, or names clash.
    """
    spec = _Spec(data)
    title = str((data.get("info") or {}).get("title") or name)
    connector: Connector[Any] = Connector(
        name,
        _settings_model(name, spec),
        title=title,
        endpoint=_endpoint_of(spec),
        version=str((data.get("info") or {}).get("version") or "1.0.0").split(" ")[0] or "1.0.0",
        doc=f"Imported from the OpenAPI document of {title}.",
    )
    wanted = None if operations is None else {snake(o) for o in operations}
    for path, item in (data.get("paths") or {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            op_name = snake(str(op.get("operationId") or f"{method}_{path}"))
            if wanted is not None and op_name not in wanted:
                continue
            _action(connector, spec, path, method, op)
    if wanted is not None and (missing := wanted - set(connector.actions)):
        raise ConfigurationError(f"the document has no operation {', '.join(sorted(missing))}")
    return connector


def imported_connectors(folder: Path) -> list[Connector[Any]]:
    """The connectors imported into ``folder`` (``<name>.json``: the document and operations)."""
    if not folder.is_dir():
        return []
    found = []
    for file in sorted(folder.glob("*.json")):
        try:
            saved = json.loads(file.read_text("utf-8"))
            found.append(connector_from_spec(file.stem, saved["spec"], saved.get("operations")))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"imported connector {file} cannot be read: {exc}") from None
    return found


def save_import(
    folder: Path, name: str, data: dict[str, Any], operations: list[str] | None
) -> Connector[Any]:
    """Check that the document makes a connector, then keep it in ``folder`` as ``name``."""
    connector = connector_from_spec(name, data, operations)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"spec": data, "operations": operations}
    (folder / f"{name}.json").write_text(json.dumps(payload), encoding="utf-8")
    return connector
