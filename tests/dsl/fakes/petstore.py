"""A local stand-in for the Swagger Petstore v2 API (https://petstore.swagger.io/v2).

Follows the public API: pets with ``id``, ``category``, ``name``, ``photoUrls``, ``tags`` and
``status``; a missing pet answers 404 with the Petstore error body ``{code, type, message}``;
unknown routes answer 404 as the service does. ``/v2/swagger.json`` serves a Swagger 2.0
document of the operations implemented here, with the service's operationIds. Each app has
its own pets (seeded with ids 1 and 2 ``available``) and records the requests it receives in
``app.state.requests``.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

STATUSES = ("available", "pending", "sold")

SEED: list[dict[str, Any]] = [
    {
        "id": 1,
        "category": {"id": 1, "name": "Dogs"},
        "name": "Rex",
        "photoUrls": ["https://images.example.test/rex.jpg"],
        "tags": [{"id": 1, "name": "friendly"}],
        "status": "available",
    },
    {
        "id": 2,
        "category": {"id": 2, "name": "Cats"},
        "name": "Tom",
        "photoUrls": [],
        "tags": [],
        "status": "available",
    },
    {
        "id": 3,
        "category": {"id": 3, "name": "Fish"},
        "name": "Nemo",
        "photoUrls": [],
        "tags": [{"id": 2, "name": "small"}],
        "status": "pending",
    },
    {
        "id": 4,
        "category": {"id": 4, "name": "Birds"},
        "name": "Polly",
        "photoUrls": [],
        "tags": [],
        "status": "sold",
    },
]


def _error(status: int, code: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "type": kind, "message": message}, status_code=status)


def _pet_not_found() -> JSONResponse:
    return _error(404, 1, "error", "Pet not found")


def _number_format(raw: str) -> JSONResponse:
    # The service is a Java server: a non-numeric id fails while parsing the path.
    return _error(
        404, 404, "unknown", f'java.lang.NumberFormatException: For input string: "{raw}"'
    )


def make_petstore() -> Starlette:
    """A fresh Petstore fake (its own pets and request log)."""
    pets: dict[int, dict[str, Any]] = {pet["id"]: copy.deepcopy(pet) for pet in SEED}
    ids = itertools.count(9_223_372_000_000_000_000)
    requests: list[dict[str, Any]] = []

    async def record(request: Request) -> None:
        requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": str(request.url.query),
                "headers": dict(request.headers),
                "body": (await request.body()).decode("utf-8", errors="replace"),
            }
        )

    async def pet_by_id(request: Request) -> Response:
        await record(request)
        raw = request.path_params["pet_id"]
        try:
            pet_id = int(raw)
        except ValueError:
            return _number_format(raw)
        if request.method == "GET":
            pet = pets.get(pet_id)
            return JSONResponse(pet) if pet else _pet_not_found()
        if request.method == "DELETE":
            if pets.pop(pet_id, None) is None:
                return Response(status_code=404)
            return _error(200, 200, "unknown", str(pet_id))
        # POST: update with form data (name, status).
        pet = pets.get(pet_id)
        if pet is None:
            return _error(404, 404, "unknown", "not found")
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        for key in ("name", "status"):
            if key in form:
                pet[key] = form[key]
        return _error(200, 200, "unknown", str(pet_id))

    async def find_by_status(request: Request) -> Response:
        await record(request)
        wanted: list[str] = []
        for value in request.query_params.getlist("status"):
            wanted.extend(v.strip() for v in value.split(",") if v.strip())
        if not wanted or any(v not in STATUSES for v in wanted):
            return _error(400, 400, "unknown", "Invalid status value")
        return JSONResponse([pet for pet in pets.values() if pet["status"] in wanted])

    async def find_by_tags(request: Request) -> Response:
        await record(request)
        tags: set[str] = set()
        for value in request.query_params.getlist("tags"):
            tags.update(v.strip() for v in value.split(",") if v.strip())
        found = [p for p in pets.values() if tags & {t["name"] for t in p.get("tags", [])}]
        return JSONResponse(found)

    async def pet(request: Request) -> Response:
        await record(request)
        try:
            body = await request.json()
        except ValueError:
            return _error(405, 405, "unknown", "Invalid input")
        if not isinstance(body, dict) or not isinstance(body.get("name", ""), str):
            return _error(405, 405, "unknown", "Invalid input")
        if request.method == "POST":
            if not isinstance(body.get("id"), int) or body["id"] <= 0:
                body["id"] = next(ids)
            body.setdefault("photoUrls", [])
            body.setdefault("tags", [])
            pets[body["id"]] = body
            return JSONResponse(body)
        # PUT: update an existing pet.
        if not isinstance(body.get("id"), int):
            return _error(400, 400, "unknown", "Invalid ID supplied")
        if body["id"] not in pets:
            return _pet_not_found()
        pets[body["id"]].update(body)
        return JSONResponse(pets[body["id"]])

    async def inventory(request: Request) -> Response:
        await record(request)
        counts: dict[str, int] = {}
        for p in pets.values():
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        return JSONResponse(counts)

    async def swagger(request: Request) -> Response:
        await record(request)
        return JSONResponse(swagger_document())

    async def not_found(request: Request, exc: Exception) -> Response:
        await record(request)
        return _error(404, 404, "unknown", f"null for uri: {request.url}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        await record(request)
        return _error(405, 405, "unknown", "HTTP 405 Method Not Allowed")

    app = Starlette(
        routes=[
            Route("/v2/swagger.json", swagger, methods=["GET"]),
            Route("/v2/pet", pet, methods=["POST", "PUT"]),
            Route("/v2/pet/findByStatus", find_by_status, methods=["GET"]),
            Route("/v2/pet/findByTags", find_by_tags, methods=["GET"]),
            Route("/v2/pet/{pet_id}", pet_by_id, methods=["GET", "POST", "DELETE"]),
            Route("/v2/store/inventory", inventory, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )
    app.state.pets = pets
    app.state.requests = requests
    return app


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _pet_id(where: str, description: str) -> dict[str, Any]:
    return {
        "name": "petId",
        "in": where,
        "description": description,
        "required": True,
        "type": "integer",
        "format": "int64",
    }


def swagger_document() -> dict[str, Any]:
    """A Swagger 2.0 description of the operations this fake implements."""
    pet_body = {
        "in": "body",
        "name": "body",
        "description": "Pet object that needs to be added to the store",
        "required": True,
        "schema": _ref("Pet"),
    }
    media = ["application/json", "application/xml"]
    return {
        "swagger": "2.0",
        "info": {"title": "Swagger Petstore", "version": "1.0.7"},
        "host": "petstore.swagger.io",
        "basePath": "/v2",
        "schemes": ["https", "http"],
        "tags": [{"name": "pet"}, {"name": "store"}],
        "paths": {
            "/pet": {
                "post": {
                    "tags": ["pet"],
                    "summary": "Add a new pet to the store",
                    "operationId": "addPet",
                    "consumes": media,
                    "produces": media,
                    "parameters": [pet_body],
                    "responses": {"405": {"description": "Invalid input"}},
                },
                "put": {
                    "tags": ["pet"],
                    "summary": "Update an existing pet",
                    "operationId": "updatePet",
                    "consumes": media,
                    "produces": media,
                    "parameters": [pet_body],
                    "responses": {
                        "400": {"description": "Invalid ID supplied"},
                        "404": {"description": "Pet not found"},
                        "405": {"description": "Validation exception"},
                    },
                },
            },
            "/pet/findByStatus": {
                "get": {
                    "tags": ["pet"],
                    "summary": "Finds Pets by status",
                    "operationId": "findPetsByStatus",
                    "produces": media,
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "required": True,
                            "type": "array",
                            "items": {"type": "string", "enum": list(STATUSES)},
                            "collectionFormat": "multi",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "successful operation",
                            "schema": {"type": "array", "items": _ref("Pet")},
                        },
                        "400": {"description": "Invalid status value"},
                    },
                }
            },
            "/pet/findByTags": {
                "get": {
                    "tags": ["pet"],
                    "summary": "Finds Pets by tags",
                    "operationId": "findPetsByTags",
                    "produces": media,
                    "parameters": [
                        {
                            "name": "tags",
                            "in": "query",
                            "required": True,
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "multi",
                        }
                    ],
                    "responses": {"200": {"description": "successful operation"}},
                    "deprecated": True,
                }
            },
            "/pet/{petId}": {
                "get": {
                    "tags": ["pet"],
                    "summary": "Find pet by ID",
                    "operationId": "getPetById",
                    "produces": media,
                    "parameters": [_pet_id("path", "ID of pet to return")],
                    "responses": {
                        "200": {"description": "successful operation", "schema": _ref("Pet")},
                        "400": {"description": "Invalid ID supplied"},
                        "404": {"description": "Pet not found"},
                    },
                },
                "post": {
                    "tags": ["pet"],
                    "summary": "Updates a pet in the store with form data",
                    "operationId": "updatePetWithForm",
                    "consumes": ["application/x-www-form-urlencoded"],
                    "produces": media,
                    "parameters": [
                        _pet_id("path", "ID of pet that needs to be updated"),
                        {"name": "name", "in": "formData", "required": False, "type": "string"},
                        {"name": "status", "in": "formData", "required": False, "type": "string"},
                    ],
                    "responses": {"405": {"description": "Invalid input"}},
                },
                "delete": {
                    "tags": ["pet"],
                    "summary": "Deletes a pet",
                    "operationId": "deletePet",
                    "produces": media,
                    "parameters": [
                        {"name": "api_key", "in": "header", "required": False, "type": "string"},
                        _pet_id("path", "Pet id to delete"),
                    ],
                    "responses": {
                        "400": {"description": "Invalid ID supplied"},
                        "404": {"description": "Pet not found"},
                    },
                },
            },
            "/store/inventory": {
                "get": {
                    "tags": ["store"],
                    "summary": "Returns pet inventories by status",
                    "operationId": "getInventory",
                    "produces": ["application/json"],
                    "parameters": [],
                    "responses": {
                        "200": {
                            "description": "successful operation",
                            "schema": {
                                "type": "object",
                                "additionalProperties": {"type": "integer", "format": "int32"},
                            },
                        }
                    },
                }
            },
        },
        "definitions": {
            "Category": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "name": {"type": "string"},
                },
            },
            "Tag": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "name": {"type": "string"},
                },
            },
            "Pet": {
                "type": "object",
                "required": ["name", "photoUrls"],
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "category": _ref("Category"),
                    "name": {"type": "string", "example": "doggie"},
                    "photoUrls": {"type": "array", "items": {"type": "string"}},
                    "tags": {"type": "array", "items": _ref("Tag")},
                    "status": {"type": "string", "enum": list(STATUSES)},
                },
            },
            "ApiResponse": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "format": "int32"},
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    }
