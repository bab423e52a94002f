"""``call: openapi`` on the Petstore's Swagger 2.0 document and an OpenAPI 3 fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import Fakes, fake_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from opsloom.dsl.auth import AuthResolver
from opsloom.dsl.http import http_client
from opsloom.dsl.openapi import DocumentCache, call_openapi
from opsloom.expr.problem import TaskError, type_matches

SWAGGER = "https://petstore.swagger.io/v2/swagger.json"
OPENAPI3 = Path(__file__).parent / "fakes" / "httpbin-openapi3.yaml"


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
async def client(fakes: Fakes) -> AsyncIterator[httpx.AsyncClient]:
    async with fake_http_client(fakes) as c:
        yield c


@pytest.fixture
def auth(client: httpx.AsyncClient) -> AuthResolver:
    return AuthResolver({}, {}, client)


async def op(
    client: httpx.AsyncClient,
    auth: AuthResolver,
    operation: str,
    document: Any = SWAGGER,
    documents: DocumentCache | None = None,
    **args: Any,
) -> Any:
    return await call_openapi(
        {"document": {"endpoint": document}, "operationId": operation, **args},
        input={},
        auth=auth,
        client=client,
        documents=documents if documents is not None else DocumentCache(),
    )


def requests_to(fakes: Fakes, path: str) -> list[dict[str, Any]]:
    return [r for r in fakes.petstore.state.requests if r["path"] == path]


# --- Swagger 2.0 (Petstore) ----------------------------------------------------------------


async def test_swagger__query_array_is_sent_as_multi(
    client: httpx.AsyncClient, auth: AuthResolver, fakes: Fakes
) -> None:
    pets = await op(
        client, auth, "findPetsByStatus", parameters={"status": ["available", "pending"]}
    )
    assert sorted(p["id"] for p in pets) == [1, 2, 3]
    [sent] = requests_to(fakes, "/v2/pet/findByStatus")
    assert sent["query"] == "status=available&status=pending"
    assert sent["headers"]["accept"] == "application/json"


async def test_swagger__path_parameter_and_response_output(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await op(client, auth, "getPetById", parameters={"petId": 1}, output="response")
    assert out["request"]["method"] == "get"
    assert out["request"]["uri"] == "https://petstore.swagger.io/v2/pet/1"
    assert out["statusCode"] == 200 and out["content"]["name"] == "Rex"


async def test_swagger__body_parameter_by_its_name_or_from_the_rest(
    client: httpx.AsyncClient, auth: AuthResolver, fakes: Fakes
) -> None:
    named = await op(
        client, auth, "addPet", parameters={"body": {"id": 10, "name": "Milou", "status": "sold"}}
    )
    assert named["id"] == 10 and fakes.petstore.state.pets[10]["name"] == "Milou"
    rest = await op(client, auth, "addPet", parameters={"id": 11, "name": "Idefix"})
    assert rest["name"] == "Idefix" and 11 in fakes.petstore.state.pets
    assert requests_to(fakes, "/v2/pet")[-1]["headers"]["content-type"] == "application/json"


async def test_swagger__form_and_header_parameters(
    client: httpx.AsyncClient, auth: AuthResolver, fakes: Fakes
) -> None:
    await op(client, auth, "updatePetWithForm", parameters={"petId": 2, "status": "sold"})
    assert fakes.petstore.state.pets[2]["status"] == "sold"
    form = requests_to(fakes, "/v2/pet/2")[-1]
    assert form["body"] == "status=sold"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    await op(client, auth, "deletePet", parameters={"petId": 2, "api_key": "k-123"})
    assert 2 not in fakes.petstore.state.pets
    assert requests_to(fakes, "/v2/pet/2")[-1]["headers"]["api_key"] == "k-123"


async def test_swagger__missing_pet_is_a_communication_error_404(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "updatePet", parameters={"body": {"id": 404404, "name": "x"}})
    assert type_matches("communication", caught.value.type) and caught.value.status == 404


async def test_swagger__unknown_operation_names_the_known_ones(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "getPetByName")
    assert type_matches("configuration", caught.value.type)
    assert caught.value.detail is not None and "getPetById" in caught.value.detail


@pytest.mark.parametrize(
    ("operation", "parameters"),
    [
        ("getPetById", {}),
        ("findPetsByStatus", {}),
        ("getPetById", {"petId": 1, "verbose": True}),
        ("addPet", {}),
    ],
)
async def test_swagger__parameter_mistakes_are_validation_errors(
    client: httpx.AsyncClient, auth: AuthResolver, operation: str, parameters: dict[str, Any]
) -> None:
    with pytest.raises(TaskError) as caught:
        await op(client, auth, operation, parameters=parameters)
    assert type_matches("validation", caught.value.type) and caught.value.status == 400


async def test_document_is_loaded_once_per_cache(
    client: httpx.AsyncClient, auth: AuthResolver, fakes: Fakes
) -> None:
    documents = DocumentCache()
    for pet_id in (1, 2):
        await op(client, auth, "getPetById", documents=documents, parameters={"petId": pet_id})
    assert len(requests_to(fakes, "/v2/swagger.json")) == 1 and len(documents) == 1


def test_document_cache__bounded_and_expiring() -> None:
    now = [0.0]
    cache = DocumentCache(size=2, ttl=10.0, clock=lambda: now[0])
    cache.put("a", {"n": 1})
    cache.put("b", {"n": 2})
    assert cache.get("a") == {"n": 1}  # now "b" is the least recently used
    cache.put("c", {"n": 3})
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    now[0] = 10.5
    assert cache.get("a") is None and cache.get("c") is None


# --- OpenAPI 3 (fixture describing httpbin) ------------------------------------------------


async def test_openapi3__every_parameter_kind_and_a_ref_body(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await op(
        client,
        auth,
        "postAnything",
        document=str(OPENAPI3),
        parameters={
            "item": "a b",
            "tags": ["x", "y"],
            "ids": [1, 2],
            "X-Request-Id": "r-1",
            "session": "s1",
            "body": {"note": "hello"},
        },
    )
    assert out["url"] == "https://httpbin.org/anything/a%20b?tags=x&tags=y&ids=1%2C2"
    assert out["args"] == {"tags": ["x", "y"], "ids": "1,2"}
    assert out["headers"]["X-Request-Id"] == "r-1"
    assert out["headers"]["Cookie"] == "session=s1"
    assert out["json"] == {"note": "hello"} and out["method"] == "POST"


async def test_openapi3__remaining_arguments_become_the_body(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await op(
        client,
        auth,
        "postAnything",
        document=OPENAPI3.as_uri(),
        parameters={"item": "i", "note": "n", "level": 2},
    )
    assert out["json"] == {"note": "n", "level": 2}


async def test_openapi3__operation_server_and_required_query(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await op(client, auth, "getEcho", document=str(OPENAPI3), parameters={"q": "ok"})
    assert out["url"] == "https://httpbin.org/get?q=ok"


async def test_openapi3__authentication_and_redirect(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await op(
        client,
        auth,
        "getBearer",
        document=str(OPENAPI3),
        authentication={"bearer": {"token": "oa3-token"}},
    )
    assert out == {"authenticated": True, "token": "oa3-token"}
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "getStatus", document=str(OPENAPI3), parameters={"code": 302})
    assert caught.value.status == 302
    followed = await op(
        client,
        auth,
        "getStatus",
        document=str(OPENAPI3),
        parameters={"code": 302},
        redirect=True,
        output="response",
    )
    assert followed["statusCode"] == 200 and followed["request"]["uri"] == "https://httpbin.org/get"


def _api_with_relative_server() -> Starlette:
    document = (
        "openapi: 3.1.0\n"
        "info: {title: ping, version: '1'}\n"
        "servers: [{url: /v1}]\n"
        "paths:\n"
        "  /ping:\n"
        "    get:\n"
        "      operationId: ping\n"
        "      responses: {'200': {description: pong}}\n"
    )

    async def serve(request: Request) -> PlainTextResponse:
        return PlainTextResponse(document, media_type="application/yaml")

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"pong": True, "url": str(request.url)})

    return Starlette(routes=[Route("/docs/openapi.yaml", serve), Route("/v1/ping", ping)])


async def test_openapi3__relative_server_url_resolves_against_the_document() -> None:
    mounts = {"https://api.example.test": httpx.ASGITransport(app=_api_with_relative_server())}
    async with http_client(mounts=mounts) as client:
        out = await op(
            client,
            AuthResolver({}, {}, client),
            "ping",
            document="https://api.example.test/docs/openapi.yaml",
        )
    assert out == {"pong": True, "url": "https://api.example.test/v1/ping"}


async def test_openapi3__relative_server_in_a_local_file_is_a_configuration_error(
    client: httpx.AsyncClient, auth: AuthResolver, tmp_path: Path
) -> None:
    doc = tmp_path / "api.json"
    doc.write_text(
        '{"openapi": "3.0.0", "servers": [{"url": "/v1"}], "paths": {"/x": {"get": '
        '{"operationId": "x", "responses": {}}}}}'
    )
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "x", document=str(doc))
    assert type_matches("configuration", caught.value.type)


@pytest.mark.parametrize(
    "content", ["not: an api\n", "[1, 2]", "openapi: 3.0.0\npaths: {}\n", "{{{ not yaml"]
)
async def test_unusable_documents_are_configuration_errors(
    client: httpx.AsyncClient, auth: AuthResolver, tmp_path: Path, content: str
) -> None:
    doc = tmp_path / "doc.yaml"
    doc.write_text(content)
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "anything", document=str(doc))
    assert type_matches("configuration", caught.value.type) and caught.value.status == 400


async def test_missing_document_file_is_a_configuration_error(
    client: httpx.AsyncClient, auth: AuthResolver, tmp_path: Path
) -> None:
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "x", document=(tmp_path / "nope.yaml").as_uri())
    assert type_matches("configuration", caught.value.type)


async def test_document_not_found_over_http_is_a_communication_error(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "x", document="https://petstore.swagger.io/v2/openapi.json")
    assert type_matches("communication", caught.value.type) and caught.value.status == 404


async def test_parse_errors_do_not_quote_the_file(
    client: httpx.AsyncClient, auth: AuthResolver, tmp_path: Path
) -> None:
    doc = tmp_path / "private.txt"
    doc.write_text("root-password: [hunter2\n")
    with pytest.raises(TaskError) as caught:
        await op(client, auth, "x", document=str(doc))
    assert "hunter2" not in str(caught.value.to_dict())
