"""How a connector is written: settings, typed actions, and what an action receives.

>>> class EchoSettings(ConnectionSettings):
...     url: str
...     token: SecretStr
>>> def endpoint(s: EchoSettings) -> Endpoint:
...     return Endpoint(s.url, {"Authorization": f"Bearer {s.token.get_secret_value()}"})
>>> echo = Connector("echo", EchoSettings, title="Echo", endpoint=endpoint)
>>> @echo.action
... async def say(ctx: ActionContext[EchoSettings], data: SayInput) -> SayOutput:
...     '''Say something (this docstring is the action's help).'''
...     return SayOutput.model_validate(await ctx.http.json("POST", "/say", json=data.text))

The settings model is the connector's **auth schema**: every field typed ``SecretStr`` is a
secret (encrypted at rest, never shown, redacted from everything an action returns or raises);
the others are plain settings. An :class:`Action` is called from workflow code as a step,
``await ctx.step(echo.say, connection="my-echo", text="hi")``, which runs it under the step's
retry policy with the step's idempotency key; documents call it as the catalog function
``echo-say:1.0.0@default``.
"""

from __future__ import annotations

import inspect
import json
import ssl
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from opsloom.connectors.breaker import BreakerPolicy
from opsloom.connectors.ratelimit import RateLimit
from opsloom.connectors.transport import Transport
from opsloom.engine.registry import StepSpec, attach_step_spec
from opsloom.errors import ConfigurationError, ConnectorPermanentError
from opsloom.model import RetryPolicy
from opsloom.model.redaction import Redactor

I = TypeVar("I", bound=BaseModel)  # noqa: E741 - the conventional name of an input type
O = TypeVar("O", bound=BaseModel)  # noqa: E741
S = TypeVar("S", bound="ConnectionSettings")

#: Connector actions retry transient failures patiently: an open breaker or a rate limit names
#: its own delay (``retry_after``), which may exceed ``max_delay``.
ACTION_RETRY = RetryPolicy(attempts=10, initial_delay=1.0, backoff=2.0, max_delay=300.0)


