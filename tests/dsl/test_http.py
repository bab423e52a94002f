"""``call: http`` against local fakes of httpbin and Petstore, and real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fakes import Fakes, fake_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opsloom.dsl.auth import AuthResolver
from opsloom.dsl.http import call_http, expand_uri, http_client, user_agent
from opsloom.expr.problem import TaskError, type_matches


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


async def call(
    client: httpx.AsyncClient, auth: AuthResolver, input: Any = None, **args: Any
) -> Any:
    return await call_http(args, input=input, auth=auth, client=client)


# --- URI templates -------------------------------------------------------------------------


def test_expand_uri__encodes_reserved_characters() -> None:
    url = expand_uri("https://h/x/{name}?q={q}", {"name": "a b/c?&é", "q": "x=y"})
    assert url == "https://h/x/a%20b%2Fc%3F%26%C3%A9?q=x%3Dy"


def test_expand_uri__scalars_lists_and_missing_names() -> None:
    variables = {"n": 7, "f": 1.5, "t": True, "z": None, "pet.id": "p"}
    assert expand_uri("/{n}/{f}/{t}/{z}/{missing}/{pet.id}", variables) == "/7/1.5/true///p"
    assert expand_uri("/{n,missing,t}", variables) == "/7,true"
    assert expand_uri("/{n}", "not an object") == "/"


def test_expand_uri__object_value_is_an_expression_error() -> None:
    with pytest.raises(TaskError) as caught:
        expand_uri("/{pet}", {"pet": {"id": 1}})
    assert type_matches("expression", caught.value.type) and caught.value.status == 400


def test_expand_uri__operators_are_refused() -> None:
    with pytest.raises(TaskError) as caught:
        expand_uri("/x{?query}", {"query": "a"})
    assert type_matches("configuration", caught.value.type)


async def test_call__path_variable_is_substituted_and_encoded(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await call(
        client,
        auth,
        {"item": "two words/slash"},
        method="get",
        endpoint="https://httpbin.org/anything/{item}",
    )
    assert out["url"] == "https://httpbin.org/anything/two%20words%2Fslash"
    assert out["method"] == "GET"


# --- query, headers, body ------------------------------------------------------------------


async def test_call__query_headers_and_json_body(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await call(
        client,
        auth,
        method="post",
        endpoint="https://httpbin.org/post?fixed=1",
        query={"search": "luke sky", "tags": ["a", "b"], "n": 3, "flag": False, "skip": None},
        headers={"X-Trace": "abc", "X-Count": 2},
        body={"name": "Rex", "tags": ["x"]},
    )
    assert out["args"] == {
        "fixed": "1",
        "search": "luke sky",
        "tags": ["a", "b"],
        "n": "3",
        "flag": "false",
    }
    assert out["headers"]["X-Trace"] == "abc" and out["headers"]["X-Count"] == "2"
    assert out["headers"]["Content-Type"] == "application/json"
    assert out["json"] == {"name": "Rex", "tags": ["x"]}


async def test_call__text_and_form_bodies(client: httpx.AsyncClient, auth: AuthResolver) -> None:
    text = await call(
        client, auth, method="put", endpoint="https://httpbin.org/put", body="plain words"
    )
    assert text["data"] == "plain words" and text["json"] is None
    assert text["headers"]["Content-Type"].startswith("text/plain")
    form = await call(
        client,
        auth,
        method="post",
        endpoint="https://httpbin.org/post",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body={"name": "Rex", "status": "sold"},
    )
    assert form["form"] == {"name": "Rex", "status": "sold"}


async def test_call__endpoint_object_and_sent_user_agent(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await call(client, auth, method="GET", endpoint={"uri": "https://httpbin.org/headers"})
    assert out["headers"]["User-Agent"] == user_agent()
    assert user_agent().startswith("opsloom/")


# --- output modes --------------------------------------------------------------------------


async def test_output__content_parses_json_and_keeps_text(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    pet = await call(
        client,
        auth,
        {"petId": 1},
        method="get",
        endpoint="https://petstore.swagger.io/v2/pet/{petId}",
    )
    assert pet["id"] == 1 and pet["status"] == "available"
    text = await call(client, auth, method="get", endpoint="https://httpbin.org/robots.txt")
    assert text.startswith("User-agent: *")


async def test_output__content_of_binary_is_base64(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    rng = random.Random(7)
    expected = bytes(rng.getrandbits(8) for _ in range(16))
    out = await call(client, auth, method="get", endpoint="https://httpbin.org/bytes/16?seed=7")
    assert base64.b64decode(out) == expected


async def test_output__response_has_request_status_headers_and_content(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await call(
        client,
        auth,
        {"petId": 2},
        method="get",
        endpoint={"uri": "https://petstore.swagger.io/v2/pet/{petId}"},
        headers={"Accept": "application/json"},
        output="response",
    )
    assert out["request"]["method"] == "get"
    assert out["request"]["uri"] == "https://petstore.swagger.io/v2/pet/2"
    assert out["request"]["headers"]["accept"] == "application/json"
    assert out["statusCode"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert out["content"]["name"] == "Tom"


async def test_output__raw_is_base64_of_the_body(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await call(
        client, auth, method="get", endpoint="https://httpbin.org/robots.txt", output="raw"
    )
    assert base64.b64decode(out) == b"User-agent: *\nDisallow: /deny\n"
    empty = await call(
        client, auth, method="get", endpoint="https://httpbin.org/status/204", output="raw"
    )
    assert empty is None


# --- errors --------------------------------------------------------------------------------


async def test_error__404_is_a_communication_error_with_its_status(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    with pytest.raises(TaskError) as caught:
        await call(
            client,
            auth,
            {"petId": 999},
            method="get",
            endpoint="https://petstore.swagger.io/v2/pet/{petId}",
        )
    err = caught.value
    assert type_matches("https://serverlessworkflow.io/dsl/errors/types/communication", err.type)
    assert err.status == 404 and err.title == "Not Found"
    assert err.detail is not None
    assert "GET https://petstore.swagger.io/v2/pet/999 answered 404" in err.detail
    assert "Pet not found" in err.detail


async def test_error__server_error_status_is_kept(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    with pytest.raises(TaskError) as caught:
        await call(client, auth, method="delete", endpoint="https://httpbin.org/status/503")
    assert caught.value.status == 503 and type_matches("communication", caught.value.type)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_error__connection_refused_is_a_communication_error() -> None:
    port = _closed_port()
    async with http_client() as real:
        with pytest.raises(TaskError) as caught:
            await call_http(
                {"method": "get", "endpoint": f"http://127.0.0.1:{port}/x"},
                input=None,
                auth=AuthResolver({}, {}, real),
                client=real,
            )
    err = caught.value
    assert type_matches("communication", err.type) and err.status == 500
    assert err.detail is not None and f"127.0.0.1:{port}" in err.detail


async def test_error__no_answer_in_time_is_a_timeout_error() -> None:
    # A real listening socket that never answers: the read timeout fires.
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with http_client(timeout=httpx.Timeout(0.2)) as real:
            with pytest.raises(TaskError) as caught:
                await call_http(
                    {"method": "get", "endpoint": f"http://127.0.0.1:{port}/slow"},
                    input=None,
                    auth=AuthResolver({}, {}, real),
                    client=real,
                )
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert type_matches("timeout", caught.value.type) and caught.value.status == 408


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        ({"endpoint": "https://httpbin.org/get"}, "validation"),
        ({"method": "get two", "endpoint": "https://httpbin.org/get"}, "validation"),
        ({"method": "get", "endpoint": {"url": "https://httpbin.org/get"}}, "validation"),
        ({"method": "get", "endpoint": "ftp://httpbin.org/get"}, "configuration"),
        ({"method": "get", "endpoint": "/relative/only"}, "configuration"),
        ({"method": "get", "endpoint": "https://httpbin.org/get", "output": "body"}, "validation"),
        ({"method": "get", "endpoint": "https://httpbin.org/get", "redirect": "yes"}, "validation"),
        ({"method": "get", "endpoint": "https://httpbin.org/get", "query": ["a"]}, "validation"),
    ],
)
async def test_error__invalid_arguments_are_400(
    client: httpx.AsyncClient, auth: AuthResolver, args: dict[str, Any], kind: str
) -> None:
    with pytest.raises(TaskError) as caught:
        await call_http(args, input={}, auth=auth, client=client)
    assert type_matches(kind, caught.value.type) and caught.value.status == 400


# --- redirects -----------------------------------------------------------------------------


async def test_redirect__false_means_3xx_is_an_error_and_not_followed(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    with pytest.raises(TaskError) as caught:
        await call(client, auth, method="get", endpoint="https://httpbin.org/redirect-to?url=/get")
    assert caught.value.status == 302


async def test_redirect__true_follows_and_3xx_is_success(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await call(
        client,
        auth,
        method="get",
        endpoint="https://httpbin.org/redirect/2",
        redirect=True,
        output="response",
    )
    assert out["statusCode"] == 200
    assert out["request"]["uri"] == "https://httpbin.org/get"
    assert out["content"]["url"] == "https://httpbin.org/get"
    with pytest.raises(TaskError) as caught:
        await call(
            client, auth, method="get", endpoint="https://httpbin.org/status/404", redirect=True
        )
    assert caught.value.status == 404


# --- authentication and secrets ------------------------------------------------------------


async def test_basic_auth__httpbin_accepts_the_right_credentials(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    creds = {"username": "serverless-workflow", "password": "conformance-test"}
    out = await call(
        client,
        auth,
        creds,
        method="get",
        endpoint={
            "uri": "https://httpbin.org/basic-auth/{username}/{password}",
            "authentication": {"basic": dict(creds)},
        },
    )
    assert out == {"authenticated": True, "user": "serverless-workflow"}


async def test_basic_auth__wrong_password_is_a_401_communication_error(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    with pytest.raises(TaskError) as caught:
        await call(
            client,
            auth,
            method="get",
            endpoint={
                "uri": "https://httpbin.org/basic-auth/user/right-password",
                "authentication": {"basic": {"username": "user", "password": "wrong-password"}},
            },
        )
    assert caught.value.status == 401 and type_matches("communication", caught.value.type)
    assert "wrong-password" not in str(caught.value.to_dict())


async def test_bearer__token_is_sent_and_masked_in_the_response_output(
    client: httpx.AsyncClient, auth: AuthResolver
) -> None:
    out = await call(
        client,
        auth,
        method="get",
        endpoint={
            "uri": "https://httpbin.org/bearer",
            "authentication": {"bearer": {"token": "tok-very-secret"}},
        },
        output="response",
    )
    assert out["content"] == {"authenticated": True, "token": "tok-very-secret"}
    assert out["request"]["headers"]["authorization"] == "***"
    assert "tok-very-secret" not in str(out["request"])


def _echo_error_app() -> Starlette:
    """A server that answers 500 with the request's headers in the body (as some do)."""

    async def boom(request: Request) -> JSONResponse:
        return JSONResponse({"seen": dict(request.headers)}, status_code=500)

    return Starlette(routes=[Route("/boom", boom)])


