"""Authentication policies of the DSL, turned into request headers.

A document names a policy inline (``endpoint.authentication: {bearer: {token: …}}``), by
reference (``{use: name}`` into ``use.authentications``, resolved by the interpreter into the
``policies`` mapping given here) or through a secret (``{basic: {use: secretName}}``: the secret
holds the policy's properties). Supported schemes: ``basic``, ``bearer``, ``oauth2`` and
``oidc`` (token request only; OIDC finds its token endpoint through discovery). ``digest`` and
``certificate`` are refused as unsupported.

Secrets never appear in errors: every credential the resolver handles is remembered and
:meth:`AuthResolver.redact` masks it in any text that leaves the HTTP layer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

from opsloom.clock import Clock, SystemClock
from opsloom.expr.problem import TaskError

MASK = "***"

#: Schemes the DSL defines that this runtime refuses with a configuration error.
UNSUPPORTED_SCHEMES = frozenset({"digest", "certificate"})
SCHEMES = frozenset({"basic", "bearer", "oauth2", "oidc"}) | UNSUPPORTED_SCHEMES

DEFAULT_TOKEN_PATH = "/oauth2/token"
DISCOVERY_PATH = "/.well-known/openid-configuration"
FORM = "application/x-www-form-urlencoded"
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
# Secret strings shorter than this are not redacted: masking "a" or "no" everywhere would
# garble messages without protecting anything.
_MIN_REDACT = 4
_MAX_USE_DEPTH = 8


def configuration_error(detail: str) -> TaskError:
    """A ``configuration`` TaskError (status 400) about an authentication policy."""
    return TaskError.standard("configuration", detail, title="Invalid authentication policy")


def authentication_error(detail: str) -> TaskError:
    """An ``authentication`` TaskError (status 401)."""
    return TaskError.standard("authentication", detail, title="Authentication failed")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float | None


class TokenCache:
    """OAuth2 access tokens and OIDC discovery answers, kept until shortly before they expire.

    One cache may be shared by many runs (the App can hold one) so that a token is not fetched
    again for every run; keys include the client id, grant, scopes and audiences, and a digest
    of the client secret, so different credentials never share a token.

    Args:
        clock: source of time for expiry (a ``FakeClock`` in tests).
        margin: seconds before ``expires_in`` runs out at which a token counts as expired;
            short-lived tokens use at most a tenth of their lifetime as margin.
    """

    def __init__(self, clock: Clock | None = None, *, margin: float = 30.0) -> None:
        self._clock: Clock = clock or SystemClock()
        self._margin = margin
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self._discovery: dict[str, str] = {}

    def get(self, key: tuple[str, ...]) -> str | None:
        """A cached token still valid for ``key``, or None."""
        token = self._tokens.get(key)
        if token is None:
            return None
        if token.expires_at is not None and self._clock.now() >= token.expires_at:
            del self._tokens[key]
            return None
        return token.value

    def put(self, key: tuple[str, ...], value: str, expires_in: float | None) -> None:
        """Remember a token; without ``expires_in`` it is not kept (its lifetime is unknown)."""
        if expires_in is None or expires_in <= 0:
            return
        margin = min(self._margin, expires_in / 10)
        self._tokens[key] = _Token(value, self._clock.now() + expires_in - margin)

    def drop(self, key: tuple[str, ...]) -> None:
        """Forget the token of ``key`` (the resource refused it)."""
        self._tokens.pop(key, None)

    def lock(self, key: tuple[str, ...]) -> asyncio.Lock:
        """One lock per key, so concurrent calls fetch a missing token once."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def token_endpoint(self, authority: str) -> str | None:
        """The token endpoint discovered earlier for an OIDC authority."""
        return self._discovery.get(authority)

    def remember_endpoint(self, authority: str, endpoint: str) -> None:
        """Keep a discovered token endpoint."""
        self._discovery[authority] = endpoint


