"""Authentication policies: basic, bearer, references, secrets, OAuth2 and OIDC token requests."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fakes import AUTHORITY, CLIENTS, Fakes, fake_http_client, make_oauth

from opsloom.clock import FakeClock
from opsloom.dsl.auth import AuthResolver, TokenCache
from opsloom.dsl.http import call_http, http_client
from opsloom.expr.problem import TaskError, type_matches

CLIENT_ID = "workflow-runtime"
CLIENT_SECRET = CLIENTS[CLIENT_ID]


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
async def client(fakes: Fakes) -> AsyncIterator[httpx.AsyncClient]:
    async with fake_http_client(fakes) as c:
        yield c


def oauth2(**extra: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "authority": AUTHORITY,
        "grant": "client_credentials",
        "client": {"id": CLIENT_ID, "secret": CLIENT_SECRET},
    }
    policy.update(extra)
    return {"oauth2": policy}


def token_requests(fakes: Fakes) -> list[dict[str, Any]]:
    return list(fakes.oauth.state.token_requests)


def assert_error(err: TaskError, kind: str, status: int) -> None:
    assert type_matches(kind, err.type), err.type
    assert err.status == status


# --- basic, bearer, references, secrets ----------------------------------------------------


async def test_basic__header_is_base64_of_user_and_password(client: httpx.AsyncClient) -> None:
    headers = await AuthResolver({}, {}, client).headers_for(
        {"basic": {"username": "admin", "password": "pa:ss"}}
    )
    assert headers == {"Authorization": "Basic " + base64.b64encode(b"admin:pa:ss").decode()}


async def test_bearer__header_carries_the_token(client: httpx.AsyncClient) -> None:
    headers = await AuthResolver({}, {}, client).headers_for({"bearer": {"token": "abc.def"}})
    assert headers == {"Authorization": "Bearer abc.def"}


async def test_none__no_headers(client: httpx.AsyncClient) -> None:
    assert await AuthResolver({}, {}, client).headers_for(None) == {}


async def test_use__named_policies_and_chains_resolve(client: httpx.AsyncClient) -> None:
    policies = {
        "petStoreAuth": {"bearer": {"token": "named-token"}},
        "alias": {"use": "petStoreAuth"},
    }
    resolver = AuthResolver(policies, {}, client)
    assert await resolver.headers_for({"use": "alias"}) == {"Authorization": "Bearer named-token"}
    # The older spelling: the policy's name as a plain string.
    assert await resolver.headers_for("petStoreAuth") == {"Authorization": "Bearer named-token"}


async def test_use__unknown_name_is_a_configuration_error(client: httpx.AsyncClient) -> None:
    resolver = AuthResolver({"known": {"bearer": {"token": "t"}}}, {}, client)
    with pytest.raises(TaskError) as caught:
        await resolver.headers_for({"use": "missing"})
    assert_error(caught.value, "configuration", 400)
    assert caught.value.detail is not None and "known" in caught.value.detail


async def test_use__a_loop_of_references_is_refused(client: httpx.AsyncClient) -> None:
    resolver = AuthResolver({"a": {"use": "b"}, "b": {"use": "a"}}, {}, client)
    with pytest.raises(TaskError) as caught:
        await resolver.headers_for({"use": "a"})
    assert_error(caught.value, "configuration", 400)


async def test_secret__basic_properties_come_from_a_secret(client: httpx.AsyncClient) -> None:
    secrets = {"creds": {"username": "svc", "password": "from-the-vault"}}
    resolver = AuthResolver({"viaSecret": {"basic": {"use": "creds"}}}, secrets, client)
    headers = await resolver.headers_for({"use": "viaSecret"})
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"svc:from-the-vault").decode()
    with pytest.raises(TaskError) as caught:
        await resolver.headers_for({"bearer": {"use": "nope"}})
    assert_error(caught.value, "configuration", 400)


@pytest.mark.parametrize("scheme", ["digest", "certificate"])
async def test_unsupported_schemes__configuration_error(
    client: httpx.AsyncClient, scheme: str
) -> None:
    with pytest.raises(TaskError) as caught:
        await AuthResolver({}, {}, client).headers_for({scheme: {"username": "u", "password": "p"}})
    assert_error(caught.value, "configuration", 400)
    assert caught.value.detail == f"unsupported authentication scheme {scheme!r}"


@pytest.mark.parametrize(
    "policy",
    [
        {"basic": {"username": "u"}},
        {"bearer": {}},
        {"basic": {"username": "u", "password": "p"}, "bearer": {"token": "t"}},
        {"kerberos": {}},
        ["bearer"],
    ],
)
async def test_invalid_policies__configuration_error(
    client: httpx.AsyncClient, policy: Any
) -> None:
    with pytest.raises(TaskError) as caught:
        await AuthResolver({}, {}, client).headers_for(policy)
    assert_error(caught.value, "configuration", 400)


async def test_redact__masks_secret_values(client: httpx.AsyncClient) -> None:
    resolver = AuthResolver({}, {"db": {"password": "hunter22"}, "short": "ab"}, client)
    assert resolver.redact("login with hunter22 failed, ab") == "login with *** failed, ab"


# --- OAuth2 --------------------------------------------------------------------------------


async def test_oauth2__client_secret_post_is_the_default(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    headers = await AuthResolver({}, {}, client).headers_for(oauth2())
    assert headers["Authorization"] == "Bearer " + fakes.oauth.state.issued[0]
    [request] = token_requests(fakes)
    assert request["grant_type"] == "client_credentials" and request["client_auth"] == "post"
    assert request["client_id"] == CLIENT_ID and request["path"] == "/oauth2/token"
    assert request["content_type"] == "application/x-www-form-urlencoded"


async def test_oauth2__client_secret_basic_scopes_and_audiences(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    policy = oauth2(scopes=["pets:read", "pets:write"], audiences=["petstore"])
    policy["oauth2"]["client"]["authentication"] = "client_secret_basic"
    await AuthResolver({}, {}, client).headers_for(policy)
    [request] = token_requests(fakes)
    assert request["client_auth"] == "basic" and request["client_id"] == CLIENT_ID
    assert request["scope"] == "pets:read pets:write" and request["audience"] == "petstore"


async def test_oauth2__json_encoded_token_request(client: httpx.AsyncClient, fakes: Fakes) -> None:
    policy = oauth2(request={"encoding": "application/json"})
    await AuthResolver({}, {}, client).headers_for(policy)
    assert token_requests(fakes)[0]["content_type"] == "application/json"


async def test_oauth2__custom_token_endpoint_under_the_authority_path(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    policy = oauth2(
        authority=f"{AUTHORITY}/realms/ops", endpoints={"token": "/protocol/openid-connect/token"}
    )
    await AuthResolver({}, {}, client).headers_for(policy)
    assert token_requests(fakes)[0]["path"] == "/realms/ops/protocol/openid-connect/token"


async def test_oauth2__password_grant(client: httpx.AsyncClient, fakes: Fakes) -> None:
    policy = oauth2(grant="password", username="alice", password="wonderland")
    headers = await AuthResolver({}, {}, client).headers_for(policy)
    assert headers["Authorization"].startswith("Bearer at-")
    assert token_requests(fakes)[0]["grant_type"] == "password"


async def test_oauth2__token_is_cached_until_shortly_before_expiry(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    clock = FakeClock()
    tokens = TokenCache(clock)
    first = await AuthResolver({}, {}, client, tokens=tokens).headers_for(oauth2())
    again = await AuthResolver({}, {}, client, tokens=tokens).headers_for(oauth2())
    assert first == again and len(token_requests(fakes)) == 1
    clock.advance(3600 - 31)  # expires_in is 3600 s; the cache lets go 30 s early
    assert await AuthResolver({}, {}, client, tokens=tokens).headers_for(oauth2()) == first
    clock.advance(2)
    renewed = await AuthResolver({}, {}, client, tokens=tokens).headers_for(oauth2())
    assert renewed != first and len(token_requests(fakes)) == 2


async def test_oauth2__other_credentials_get_their_own_token(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    resolver = AuthResolver({}, {}, client)
    a = await resolver.headers_for(oauth2(scopes=["a"]))
    b = await resolver.headers_for(oauth2(scopes=["b"]))
    assert a != b and len(token_requests(fakes)) == 2


async def test_oauth2__without_expires_in_the_token_is_not_kept() -> None:
    fakes = Fakes(oauth=make_oauth(expires_in=None))
    async with fake_http_client(fakes) as client:
        resolver = AuthResolver({}, {}, client)
        await resolver.headers_for(oauth2())
        await resolver.headers_for(oauth2())
    assert len(token_requests(fakes)) == 2


async def test_oauth2__rejected_client_is_an_authentication_error_without_the_secret(
    client: httpx.AsyncClient,
) -> None:
    policy = oauth2()
    policy["oauth2"]["client"]["secret"] = "wrong-secret-value"
    with pytest.raises(TaskError) as caught:
        await AuthResolver({}, {}, client).headers_for(policy)
    assert_error(caught.value, "authentication", 401)
    assert caught.value.detail is not None and "invalid_client" in caught.value.detail
    assert "wrong-secret-value" not in str(caught.value.to_dict())


async def test_oauth2__unreachable_authority_is_an_authentication_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with http_client() as real:
        with pytest.raises(TaskError) as caught:
            await AuthResolver({}, {}, real).headers_for(
                oauth2(authority=f"http://127.0.0.1:{port}")
            )
    assert_error(caught.value, "authentication", 401)
    assert caught.value.detail is not None and "ConnectError" in caught.value.detail
    assert CLIENT_SECRET not in str(caught.value.to_dict())


async def test_oauth2__unsupported_grant_is_a_configuration_error(
    client: httpx.AsyncClient,
) -> None:
    with pytest.raises(TaskError) as caught:
        await AuthResolver({}, {}, client).headers_for(oauth2(grant="authorization_code"))
    assert_error(caught.value, "configuration", 400)


async def test_oauth2__policy_from_a_secret(client: httpx.AsyncClient, fakes: Fakes) -> None:
    secrets = {"mySecret": oauth2()["oauth2"]}
    headers = await AuthResolver({}, secrets, client).headers_for({"oauth2": {"use": "mySecret"}})
    assert headers["Authorization"] == "Bearer " + fakes.oauth.state.issued[0]


async def test_oauth2__token_reaches_the_resource(client: httpx.AsyncClient, fakes: Fakes) -> None:
    out = await call_http(
        {
            "method": "get",
            "endpoint": {"uri": "https://httpbin.org/bearer", "authentication": {"use": "svc"}},
        },
        input=None,
        auth=AuthResolver({"svc": oauth2()}, {}, client),
        client=client,
    )
    assert out == {"authenticated": True, "token": fakes.oauth.state.issued[0]}


# --- OpenID Connect ------------------------------------------------------------------------


async def test_oidc__token_endpoint_comes_from_discovery(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    policy = {"oidc": dict(oauth2()["oauth2"], authority=f"{AUTHORITY}/realms/ops")}
    tokens = TokenCache()
    headers = await AuthResolver({}, {}, client, tokens=tokens).headers_for(policy)
    assert headers["Authorization"] == "Bearer " + fakes.oauth.state.issued[0]
    assert token_requests(fakes)[0]["path"] == "/realms/ops/protocol/openid-connect/token"
    assert tokens.token_endpoint(f"{AUTHORITY}/realms/ops") is not None


async def test_oidc__authority_may_name_the_discovery_document(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    authority = f"{AUTHORITY}/.well-known/openid-configuration"
    policy = {"oidc": dict(oauth2()["oauth2"], authority=authority)}
    await AuthResolver({}, {}, client).headers_for(policy)
    assert token_requests(fakes)[0]["path"] == "/oauth2/token"


async def test_oidc__failed_discovery_is_an_authentication_error(
    client: httpx.AsyncClient,
) -> None:
    policy = {"oidc": dict(oauth2()["oauth2"], authority="https://httpbin.org/status/404")}
    with pytest.raises(TaskError) as caught:
        await AuthResolver({}, {}, client).headers_for(policy)
    assert_error(caught.value, "authentication", 401)


async def test_oauth2__a_401_from_the_resource_drops_the_cached_token(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    tokens = TokenCache()
    resolver = AuthResolver({}, {}, client, tokens=tokens)
    refused = {
        "method": "get",
        "endpoint": {"uri": "https://httpbin.org/status/401", "authentication": oauth2()},
    }
    with pytest.raises(TaskError) as caught:
        await call_http(refused, input=None, auth=resolver, client=client)
    assert caught.value.status == 401
    again = await AuthResolver({}, {}, client, tokens=tokens).headers_for(oauth2())
    assert again["Authorization"] == "Bearer " + fakes.oauth.state.issued[1]
    assert len(token_requests(fakes)) == 2