async def test_secrets__never_appear_in_error_details() -> None:
    mounts = {"https://echo.example.test": httpx.ASGITransport(app=_echo_error_app())}
    async with http_client(mounts=mounts) as real:
        auth = AuthResolver({}, {"api": {"token": "sekret-token-value"}}, real)
        with pytest.raises(TaskError) as caught:
            await call_http(
                {
                    "method": "get",
                    "endpoint": {
                        "uri": "https://echo.example.test/boom",
                        "authentication": {"bearer": {"use": "api"}},
                    },
                    "headers": {"X-Other": "sekret-token-value"},
                },
                input=None,
                auth=auth,
                client=real,
            )
    err = caught.value
    assert err.status == 500
    assert err.detail is not None and "authorization" in err.detail
    assert "sekret-token-value" not in str(err.to_dict())
    assert "***" in err.detail


def test_http_client__defaults() -> None:
    client = http_client()
    assert client.follow_redirects is False
    assert client.timeout.connect == 5.0 and client.timeout.read == 30.0
    assert client.headers["user-agent"] == user_agent()
    tuned = http_client(headers={"X-Team": "ops"}, follow_redirects=True)
    assert tuned.headers["x-team"] == "ops" and tuned.headers["user-agent"] == user_agent()
    assert tuned.follow_redirects is True


def _two_origins_app() -> Starlette:
    async def start(request: Request) -> Any:
        from starlette.responses import RedirectResponse

        target = request.query_params["to"]
        return RedirectResponse(target, status_code=302)

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"host": request.url.hostname, "headers": dict(request.headers)})

    return Starlette(routes=[Route("/start", start), Route("/echo", echo)])


@pytest.mark.parametrize(
    ("target", "kept"),
    [("https://other.example/echo", False), ("https://api.example/echo", True)],
)
async def test_redirect__to_another_origin_drops_the_credential_headers(
    target: str, kept: bool
) -> None:
    transport = httpx.ASGITransport(app=_two_origins_app())
    async with httpx.AsyncClient(transport=transport) as client:
        out = await call(
            client,
            AuthResolver({}, {}, client),
            method="get",
            endpoint=f"https://api.example/start?to={target}",
            headers={"X-Api-Key": "key-secret-value", "Authorization": "Token t-secret-value"},
            redirect=True,
        )
    sent = out["headers"]
    assert ("x-api-key" in sent, "authorization" in sent) == (kept, kept)
    assert out["host"] == target.split("/")[2]