class ConnectionSettings(BaseModel):
    """What every connection has, whatever its connector; connectors subclass it.

    Attributes:
        timeout: seconds a request may take (connecting: at most 5).
        rate_limit: calls per second through this connection (none: unlimited).
        breaker: when the connection's circuit breaker opens and how it recovers.
    """

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=30.0, gt=0, le=600)
    rate_limit: RateLimit | None = None
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)

    @model_validator(mode="before")
    @classmethod
    def _text_from_data(cls, values: Any) -> Any:
        """A text field given an object or a list takes its JSON text.

        ``opsloom connections add --set kubeconfig={...}`` parses the JSON; a kubeconfig (or any
        other document kept as text) is the same document written as JSON.
        """
        if not isinstance(values, dict):
            return values
        text_types = (str, SecretStr, str | None, SecretStr | None)
        converted = dict(values)
        for name, info in cls.model_fields.items():
            value = converted.get(name)
            if isinstance(value, dict | list) and info.annotation in text_types:
                converted[name] = json.dumps(value)
        return converted

    @classmethod
    def secret_fields(cls) -> list[str]:
        """Names of the fields that hold secrets (typed ``SecretStr``)."""
        return [
            name
            for name, info in cls.model_fields.items()
            if info.annotation is SecretStr or info.annotation == SecretStr | None
        ]

    def secret_values(self) -> dict[str, str]:
        """The secrets in clear text, by field name (unset ones left out)."""
        values: dict[str, str] = {}
        for name in self.secret_fields():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values[name] = value.get_secret_value()
        return values

    def plain_values(self) -> dict[str, Any]:
        """The settings that are not secrets, as JSON."""
        return self.model_dump(mode="json", exclude=set(self.secret_fields()), exclude_unset=True)

    async def aclose(self) -> None:
        """Release what the connection holds besides its HTTP client (SDK clients, sessions).

        The runtime calls it once, when the connection is dropped (changed, removed, or the
        app closing). A connector that keeps such resources on its settings (private
        attributes) overrides it; the default holds nothing.
        """


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a connection's HTTP requests go and how they authenticate.

    Attributes:
        base_url: prefix of relative request URLs.
        headers: sent with every request (authorization, API version).
        redact: derived forms of secrets to mask as well (e.g. a Basic credential).
        verify: check the server's TLS certificate; an ``ssl.SSLContext`` to trust a private
            CA or present a client certificate (Kubernetes).
        auth: authenticates each request where fixed headers cannot (a token that rotates
            or comes from a credential plugin).
    """

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    redact: tuple[str, ...] = ()
    verify: bool | ssl.SSLContext = True
    auth: httpx.Auth | None = None


@dataclass(slots=True)
class ActionContext(Generic[S]):
    """What an action receives besides its input.

    Attributes:
        connection: the connection's name.
        settings: its settings, secrets included (``SecretStr``: call ``get_secret_value``).
        http: requests through the connection's pooled client (``None`` for connectors without
            an HTTP endpoint, such as SMTP).
        redactor: masks the connection's secrets; use it on any text you put in an error.
        idempotency_key: stable across retries of one step (``run_id:seq``); pass it to the
            vendor where its API takes one. ``None`` outside a step (a one-off CLI call).
        now: epoch seconds.
    """

    connection: str
    settings: S
    http: Transport | None
    redactor: Redactor
    idempotency_key: str | None
    now: Callable[[], float]

    @property
    def client(self) -> Transport:
        """:attr:`http`, or a clear error for a connector that has no HTTP endpoint."""
        if self.http is None:
            raise ConfigurationError(f"connection {self.connection!r} has no HTTP endpoint")
        return self.http


ActionFn = Callable[[ActionContext[Any], Any], Awaitable[BaseModel]]
ActionRunner = Callable[["Action[Any, Any]", str, Mapping[str, Any]], Awaitable[dict[str, Any]]]


class Action(Generic[I, O]):
    """One typed operation of a connector, callable as a workflow step.

    Calling it (``await action(connection="ops-slack", channel="#x", text="hi")``) runs it
    through the connector runtime of the running app: rate limit, circuit breaker, redaction.
    The result is the output model as JSON (what a step records).
    """

    def __init__(
        self,
        connector: Connector[Any],
        name: str,
        fn: ActionFn,
        input: type[I],
        output: type[O],
        retry: RetryPolicy = ACTION_RETRY,
    ) -> None:
        self.connector = connector
        self.name = name
        self.fn = fn
        self.input = input
        self.output = output
        self.retry = retry
        self.help = inspect.cleandoc(fn.__doc__ or "").strip()
        attach_step_spec(self, StepSpec(self, self.id, retry, None, True))

    def __repr__(self) -> str:
        return f"<action {self.id}>"

    @property
    def id(self) -> str:
        """``connector.action``, as the CLI names it."""
        return f"{self.connector.name}.{self.name}"

    @property
    def function(self) -> str:
        """The catalog function name: ``connector-action`` with dashes (``slack-post-message``)."""
        return f"{self.connector.name}-{self.name}".replace("_", "-")

    @property
    def summary(self) -> str:
        """The first line of the help."""
        return self.help.splitlines()[0] if self.help else ""

    def with_retry(self, retry: RetryPolicy) -> Action[I, O]:
        """The same action under another retry policy (as a step)."""
        return Action(self.connector, self.name, self.fn, self.input, self.output, retry)

    def parse(self, fields: Mapping[str, Any]) -> I:
        """Validate an input; ``ConnectorPermanentError`` naming the bad field if invalid."""
        from pydantic import ValidationError

        try:
            return self.input.model_validate(dict(fields))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise ConnectorPermanentError(f"invalid input of {self.id}: {problems}") from None

    async def __call__(self, connection: str, **fields: Any) -> dict[str, Any]:
        """Run the action through the active connector runtime (see the class docstring)."""
        from opsloom.connectors.runtime import active_runtime

        return await active_runtime().call(self, connection, fields)


class Connector(Generic[S]):
    """A package of typed actions for one tool, and its connection settings (auth schema).

    Args:
        name: lower-case identifier (``slack``), used in action ids and catalog names.
        settings: the connection settings model (secrets typed ``SecretStr``).
        title: what people call the tool.
        endpoint: where HTTP requests go for given settings; ``None`` for non-HTTP tools.
        version: the catalog version of its actions.
        doc: what the connector is, and which API documentation or spec it follows.
    """

    def __init__(
        self,
        name: str,
        settings: type[S],
        *,
        title: str,
        endpoint: Callable[[S], Endpoint] | None = None,
        version: str = "1.0.0",
        doc: str = "",
    ) -> None:
        if not name.replace("_", "").isalnum() or not name.islower():
            raise ConfigurationError(f"invalid connector name {name!r} (lower-case letters)")
        self.name = name
        self.settings = settings
        self.title = title
        self.endpoint = endpoint
        self.version = version
        self.doc = inspect.cleandoc(doc)
        self.actions: dict[str, Action[Any, Any]] = {}
        self.check: Callable[[ActionContext[S]], Awaitable[str]] | None = None

    def __repr__(self) -> str:
        return f"<connector {self.name}>"

    def __getattr__(self, name: str) -> Action[Any, Any]:
        # ``slack.post_message``: actions read as attributes of their connector.
        actions = self.__dict__.get("actions", {})
        if name in actions:
            return cast(Action[Any, Any], actions[name])
        raise AttributeError(f"connector {self.__dict__.get('name')!r} has no action {name!r}")

    def action(self, fn: Callable[[ActionContext[S], I], Awaitable[O]]) -> Action[I, O]:
        """Register ``async def name(ctx, input: InputModel) -> OutputModel`` as an action."""
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        if len(params) != 2:
            raise ConfigurationError(f"action {fn.__name__} must take (ctx, input)")
        input_type = hints.get(params[1])
        output_type = hints.get("return")
        for what, kind in (("input", input_type), ("output", output_type)):
            if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
                raise ConfigurationError(
                    f"the {what} of action {self.name}.{fn.__name__} must be a pydantic model"
                )
        if fn.__name__ in self.actions:
            raise ConfigurationError(f"action {self.name}.{fn.__name__} is defined twice")
        made: Action[I, O] = Action(
            self,
            fn.__name__,
            cast(ActionFn, fn),
            cast(type[I], input_type),
            cast(type[O], output_type),
        )
        self.actions[fn.__name__] = made
        return made

    def connection_check(
        self, fn: Callable[[ActionContext[S]], Awaitable[str]]
    ) -> Callable[[ActionContext[S]], Awaitable[str]]:
        """Register what ``opsloom connections test`` calls: a cheap authenticated request
        that returns a line saying who the credentials belong to."""
        self.check = fn
        return fn

    def parse_settings(self, values: Mapping[str, Any], *, where: str) -> S:
        """Validate settings; ``ConfigurationError`` naming the field (never a secret value)."""
        from pydantic import ValidationError

        try:
            return self.settings.model_validate(dict(values))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise ConfigurationError(f"invalid settings of {where}: {problems}") from None

    def describe(self) -> dict[str, Any]:
        """Name, title, doc, settings schema and each action's help and schemas, as JSON."""
        return {
            "name": self.name,
            "title": self.title,
            "version": self.version,
            "doc": self.doc,
            "settings": self.settings.model_json_schema(),
            "secrets": self.settings.secret_fields(),
            "actions": [
                {
                    "id": action.id,
                    "function": f"{action.function}:{self.version}@default",
                    "help": action.help,
                    "input": action.input.model_json_schema(),
                    "output": action.output.model_json_schema(),
                }
                for action in self.actions.values()
            ],
        }