class AuthResolver:
    """Turns a task's ``authentication`` into HTTP headers; one per run.

    Args:
        policies: the document's named policies (``use.authentications``), expressions
            already evaluated.
        secrets: the run's secrets by name (what ``use.secrets`` makes available).
        client: the HTTP client used for token requests.
        tokens: a token cache to share across resolvers (a private one by default).
    """

    def __init__(
        self,
        policies: Mapping[str, Any],
        secrets: Mapping[str, Any],
        client: httpx.AsyncClient,
        *,
        tokens: TokenCache | None = None,
    ) -> None:
        self._policies = policies
        self._secrets = secrets
        self._client = client
        self._tokens = tokens or TokenCache()
        self._sensitive: set[str] = set()
        self._used: set[tuple[str, ...]] = set()
        _collect_strings(secrets, self._sensitive)

    async def headers_for(self, authentication: Any | None) -> dict[str, str]:
        """The headers that authenticate a request under ``authentication`` (may be empty).

        Raises:
            TaskError: ``configuration`` for an invalid or unsupported policy,
                ``authentication`` when a token cannot be obtained.
        """
        if authentication is None:
            return {}
        scheme, props = self._resolve(authentication)
        if scheme == "basic":
            user = _required_str(props, "username", "basic")
            password = _required_str(props, "password", "basic")
            encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._remember(password, encoded)
            return {"Authorization": f"Basic {encoded}"}
        if scheme == "bearer":
            token = _required_str(props, "token", "bearer")
            self._remember(token)
            return {"Authorization": f"Bearer {token}"}
        if scheme in ("oauth2", "oidc"):
            token = await self._access_token(scheme, props)
            self._remember(token)
            return {"Authorization": f"Bearer {token}"}
        raise configuration_error(f"unsupported authentication scheme {scheme!r}")

    def forget_tokens(self) -> None:
        """Drop the cached access tokens this resolver handed out.

        Called when a resource answers 401: the token may have been revoked before its
        ``expires_in`` ran out, and the next attempt should fetch a fresh one.
        """
        for key in self._used:
            self._tokens.drop(key)
        self._used.clear()

    def redact(self, text: str) -> str:
        """``text`` with every credential this resolver knows replaced by ``***``."""
        # Longest first, so a secret containing another one is masked whole.
        for value in sorted(self._sensitive, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    # --- policy resolution ---------------------------------------------------------------

    def _resolve(self, authentication: Any) -> tuple[str, Mapping[str, Any]]:
        """Follow ``use`` references down to one scheme and its (secret-resolved) properties."""
        policy = authentication
        for _ in range(_MAX_USE_DEPTH):
            if isinstance(policy, str):
                policy = self._named(policy)
                continue
            if not isinstance(policy, Mapping):
                raise configuration_error("an authentication policy must be an object")
            if set(policy) == {"use"}:
                policy = self._named(policy["use"])
                continue
            schemes = [key for key in policy if key in SCHEMES]
            if len(schemes) != 1 or len(policy) != 1:
                raise configuration_error(
                    "an authentication policy needs exactly one of "
                    + ", ".join(sorted(SCHEMES))
                    + f" (got {', '.join(map(str, policy)) or 'nothing'})"
                )
            scheme = schemes[0]
            if scheme in UNSUPPORTED_SCHEMES:
                raise configuration_error(f"unsupported authentication scheme {scheme!r}")
            return scheme, self._properties(scheme, policy[scheme])
        raise configuration_error("authentication policies refer to each other in a loop")

    def _named(self, name: Any) -> Any:
        if not isinstance(name, str) or name not in self._policies:
            known = ", ".join(sorted(self._policies)) or "none"
            raise configuration_error(f"unknown authentication policy {name!r} (defined: {known})")
        return self._policies[name]

    def _properties(self, scheme: str, props: Any) -> Mapping[str, Any]:
        # ``oauth2: mySecret`` (older form) and ``oauth2: {use: mySecret}`` read the policy's
        # properties from a secret.
        if isinstance(props, str):
            return self._secret(props, scheme)
        if not isinstance(props, Mapping):
            raise configuration_error(f"{scheme} authentication needs an object")
        if set(props) == {"use"}:
            return self._secret(props["use"], scheme)
        return props

    def _secret(self, name: Any, scheme: str) -> Mapping[str, Any]:
        if not isinstance(name, str) or name not in self._secrets:
            raise configuration_error(f"{scheme} authentication uses unknown secret {name!r}")
        value = self._secrets[name]
        if not isinstance(value, Mapping):
            raise configuration_error(
                f"secret {name!r} must be an object with the {scheme} properties"
            )
        return value

    def _remember(self, *values: str) -> None:
        self._sensitive.update(v for v in values if len(v) >= _MIN_REDACT)

    # --- OAuth2 / OIDC -------------------------------------------------------------------

    async def _access_token(self, scheme: str, props: Mapping[str, Any]) -> str:
        authority = _required_str(props, "authority", scheme).rstrip("/")
        grant = str(props.get("grant") or "client_credentials")
        client = props.get("client") or {}
        if not isinstance(client, Mapping):
            raise configuration_error(f"{scheme} client must be an object")
        for key in ("secret", "assertion"):
            if isinstance(client.get(key), str):
                self._remember(str(client[key]))
        if isinstance(props.get("password"), str):
            self._remember(str(props["password"]))
        cache_key = (
            scheme,
            authority,
            grant,
            str(client.get("id") or ""),
            _digest(client.get("secret"), client.get("assertion"), props.get("password")),
            " ".join(_str_list(props, "scopes")),
            " ".join(_str_list(props, "audiences")),
            str(props.get("username") or ""),
            json.dumps(props.get("endpoints"), sort_keys=True, default=str),
        )
        self._used.add(cache_key)
        cached = self._tokens.get(cache_key)
        if cached is not None:
            return cached
        async with self._tokens.lock(cache_key):
            cached = self._tokens.get(cache_key)
            if cached is not None:
                return cached
            if scheme == "oidc":
                endpoint = await self._discover(authority)
            else:
                endpoint = _token_endpoint(authority, props)
            token, expires_in = await self._request_token(endpoint, grant, client, props)
            self._tokens.put(cache_key, token, expires_in)
            return token

    async def _discover(self, authority: str) -> str:
        known = self._tokens.token_endpoint(authority)
        if known is not None:
            return known
        url = authority if authority.endswith(DISCOVERY_PATH) else authority + DISCOVERY_PATH
        try:
            response = await self._client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise authentication_error(
                f"OpenID Connect discovery at {url} failed: {type(exc).__name__}: {exc}"
            ) from None
        if not response.is_success:
            raise authentication_error(
                f"OpenID Connect discovery at {url} answered {response.status_code}"
            )
        try:
            endpoint = response.json()["token_endpoint"]
        except (ValueError, KeyError, TypeError):
            endpoint = None
        if not isinstance(endpoint, str) or not endpoint:
            raise authentication_error(f"OpenID Connect discovery at {url} gave no token_endpoint")
        self._tokens.remember_endpoint(authority, endpoint)
        return endpoint

    async def _request_token(
        self,
        endpoint: str,
        grant: str,
        client: Mapping[str, Any],
        props: Mapping[str, Any],
    ) -> tuple[str, float | None]:
        fields, headers = _token_request(grant, client, props)
        for value in headers.values():
            self._remember(value, value.split(" ", 1)[-1])
        encoding = FORM
        request = props.get("request")
        if isinstance(request, Mapping) and request.get("encoding"):
            encoding = str(request["encoding"])
        headers["Accept"] = "application/json"
        try:
            if encoding == FORM:
                response = await self._client.post(endpoint, data=fields, headers=headers)
            elif encoding == "application/json":
                response = await self._client.post(endpoint, json=fields, headers=headers)
            else:
                raise configuration_error(f"unsupported token request encoding {encoding!r}")
        except httpx.HTTPError as exc:
            raise authentication_error(
                self.redact(f"token request to {endpoint} failed: {type(exc).__name__}: {exc}")
            ) from None
        if not response.is_success:
            raise authentication_error(
                self.redact(
                    f"token request to {endpoint} answered {response.status_code}"
                    + _oauth_error(response)
                )
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str):
            raise authentication_error(f"token response from {endpoint} has no access_token")
        token_type = str(body.get("token_type") or "Bearer")
        if token_type.lower() != "bearer":
            raise authentication_error(
                f"token response from {endpoint} has unsupported token_type {token_type!r}"
            )
        token = str(body["access_token"])
        self._remember(token)
        _check_issuer(token, props)
        expires = body.get("expires_in")
        expires_in = float(expires) if isinstance(expires, int | float) else None
        if isinstance(expires, str) and expires.isdigit():
            expires_in = float(expires)
        return token, expires_in


def _token_endpoint(authority: str, props: Mapping[str, Any]) -> str:
    endpoints = props.get("endpoints")
    path = DEFAULT_TOKEN_PATH
    if isinstance(endpoints, Mapping) and isinstance(endpoints.get("token"), str):
        path = str(endpoints["token"])
    if "://" in path:
        return path
    # The spec calls it a path relative to the authority, which may itself have a path
    # (e.g. a Keycloak realm): append rather than resolve, which would drop that path.
    return authority + "/" + path.lstrip("/")


def _token_request(
    grant: str, client: Mapping[str, Any], props: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The token request's fields and headers for ``grant`` and the client's auth method."""
    fields: dict[str, Any] = {"grant_type": grant}
    if grant == "password":
        fields["username"] = _required_str(props, "username", "oauth2 password grant")
        fields["password"] = _required_str(props, "password", "oauth2 password grant")
    elif grant == _TOKEN_EXCHANGE:
        for role in ("subject", "actor"):
            token = props.get(role)
            if isinstance(token, Mapping):
                fields[f"{role}_token"] = str(token.get("token", ""))
                fields[f"{role}_token_type"] = str(token.get("type", ""))
        if "subject_token" not in fields:
            raise configuration_error("the token-exchange grant needs a subject token")
    elif grant != "client_credentials":
        raise configuration_error(
            f"unsupported OAuth2 grant {grant!r} (this runtime requests tokens with "
            "client_credentials, password or token-exchange)"
        )
    scopes = _str_list(props, "scopes")
    if scopes:
        fields["scope"] = " ".join(scopes)
    audiences = _str_list(props, "audiences")
    if audiences:
        fields["audience"] = audiences if len(audiences) > 1 else audiences[0]

    headers: dict[str, str] = {}
    method = str(client.get("authentication") or "client_secret_post")
    client_id = client.get("id")
    secret = client.get("secret")
    if method == "client_secret_basic":
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise configuration_error("client_secret_basic needs client.id and client.secret")
        # RFC 6749 §2.3.1: both parts are form-encoded before the Basic encoding.
        pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    elif method == "client_secret_post":
        if not isinstance(client_id, str):
            raise configuration_error("client_secret_post needs client.id")
        fields["client_id"] = client_id
        if isinstance(secret, str):
            fields["client_secret"] = secret
    elif method in ("private_key_jwt", "client_secret_jwt"):
        assertion = client.get("assertion")
        if not isinstance(assertion, str):
            raise configuration_error(f"{method} needs client.assertion (a signed JWT)")
        if isinstance(client_id, str):
            fields["client_id"] = client_id
        fields["client_assertion_type"] = _JWT_BEARER
        fields["client_assertion"] = assertion
    elif method == "none":
        if isinstance(client_id, str):
            fields["client_id"] = client_id
    else:
        raise configuration_error(f"unsupported client authentication method {method!r}")
    return fields, headers


def _oauth_error(response: httpx.Response) -> str:
    """``: error (description)`` from an RFC 6749 error body, or a short excerpt."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:200]}" if text else ""
    if isinstance(body, Mapping) and "error" in body:
        desc = body.get("error_description")
        return f": {body['error']}" + (f" ({desc})" if desc else "")
    return ""


def _check_issuer(token: str, props: Mapping[str, Any]) -> None:
    """Refuse a JWT access token whose ``iss`` is not one of the policy's ``issuers``."""
    issuers = _str_list(props, "issuers")
    if not issuers or token.count(".") != 2:
        return
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if issuer not in issuers:
        raise authentication_error(f"token issuer {issuer!r} is not one of the allowed issuers")


def _required_str(props: Mapping[str, Any], key: str, scheme: str) -> str:
    value = props.get(key)
    if isinstance(value, bool) or value is None or isinstance(value, Mapping | list):
        raise configuration_error(f"{scheme} authentication needs {key!r}")
    return str(value)


def _str_list(props: Mapping[str, Any], key: str) -> list[str]:
    value = props.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise configuration_error(f"{key!r} must be a list of strings")


def _digest(*values: Any) -> str:
    """A short fingerprint of credentials, so cache keys never hold them in clear."""
    text = "\0".join("" if v is None else str(v) for v in values)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _collect_strings(value: Any, out: set[str]) -> None:
    if isinstance(value, str):
        if len(value) >= _MIN_REDACT:
            out.add(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_strings(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_strings(item, out)
